"""Forecast routes: the page's forecast, the inline forecast and the forecast CSV download.

Each forecast goes plan (checks, refused at once) -> slot -> compute -> answer, cancelled when the client
leaves or the server shuts down (``kronos.webui.jobs``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kronos.inference.frame import (
    FrameForecast,
    check_complete,
    check_quantile_count,
    forecast_frame,
    forecast_table,
    parse_quantiles,
    plan_forecast,
    read_frame,
    resolve_start,
    select_series,
)
from kronos.inference.generation import GenerationCancelled
from kronos.inference.validation import ForecastInputError
from kronos.webui.bodies import ForecastBody, InlineForecastBody, Plan, SamplingFields
from kronos.webui.catalog import located_context_limit
from kronos.webui.datasets import Dataset
from kronos.webui.forecast_view import check_band, forecast_columns, forecast_payload
from kronos.webui.jobs import Cancelled, run_cancellable
from kronos.webui.state import AppState

MAX_INLINE_CANDLES = 100_000


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name per RFC 5987 (``filename*=UTF-8''...``)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "forecast.csv"
    if not fallback.lower().endswith(".csv"):
        fallback += ".csv"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def router(state: AppState) -> APIRouter:
    """``/api/forecast``, ``/api/forecast/inline`` and ``/api/forecasts/{id}.csv``: each forecast is the steps below,
    plan -> slot -> compute -> answer (:func:`_planned_forecast`)."""
    r = APIRouter()

    @r.post("/api/forecast")
    async def forecast(body: ForecastBody, request: Request) -> dict[str, object]:
        return await _planned_forecast(state, request, lambda: _plan_page_forecast(state, body),
                                       lambda dataset, plan, result: _page_answer(state, body, dataset, plan, result))

    @r.post("/api/forecast/inline")
    async def forecast_inline(body: InlineForecastBody, request: Request) -> dict[str, object]:
        return await _planned_forecast(state, request, lambda: _plan_inline_forecast(state, body),
                                       lambda quantiles, plan, result: _inline_answer(state, plan, result, quantiles))

    @r.get("/api/forecasts/{forecast_id}.csv")
    def forecast_csv(forecast_id: str) -> Response:
        filename, table = state.forecasts.get(forecast_id)
        return Response(table.to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": content_disposition(filename)})

    return r


def _model(state: AppState, body: SamplingFields) -> tuple[str, str, int, str]:
    """The request's predictor and tokenizer locations, and the predictor's context limit with its reason."""
    predictor = state.locations.resolve(body.predictor, "predictor")
    tokenizer = state.locations.resolve(body.tokenizer, "tokenizer")
    limit, why = located_context_limit(predictor)
    return predictor, tokenizer, limit, why


async def _planned_forecast(state: AppState, request: Request, plan_fn: Callable[[], tuple[Any, Plan]],
                            answer_fn: Callable[[Any, Plan, FrameForecast], dict[str, object]]) -> dict[str, object]:
    """Checks first (refused at once, before waiting), then a slot, then the model work, then the answer;
    cancelled when the client goes away or the server shuts down."""
    async def job(cancelled: Cancelled) -> dict[str, object]:
        extra, plan = await run_in_threadpool(plan_fn)
        async with state.slots.hold(cancelled):  # the answer (quantiles, tables) is work too: inside the slot
            result = await run_in_threadpool(_compute, state, plan, cancelled)
            if cancelled():
                raise GenerationCancelled("forecast cancelled before its answer was built")
            return await run_in_threadpool(answer_fn, extra, plan, result)

    return await run_cancellable(request, state.shutdown, job)


def _plan_page_forecast(state: AppState, body: ForecastBody) -> tuple[Dataset, Plan]:
    """Every check of a forecast of an uploaded dataset's series, before any model work."""
    dataset = state.datasets.get(body.dataset_id)
    check_complete(dataset.incomplete, body.symbol, dataset.name)
    frame = select_series(dataset.frame, body.symbol)
    predictor_dir, tokenizer_dir, limit, why = _model(state, body)
    settings = body.settings()
    check_band(body.band_low, body.band_high)
    start_row = resolve_start(frame, body.start, body.lookback, body.pred_len)
    window = plan_forecast(frame, start_row, body.lookback, body.pred_len, settings, max_context=body.max_context,
                           context=limit, context_reason=why, budget=state.work_budget)
    return dataset, Plan(predictor_dir, tokenizer_dir, settings, body.max_context, window, body.pred_len, start_row,
                         body.lookback, True)


def _compute(state: AppState, plan: Plan, cancelled: Cancelled) -> FrameForecast:
    """The model work: the sample paths of the planned window."""
    predictor = state.models.get(plan.predictor, plan.tokenizer, state.device, plan.max_context)
    return forecast_frame(predictor, plan.window, plan.pred_len, plan.settings, start_row=plan.start_row,
                          requested_lookback=plan.lookback, cancel=cancelled, known_future=plan.known_future)


def _page_answer(state: AppState, body: ForecastBody, dataset: Dataset, plan: Plan,
                 result: FrameForecast) -> dict[str, object]:
    """The page's answer: the forecast payload and the URL of its CSV."""
    payload, table = forecast_payload(result, plan.max_context, plan.settings.sample_count,
                                      (body.band_low, body.band_high))
    stem = Path(dataset.name).name.removesuffix(".gz").removesuffix(".csv")
    forecast_id = state.forecasts.add((f"{stem}_forecast.csv", table))
    payload["forecast_id"] = forecast_id
    payload["csv_url"] = f"/api/forecasts/{forecast_id}.csv"
    return payload


def _plan_inline_forecast(state: AppState, body: InlineForecastBody) -> tuple[tuple[float, ...], Plan]:
    """Every check of a forecast of candles sent in the request, before any model work."""
    if not body.candles:
        raise ForecastInputError("candles is empty: send the history as a list of {timestamps, open, high, low, close} objects")
    if len(body.candles) > MAX_INLINE_CANDLES:
        raise ForecastInputError(f"{len(body.candles)} candles sent; at most {MAX_INLINE_CANDLES} are accepted")
    check_quantile_count(len(body.quantiles))  # before any level is parsed or computed
    quantiles = parse_quantiles(",".join(str(q) for q in body.quantiles)) if body.quantiles else ()
    try:
        candles = pd.DataFrame(body.candles).to_csv(index=False).encode()
    except (ValueError, TypeError) as err:
        raise ForecastInputError(f"candles could not be read as a table ({err})") from None
    frame = select_series(read_frame(candles, "candles"), None)
    predictor_dir, tokenizer_dir, limit, why = _model(state, body)
    settings = body.settings()
    lookback = body.lookback if body.lookback is not None else len(frame)
    if lookback > len(frame):
        raise ForecastInputError(f"lookback {lookback} is longer than the {len(frame)} candles sent")
    start_row = len(frame) - lookback
    window = plan_forecast(frame, start_row, lookback, body.pred_len, settings, max_context=body.max_context,
                           context=limit, context_reason=why, budget=state.work_budget)
    return quantiles, Plan(predictor_dir, tokenizer_dir, settings, body.max_context, window, body.pred_len,
                           start_row, lookback, False)


def _inline_answer(state: AppState, plan: Plan, result: FrameForecast,
                   quantiles: tuple[float, ...]) -> dict[str, object]:
    """The inline answer: forecast columns, the window used and the URL of the CSV."""
    table = forecast_table(result.paths, result.future.index, quantiles)
    forecast_id = state.forecasts.add(("candles_forecast.csv", table))
    return {
        "forecast": forecast_columns(table),
        "future_timestamps": result.future.kind,
        "future_note": result.future.note,
        "candle_repairs": result.repairs.report(),
        "window": {"lookback": plan.lookback, "used_rows": len(result.history), "truncated": result.truncated,
                   "max_context": plan.max_context, "pred_len": plan.pred_len,
                   "sample_count": plan.settings.sample_count},
        "forecast_id": forecast_id,
        "csv_url": f"/api/forecasts/{forecast_id}.csv",
    }

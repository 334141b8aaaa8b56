"""The web UI's FastAPI application: the page, its static assets and a small JSON API.

Routes:
    GET  /                          the page
    GET  /health                    ``{"status": "ok", "forecasts_running": n, "forecasts_waiting": m}`` (never waits)
    GET  /vendor/plotly.min.js      Plotly from the installed ``plotly`` package (the browser may be offline)
    GET  /api/models                experiments in the outputs directory, pairs in the models directory, hub pairs,
                                    loaded models; each choice has ``context`` (the longest max_context allowed)
    GET  /api/data-files            CSV files under the data directory
    POST /api/datasets/upload       multipart ``file``: validated with ``read_ohlcv_csv``
    POST /api/datasets/file         JSON ``{"path": <relative to the data directory>}``
    POST /api/forecast              JSON ``ForecastBody``: chart series, band, fan, metrics, ``csv_url``
    POST /api/forecast/inline       JSON ``InlineForecastBody``: candles in the body, the forecast as JSON columns
    GET  /api/forecasts/{id}.csv    the forecast (raw mean and quantile columns) as CSV

Inline forecasts (for scripts and other tools), e.g.::

    curl -s http://127.0.0.1:7070/api/forecast/inline -H 'Content-Type: application/json' -d '{
      "predictor": "NeoQuasar/Kronos-small", "tokenizer": "NeoQuasar/Kronos-Tokenizer-base",
      "candles": [{"timestamps": "2024-06-18 09:35", "open": 11.2, "high": 11.3, "low": 11.1, "close": 11.25,
                   "volume": 379}, ...],
      "pred_len": 24, "sample_count": 8, "quantiles": [0.1, 0.5, 0.9], "seed": 1}'

answers ``{"forecast": {"timestamps": [...], "open": [...], ..., "close_q10": [...], ...}, "future_timestamps":
"sessions"|"approximate", "future_note": str, "window": {...}, "forecast_id": str, "csv_url": str}``. ``candles``
takes the columns a CSV would (timestamps, open, high, low, close, optional volume and amount) and is
validated the same way; the forecast follows the last candle; ``lookback`` (default: all candles)
and the sampling fields mean what they mean for ``/api/forecast``.

Every forecast is checked before any model work: sampling settings (``SamplingSettings.validate``),
``max_context`` no longer than the model was trained for, and a work budget on
(history rows seen) x pred_len x sample_count. Bad input answers 4xx with ``{"detail": one message}``:
400 for bad values, 404 for an unknown id, 413 for an oversized upload or body (chunked too), 422 for a malformed
body, 403/421 from the local-only guards (``kronos.webui.security``); a forecast stopped because its client
left or the server is shutting down answers 503.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import pandas as pd
import plotly
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kronos.data.errors import DataValidationError
from kronos.inference.frame import (
    FrameForecast,
    Window,
    check_complete,
    forecast_frame,
    forecast_table,
    parse_quantiles,
    plan_forecast,
    read_frame,
    read_long_frame,
    resolve_start,
    select_series,
)
from kronos.inference.generation import GenerationCancelled
from kronos.inference.pair import check_device
from kronos.inference.settings import DEFAULT_WORK_BUDGET, SamplingSettings
from kronos.inference.validation import ForecastInputError
from kronos.models.hub import CheckpointError
from kronos.webui.catalog import (
    HUB_CHOICES,
    ModelLocations,
    OutsideDataDirError,
    list_data_files,
    list_experiments,
    list_model_dirs,
    load_located_pair,
    located_context_limit,
    resolve_data_file,
)
from kronos.webui.datasets import Dataset
from kronos.webui.forecast_view import check_band, forecast_columns, forecast_payload
from kronos.webui.jobs import Cancelled, ForecastSlots, run_cancellable
from kronos.webui.model_cache import ModelCache
from kronos.webui.security import LOOPBACK_NAMES, LocalOnlyMiddleware
from kronos.webui.store import RecentStore, UnknownItemError

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_CONCURRENT = 2
MAX_INLINE_CANDLES = 100_000
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class DataFileBody(BaseModel):
    """A CSV inside the data directory, by its listed relative path."""

    path: str


class SamplingFields(BaseModel):
    """Model and sampling fields shared by both forecast bodies; their limits live in SamplingSettings.validate."""

    predictor: str = Field(min_length=1, description="predictor checkpoint directory or hub id")
    tokenizer: str = Field(min_length=1, description="tokenizer checkpoint directory or hub id")
    pred_len: int = 48
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sample_count: int = 8
    # int | float: a browser sends 2**70 as 1.18e21; SamplingSettings.validate gives the one message for both.
    seed: int | float | None = Field(None, description="seed of the sampling generator; None: a different draw each time")
    max_context: int = 512

    def settings(self) -> SamplingSettings:
        return SamplingSettings(T=self.T, top_k=self.top_k, top_p=self.top_p, sample_count=self.sample_count,
                                seed=self.seed)


class ForecastBody(SamplingFields):
    """One forecast request from the page."""

    dataset_id: str
    symbol: str | None = None
    start: str | None = Field(None, description="row number or date/time of the first history row; empty: latest scorable window")
    lookback: int = 256
    band_low: float = 0.1
    band_high: float = 0.9


class InlineForecastBody(SamplingFields):
    """A forecast of candles given in the body (see the module docstring)."""

    candles: list[dict[str, Any]]
    lookback: int | None = None
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])


@dataclass(frozen=True)
class Plan:
    """A checked forecast request, ready to compute: model locations, settings and the window."""

    predictor: str
    tokenizer: str
    settings: SamplingSettings
    max_context: int
    window: Window
    pred_len: int
    start_row: int
    lookback: int
    known_future: bool  # the page scores against the rows after the window; inline candles have none


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name per RFC 5987 (``filename*=UTF-8''...``)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "forecast.csv"
    if not fallback.lower().endswith(".csv"):
        fallback += ".csv"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def create_app(
    outputs_dir: str | Path = "outputs",
    data_dir: str | Path = "data",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    device: str | None = None,
    *,
    models_dir: str | Path | None = None,
    work_budget: int | None = DEFAULT_WORK_BUDGET,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES,
) -> FastAPI:
    """Build the application; state (loaded models, datasets, forecasts) lives in this app object.

    Args:
        outputs_dir: where exported experiments are found; any checkpoint directory inside it may be loaded.
        data_dir: the only folder whose files the page may open by path.
        max_upload_bytes: largest accepted CSV upload.
        device: torch device for the models (None: the best available).
        models_dir: a further directory whose checkpoints may be loaded (``--models-dir``).
        work_budget: cap on (history rows seen) x pred_len x sample_count per forecast (None: no cap).
        max_concurrent: forecasts computed at once; more wait, cancellably.
        allowed_hosts: host names the server answers to (``Host`` header check against DNS rebinding).

    ``app.state.shutdown`` (a threading.Event) cancels every running and waiting forecast when set.
    """
    check_device(device)
    outputs = Path(outputs_dir)
    data_root = Path(data_dir)
    models_root = Path(models_dir) if models_dir else None
    locations = ModelLocations(outputs, models_root)
    models = ModelCache(lambda p, t, d, m: load_located_pair(t, p, d, m))
    datasets: RecentStore[Dataset] = RecentStore("dataset", max_entries=16)
    forecasts: RecentStore[tuple[str, pd.DataFrame]] = RecentStore("forecast", max_entries=32)
    slots = ForecastSlots(max_concurrent)
    shutdown = threading.Event()
    app = FastAPI(title="Kronos forecasting UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.shutdown = shutdown
    app.state.slots = slots
    app.add_middleware(LocalOnlyMiddleware, allowed_hosts=allowed_hosts,
                       max_body_bytes=max_upload_bytes + MULTIPART_OVERHEAD_BYTES)

    def _answer(status: int) -> Any:
        def handler(_: Request, err: Exception) -> JSONResponse:
            text = str(err.args[0]) if isinstance(err, LookupError) and err.args else str(err)
            return JSONResponse({"detail": text}, status_code=status)
        return handler

    for bad_input in (DataValidationError, ForecastInputError, OutsideDataDirError, CheckpointError):
        app.add_exception_handler(bad_input, _answer(400))
    for missing in (UnknownItemError, FileNotFoundError):
        app.add_exception_handler(missing, _answer(404))
    app.add_exception_handler(GenerationCancelled, _answer(503))

    def _schema_error(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in err.errors()]
        text = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
        return JSONResponse({"detail": text or "malformed request body"}, status_code=422)

    app.add_exception_handler(RequestValidationError, _schema_error)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, object]:
        # async and lock-free: answers even while every worker thread is busy forecasting.
        return {"status": "ok", "forecasts_running": slots.running, "forecasts_waiting": slots.waiting}

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    @app.get("/api/models")
    def list_models() -> dict[str, object]:
        return {
            "outputs_dir": str(outputs.resolve()),
            "models_dir": str(models_root.resolve()) if models_root else None,
            "experiments": [c.as_dict() for c in list_experiments(outputs)],
            "models": [c.as_dict() for c in list_model_dirs(models_root)],
            "hub": [c.as_dict() for c in HUB_CHOICES],
            "loaded": [{"predictor": k[0], "tokenizer": k[1], "max_context": k[3]} for k in models.loaded()],
        }

    @app.get("/api/data-files")
    def data_files() -> dict[str, object]:
        return {"data_dir": str(data_root.resolve()), "files": list_data_files(data_root)}

    @app.post("/api/datasets/upload")
    async def upload(request: Request) -> JSONResponse:
        limit_mb = max_upload_bytes / 2**20
        too_large = JSONResponse(
            {"detail": f"upload is larger than the {limit_mb:g} MB limit: send fewer rows "
                       f"(trim the history) or place the file in the data directory and pick it from the list"},
            status_code=413,
        )
        declared = request.headers.get("content-length")
        # Refuse before reading the body when the client announces its size honestly.
        if declared and declared.isdigit() and int(declared) > max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
            return too_large
        form = await request.form()
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            raise ForecastInputError("no file in the upload: send the CSV as the multipart field 'file'")
        content = await upload_file.read(max_upload_bytes + 1)
        if len(content) > max_upload_bytes:
            return too_large
        name = (upload_file.filename or "upload.csv").replace("\x00", "")
        frame, incomplete = await run_in_threadpool(read_long_frame, content, name)
        dataset = Dataset(name, frame, incomplete)
        return JSONResponse(dataset.summary(datasets.add(dataset)))

    @app.post("/api/datasets/file")
    def open_data_file(body: DataFileBody) -> dict[str, object]:
        path = resolve_data_file(data_root, body.path)
        dataset = Dataset(body.path, *read_long_frame(path, body.path))
        return dataset.summary(datasets.add(dataset))

    def _model(body: SamplingFields) -> tuple[str, str, int, str]:
        predictor = locations.resolve(body.predictor, "predictor")
        tokenizer = locations.resolve(body.tokenizer, "tokenizer")
        limit, why = located_context_limit(predictor)
        return predictor, tokenizer, limit, why

    async def _planned_forecast(request: Request, plan_fn: Callable[[], tuple[Any, Plan]],
                                answer_fn: Callable[[Any, Plan, FrameForecast], dict[str, object]]) -> dict[str, object]:
        """Checks first (refused at once, before waiting), then a slot, then the model work, then the answer;
        cancelled when the client goes away or the server shuts down."""
        async def job(cancelled: Cancelled) -> dict[str, object]:
            extra, plan = await run_in_threadpool(plan_fn)
            async with slots.hold(cancelled):
                result = await run_in_threadpool(_compute, plan, cancelled)
            return await run_in_threadpool(answer_fn, extra, plan, result)

        return await run_cancellable(request, shutdown, job)

    @app.post("/api/forecast")
    async def forecast(body: ForecastBody, request: Request) -> dict[str, object]:
        return await _planned_forecast(request, lambda: _plan_page_forecast(body),
                                       lambda dataset, plan, result: _page_answer(body, dataset, plan, result))

    def _plan_page_forecast(body: ForecastBody) -> tuple[Dataset, Plan]:
        dataset = datasets.get(body.dataset_id)
        check_complete(dataset.incomplete, body.symbol, dataset.name)
        frame = select_series(dataset.frame, body.symbol)
        predictor_dir, tokenizer_dir, limit, why = _model(body)
        settings = body.settings()
        check_band(body.band_low, body.band_high)
        start_row = resolve_start(frame, body.start, body.lookback, body.pred_len)
        window = plan_forecast(frame, start_row, body.lookback, body.pred_len, settings,
                               max_context=body.max_context, context=limit, context_reason=why, budget=work_budget)
        return dataset, Plan(predictor_dir, tokenizer_dir, settings, body.max_context, window, body.pred_len, start_row,
                             body.lookback, True)

    def _compute(plan: Plan, cancelled: Cancelled) -> FrameForecast:
        predictor = models.get(plan.predictor, plan.tokenizer, device, plan.max_context)
        return forecast_frame(predictor, plan.window, plan.pred_len, plan.settings, start_row=plan.start_row,
                              requested_lookback=plan.lookback, cancel=cancelled, known_future=plan.known_future)

    def _page_answer(body: ForecastBody, dataset: Dataset, plan: Plan, result: FrameForecast) -> dict[str, object]:
        payload, table = forecast_payload(result, plan.max_context, plan.settings.sample_count,
                                          (body.band_low, body.band_high))
        stem = Path(dataset.name).name.removesuffix(".gz").removesuffix(".csv")
        forecast_id = forecasts.add((f"{stem}_forecast.csv", table))
        payload["forecast_id"] = forecast_id
        payload["csv_url"] = f"/api/forecasts/{forecast_id}.csv"
        return payload

    @app.post("/api/forecast/inline")
    async def forecast_inline(body: InlineForecastBody, request: Request) -> dict[str, object]:
        return await _planned_forecast(request, lambda: _plan_inline_forecast(body),
                                       lambda quantiles, plan, result: _inline_answer(plan, result, quantiles))

    def _plan_inline_forecast(body: InlineForecastBody) -> tuple[tuple[float, ...], Plan]:
        if not body.candles:
            raise ForecastInputError("candles is empty: send the history as a list of {timestamps, open, high, low, close} objects")
        if len(body.candles) > MAX_INLINE_CANDLES:
            raise ForecastInputError(f"{len(body.candles)} candles sent; at most {MAX_INLINE_CANDLES} are accepted")
        quantiles = parse_quantiles(",".join(str(q) for q in body.quantiles)) if body.quantiles else ()
        try:
            candles = pd.DataFrame(body.candles).to_csv(index=False).encode()
        except (ValueError, TypeError) as err:
            raise ForecastInputError(f"candles could not be read as a table ({err})") from None
        frame = select_series(read_frame(candles, "candles"), None)
        predictor_dir, tokenizer_dir, limit, why = _model(body)
        settings = body.settings()
        lookback = body.lookback if body.lookback is not None else len(frame)
        if lookback > len(frame):
            raise ForecastInputError(f"lookback {lookback} is longer than the {len(frame)} candles sent")
        start_row = len(frame) - lookback
        window = plan_forecast(frame, start_row, lookback, body.pred_len, settings,
                               max_context=body.max_context, context=limit, context_reason=why, budget=work_budget)
        return quantiles, Plan(predictor_dir, tokenizer_dir, settings, body.max_context, window, body.pred_len,
                               start_row, lookback, False)

    def _inline_answer(plan: Plan, result: FrameForecast, quantiles: tuple[float, ...]) -> dict[str, object]:
        table = forecast_table(result.paths, result.future.index, quantiles)
        forecast_id = forecasts.add(("candles_forecast.csv", table))
        return {
            "forecast": forecast_columns(table),
            "future_timestamps": result.future.kind,
            "future_note": result.future.note,
            "window": {"lookback": plan.lookback, "used_rows": len(result.history), "truncated": result.truncated,
                       "max_context": plan.max_context, "pred_len": plan.pred_len,
                       "sample_count": plan.settings.sample_count},
            "forecast_id": forecast_id,
            "csv_url": f"/api/forecasts/{forecast_id}.csv",
        }

    @app.get("/api/forecasts/{forecast_id}.csv")
    def forecast_csv(forecast_id: str) -> Response:
        filename, table = forecasts.get(forecast_id)
        return Response(table.to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": content_disposition(filename)})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

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

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kronos.inference.loading import check_device
from kronos.inference.settings import DEFAULT_WORK_BUDGET
from kronos.webui.catalog import ModelLocations, load_located_pair
from kronos.webui.errors import SafeJSONResponse, install_error_handlers
from kronos.webui.jobs import ForecastSlots
from kronos.webui.model_cache import ModelCache
from kronos.webui.routes import data, forecast, site
from kronos.webui.routes.data import MULTIPART_OVERHEAD_BYTES
from kronos.webui.routes.site import STATIC_DIR
from kronos.webui.security import LOOPBACK_NAMES, LocalOnlyMiddleware
from kronos.webui.state import AppState

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_CONCURRENT = 2


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

    ``app.state.shutdown`` (a threading.Event) cancels every running and waiting forecast when set. The routes
    live in ``kronos.webui.routes``; this function only wires them to one ``AppState``.
    """
    check_device(device)
    outputs = Path(outputs_dir)
    models_root = Path(models_dir) if models_dir else None
    state = AppState(
        outputs=outputs, data_root=Path(data_dir), models_root=models_root,
        locations=ModelLocations(outputs, models_root),
        models=ModelCache(lambda p, t, d, m: load_located_pair(t, p, d, m)),
        device=device, max_upload_bytes=max_upload_bytes, work_budget=work_budget,
        slots=ForecastSlots(max_concurrent),
    )
    app = FastAPI(title="Kronos forecasting UI", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=SafeJSONResponse)
    app.state.shutdown = state.shutdown
    app.state.slots = state.slots
    app.state.web = state
    app.add_middleware(LocalOnlyMiddleware, allowed_hosts=allowed_hosts,
                       max_body_bytes=max_upload_bytes + MULTIPART_OVERHEAD_BYTES)
    install_error_handlers(app)
    for module in (site, data, forecast):
        app.include_router(module.router(state))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

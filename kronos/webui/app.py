"""The web UI's FastAPI application: the page, its static assets and a small JSON API.

Routes:
    GET  /                          the page
    GET  /vendor/plotly.min.js      Plotly from the installed ``plotly`` package (the browser may be offline)
    GET  /api/models                experiments under the outputs directory, hub pairs, loaded models
    GET  /api/data-files            CSV files under the data directory
    POST /api/datasets/upload       multipart ``file``: validated with ``read_ohlcv_csv``
    POST /api/datasets/file         JSON ``{"path": <relative to the data directory>}``
    POST /api/forecast              JSON ``ForecastBody``: chart series, band, metrics, forecast id
    GET  /api/forecasts/{id}.csv    the forecast (mean and quantile columns) as CSV
Bad input answers 400 (413 for an oversized upload, 404 for an unknown id) with ``{"detail": message}``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import plotly
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kronos.cli.forecast import load_predictor, select_series
from kronos.data.csv_source import read_ohlcv_csv
from kronos.data.errors import DataValidationError
from kronos.inference.validation import ForecastInputError
from kronos.models.hub import CheckpointError
from kronos.webui.catalog import HUB_CHOICES, OutsideDataDirError, list_data_files, list_experiments, resolve_data_file
from kronos.webui.datasets import Dataset
from kronos.webui.forecast_view import Sampling, resolve_start, run_forecast
from kronos.webui.model_cache import ModelCache
from kronos.webui.store import RecentStore, UnknownItemError

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class DataFileBody(BaseModel):
    """A CSV inside the data directory, by its listed relative path."""

    path: str


class ForecastBody(BaseModel):
    """One forecast request from the page."""

    dataset_id: str
    predictor: str = Field(min_length=1, description="predictor checkpoint directory or hub id")
    tokenizer: str = Field(min_length=1, description="tokenizer checkpoint directory or hub id")
    symbol: str | None = None
    start: str | None = Field(None, description="row number or date/time of the first history row; empty: latest scorable window")
    lookback: int = Field(256, ge=2)
    pred_len: int = Field(48, ge=1, le=4096)
    T: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    sample_count: int = Field(8, ge=1, le=256)
    seed: int | None = Field(None, description="seed of the sampling generator; None: a different draw each time")
    max_context: int = Field(512, ge=2)
    band_low: float = Field(0.1, gt=0, lt=1)
    band_high: float = Field(0.9, gt=0, lt=1)


def create_app(
    outputs_dir: str | Path = "outputs",
    data_dir: str | Path = "data",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    device: str | None = None,
) -> FastAPI:
    """Build the application; state (loaded models, datasets, forecasts) lives in this app object.

    Args:
        outputs_dir: where exported experiments (``<name>/tokenizer``, ``<name>/predictor``) are found.
        data_dir: the only folder whose files the page may open by path.
        max_upload_bytes: largest accepted CSV upload.
        device: torch device for the models (None: the best available).
    """
    outputs = Path(outputs_dir)
    data_root = Path(data_dir)
    models = ModelCache(load_predictor)
    datasets: RecentStore[Dataset] = RecentStore("dataset", max_entries=16)
    forecasts: RecentStore[tuple[str, pd.DataFrame]] = RecentStore("forecast", max_entries=32)
    app = FastAPI(title="Kronos forecasting UI", docs_url=None, redoc_url=None)

    def _bad_request(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    def _not_found(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err.args[0]) if err.args else str(err)}, status_code=404)

    for bad_input in (DataValidationError, ForecastInputError, OutsideDataDirError, CheckpointError):
        app.add_exception_handler(bad_input, _bad_request)
    for missing in (UnknownItemError, FileNotFoundError):
        app.add_exception_handler(missing, _not_found)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    @app.get("/api/models")
    def list_models() -> dict[str, object]:
        return {
            "outputs_dir": str(outputs.resolve()),
            "experiments": [c.as_dict() for c in list_experiments(outputs)],
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
        name = upload_file.filename or "upload.csv"
        frame = await run_in_threadpool(read_ohlcv_csv, io.BytesIO(content), None, None, name)
        dataset = Dataset(name, frame)
        return JSONResponse(dataset.summary(datasets.add(dataset)))

    @app.post("/api/datasets/file")
    def open_data_file(body: DataFileBody) -> dict[str, object]:
        path = resolve_data_file(data_root, body.path)
        dataset = Dataset(body.path, read_ohlcv_csv(path, name=body.path))
        return dataset.summary(datasets.add(dataset))

    @app.post("/api/forecast")
    async def forecast(body: ForecastBody) -> dict[str, object]:
        # Generation takes seconds to minutes: run it in the thread pool so the server stays responsive.
        return await run_in_threadpool(_forecast, body)

    def _forecast(body: ForecastBody) -> dict[str, object]:
        dataset = datasets.get(body.dataset_id)
        frame = select_series(dataset.frame, body.symbol)
        start_row = resolve_start(frame, body.start, body.lookback, body.pred_len)
        predictor, lock = models.get(body.predictor, body.tokenizer, device, body.max_context)
        sampling = Sampling(T=body.T, top_k=body.top_k, top_p=body.top_p, sample_count=body.sample_count, seed=body.seed)
        with lock:
            payload, table = run_forecast(
                predictor, frame, start_row, body.lookback, body.pred_len, sampling, (body.band_low, body.band_high)
            )
        stem = Path(dataset.name).name.removesuffix(".gz").removesuffix(".csv")
        forecast_id = forecasts.add((f"{stem}_forecast.csv", table))
        payload["forecast_id"] = forecast_id
        payload["csv_url"] = f"/api/forecasts/{forecast_id}.csv"
        return payload

    @app.get("/api/forecasts/{forecast_id}.csv")
    def forecast_csv(forecast_id: str) -> Response:
        filename, table = forecasts.get(forecast_id)
        return Response(
            table.to_csv(index=False),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

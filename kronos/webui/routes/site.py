"""The page, its static assets and the health probe."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse

from kronos.webui.state import AppState

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def router(state: AppState) -> APIRouter:
    """``/``, ``/health`` and ``/vendor/plotly.min.js``."""
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @r.get("/health")
    async def health() -> dict[str, object]:
        # async and lock-free: answers even while every worker thread is busy forecasting.
        return {"status": "ok", "forecasts_running": state.slots.running, "forecasts_waiting": state.slots.waiting}

    @r.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    return r

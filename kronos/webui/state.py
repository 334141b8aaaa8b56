"""What one web UI application holds: its directories, limits, loaded models, datasets and forecasts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kronos.webui.catalog import ModelLocations
from kronos.webui.datasets import Dataset
from kronos.webui.jobs import ForecastSlots
from kronos.webui.model_cache import ModelCache
from kronos.webui.store import RecentStore


@dataclass
class AppState:
    """State shared by the routes of one application (``create_app`` builds it, the route modules read it).

    ``shutdown`` cancels every running and waiting forecast when set.
    """

    outputs: Path
    data_root: Path
    models_root: Path | None
    locations: ModelLocations
    models: ModelCache
    device: str | None
    max_upload_bytes: int
    work_budget: int | None
    slots: ForecastSlots
    shutdown: threading.Event = field(default_factory=threading.Event)
    datasets: RecentStore[Dataset] = field(default_factory=lambda: RecentStore("dataset", max_entries=16))
    forecasts: RecentStore[tuple[str, pd.DataFrame]] = field(
        default_factory=lambda: RecentStore("forecast", max_entries=32))

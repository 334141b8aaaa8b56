"""The JSON bodies the web UI's API accepts (pydantic models) and the checked plan of one forecast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from kronos.inference.frame import Window
from kronos.inference.settings import SamplingSettings


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
    """A forecast of candles given in the body (see ``kronos.webui.app``)."""

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

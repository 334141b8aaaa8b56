"""One point forecast: the same sample paths give the same numbers in kronos-predict's table, the web UI's CSV,
the web UI's "median" candles and the web UI's scores (kronos.scores.point_forecast, the median of the paths)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos import scores
from kronos.data.features import FEATURES
from kronos.inference.frame import TIME_COLUMN, FrameForecast, forecast_table
from kronos.inference.sessions import FutureIndex
from kronos.webui.forecast_view import forecast_payload


def test_cli_and_web_ui_give_the_same_point_forecast_from_the_same_paths() -> None:
    rng = np.random.default_rng(3)
    H, S = 6, 7
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(S, H)), axis=1))
    paths = np.stack([close * 0.999, close * 1.01, close * 0.99, close, rng.uniform(1e5, 2e5, (S, H)),
                      rng.uniform(1e7, 2e7, (S, H))], axis=-1)                     # [S, H, 6], skewed on purpose
    index = pd.date_range("2024-01-08", periods=H, freq="D")
    history = pd.DataFrame({TIME_COLUMN: pd.date_range("2023-12-01", periods=20, freq="D"),
                            **{f: np.full(20, 100.0) for f in FEATURES}})
    result = FrameForecast(history=history, actual=history.iloc[:0], future=FutureIndex(index, "known", ""),
                           paths=paths, start_row=0, requested_lookback=20)
    cli_table = forecast_table(paths, index, (0.5,))                  # what kronos-predict writes
    payload, web_table = forecast_payload(result, max_context=512, sample_count=S)
    point = scores.point_forecast(paths[..., FEATURES.index("close")], axis=0)
    np.testing.assert_allclose(cli_table["close"], point)
    np.testing.assert_allclose(web_table["close"], cli_table["close"])
    np.testing.assert_allclose(payload["median"]["close"], cli_table["close"])
    assert not np.allclose(point, close.mean(axis=0))                 # the mean would be another forecast

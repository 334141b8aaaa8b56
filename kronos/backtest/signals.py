"""Cross-sectional signals: the model's predicted return and a naive baseline on the same windows."""

from __future__ import annotations

import pandas as pd

from kronos.backtest.settings import BASELINES, SIGNALS


def _indexed(frame: pd.DataFrame, values: pd.Series, name: str) -> pd.Series:
    """``values`` indexed by (datetime, instrument), the layout Qlib's strategies read."""
    index = pd.MultiIndex.from_arrays([frame["datetime"], frame["instrument"]], names=["datetime", "instrument"])
    return pd.Series(values.to_numpy(), index=index, name=name)


def model_signal(forecasts: pd.DataFrame, kind: str = "mean") -> pd.Series:
    """Predicted close return relative to the anchor close (``anchor_close``, else ``last_close``), reduced
    over the horizon.

    Args:
        forecasts: output of ``forecast_split`` (``last_close`` and ``pred_close_1..H`` columns).
        kind: ``last`` (return at the final horizon step), ``mean``, ``max`` or ``min`` over the steps.

    Returns:
        float Series indexed by (datetime, instrument), named ``model``.
    """
    if kind not in SIGNALS:
        raise ValueError(f"backtest.signal={kind!r} is not one of {SIGNALS}: set backtest.signal to one of them")
    preds = forecasts.filter(regex=r"^pred_close_\d+$")
    if preds.empty:
        raise ValueError("forecasts have no pred_close_<h> columns: pass the output of forecast_split")
    anchor = forecasts["anchor_close"] if "anchor_close" in forecasts else forecasts["last_close"]
    returns = preds.div(anchor, axis=0) - 1.0
    reduced = returns.iloc[:, -1] if kind == "last" else getattr(returns, kind)(axis=1)
    return _indexed(forecasts, reduced, "model")


def baseline_signal(forecasts: pd.DataFrame, kind: str = "reversal") -> pd.Series:
    """A naive signal from the lookback alone, scored on exactly the model's (date, instrument) rows.

    ``reversal`` ranks by minus the return over the H rows up to the decision date (short-term
    reversal, a well-documented effect in daily A-share returns, so a bar a forecaster must clear);
    ``momentum`` ranks by that return itself (the recent trend continues).

    Returns:
        float Series indexed by (datetime, instrument), named after ``kind``.
    """
    if kind not in BASELINES:
        raise ValueError(f"backtest.baselines entry {kind!r} is not one of {BASELINES}: "
                         "set backtest.baselines to a list of them")
    past = forecasts["past_return"]
    return _indexed(forecasts, -past if kind == "reversal" else past, kind)


def anchor_gap_signal(forecasts: pd.DataFrame) -> pd.Series:
    """``-(anchor - last) / last``: what the reconstructed anchor alone would rank (named ``anchor_gap``).

    Measuring predicted returns from the tokenizer's reconstruction adds this gap to every signal; it is
    a deterministic function of recent prices, so it can rank future returns without any forecast.
    """
    gap = -(forecasts["anchor_close"] - forecasts["last_close"]) / forecasts["last_close"]
    return _indexed(forecasts, gap, "anchor_gap")

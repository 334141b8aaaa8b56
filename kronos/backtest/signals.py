"""Cross-sectional signals: the model's, read from its sample paths, and naive baselines on the same windows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos.backtest.settings import BASELINES, SIGNALS


def _indexed(frame: pd.DataFrame, values: pd.Series, name: str) -> pd.Series:
    """``values`` indexed by (datetime, instrument), the layout Qlib's strategies read."""
    index = pd.MultiIndex.from_arrays([frame["datetime"], frame["instrument"]], names=["datetime", "instrument"])
    return pd.Series(values.to_numpy(), index=index, name=name)


def model_signal(forecasts: pd.DataFrame, kind: str = "mean") -> pd.Series:
    """A signal read from the sample paths.

    Args:
        forecasts: output of ``forecast_split`` (``last_close``, ``pred_close_1..H`` and the ``trade_*``
            columns of kronos.backtest.forecast.summarize_paths).
        kind: ``mean`` / ``last`` / ``max`` / ``min``: the predicted close return from the anchor close
            (``anchor_close``, else ``last_close``) averaged over the steps, at step H, largest, smallest;
            ``trade``: the paths' mean return over the traded interval deal(t+1) -> deal(t+2);
            ``sharpe``: that mean over its std across paths (0 where the paths agree exactly);
            ``prob_up``: the share of paths in which it is positive.

    Returns:
        float Series indexed by (datetime, instrument), named ``model``.
    """
    if kind not in SIGNALS:
        raise ValueError(f"backtest.signal={kind!r} is not one of {SIGNALS}: set backtest.signal to one of them")
    if kind in ("trade", "sharpe", "prob_up"):
        if "trade_mean" not in forecasts:
            raise ValueError("forecasts have no trade_mean column: pass the output of forecast_split")
        mean, std = forecasts["trade_mean"], forecasts["trade_std"]
        value = {"trade": mean, "prob_up": forecasts["trade_up"],
                 "sharpe": (mean / std.where(std > 0)).fillna(0.0).where(mean.notna())}[kind]
        return _indexed(forecasts, value, "model")
    preds = forecasts.filter(regex=r"^pred_close_\d+$")
    if preds.empty:
        raise ValueError("forecasts have no pred_close_<h> columns: pass the output of forecast_split")
    anchor = forecasts["anchor_close"] if "anchor_close" in forecasts else forecasts["last_close"]
    returns = preds.div(anchor, axis=0) - 1.0
    reduced = returns.iloc[:, -1] if kind == "last" else getattr(returns, kind)(axis=1)
    return _indexed(forecasts, reduced, "model")


def baseline_signal(forecasts: pd.DataFrame, kind: str = "reversal",
                    features: pd.DataFrame | None = None) -> pd.Series:
    """A naive signal from the lookback alone, scored on exactly the model's (date, instrument) rows.

    ``reversal`` ranks by minus the return over the H rows up to the decision date (short-term
    reversal, a well-documented effect in daily A-share returns, so a bar a forecaster must clear);
    ``momentum`` ranks by that return itself (the recent trend continues);
    ``volume`` by today's log volume minus its trailing 20-day mean (abnormal volume); ``low_vol`` by
    minus the trailing 20-day volatility.

    Args:
        forecasts: output of ``forecast_split``.
        kind: a name of :data:`BASELINES` (the settings map old names).
        features: kronos.backtest.exposures.lookback_features of the same rows (``volume``/``low_vol``).

    Returns:
        float Series indexed by (datetime, instrument), named after ``kind``.
    """
    if kind not in BASELINES:
        raise ValueError(f"backtest.baselines entry {kind!r} is not one of {BASELINES}: "
                         "set backtest.baselines to a list of them")
    if kind in ("momentum", "reversal"):
        past = forecasts["past_return"]
        return _indexed(forecasts, -past if kind == "reversal" else past, kind)
    if features is None:
        raise ValueError(f"baseline {kind!r} needs the lookback features (kronos.backtest.exposures)")
    value = features["abnormal_volume"] if kind == "volume" else -features["volatility"]
    return _indexed(forecasts, value, kind)


def oracle_signal(forecasts: pd.DataFrame, drift: pd.DataFrame, deal_price: str) -> pd.Series:
    """The planted expected return of the traded interval (synthetic data only), named ``oracle``.

    Args:
        forecasts: output of ``forecast_split`` (``datetime``, ``instrument`` as in ``drift``'s columns).
        drift: wide [calendar x instruments] planted expected log-return of each day's close-to-close
            move (kronos.data.synthetic.SyntheticPaths.drift, transposed).
        deal_price: ``close`` (the traded interval close(t+1) -> close(t+2) carries day t+2's drift) or
            ``open`` (open(t+1) -> open(t+2) spans day t+1's close-to-close move, its drift).
    """
    ahead = drift.shift(-2 if deal_price == "close" else -1)
    rows = ahead.columns.get_indexer(forecasts["instrument"])
    dates = ahead.index.get_indexer(pd.DatetimeIndex(forecasts["datetime"]))
    values = np.where((rows >= 0) & (dates >= 0), ahead.to_numpy()[np.maximum(dates, 0), np.maximum(rows, 0)], np.nan)
    return _indexed(forecasts, pd.Series(values), "oracle")


def anchor_gap_signal(forecasts: pd.DataFrame) -> pd.Series:
    """``-(anchor - last) / last``: what the reconstructed anchor alone would rank (named ``anchor_gap``).

    Measuring predicted returns from the tokenizer's reconstruction adds this gap to every signal; it is
    a deterministic function of recent prices, so it can rank future returns without any forecast.
    """
    gap = -(forecasts["anchor_close"] - forecasts["last_close"]) / forecasts["last_close"]
    return _indexed(forecasts, gap, "anchor_gap")

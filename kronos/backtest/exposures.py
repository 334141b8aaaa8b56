"""Lookback-only features of each decision: the baselines' inputs and the exposures a signal is neutralised on.

Each is computed on the panel's calendar from rows up to and including the decision date t, never after:

- ``abnormal_volume``: log volume of t minus the mean log volume of the 20 rows before t
  (:func:`kronos.rules.abnormal_volume`, the one definition evaluate's return task uses too);
- ``volatility``: standard deviation of the 20 daily log returns up to t (:func:`kronos.rules.trailing_volatility`);
- ``beta``: 60-day regression slope of the daily return on the equal-weighted return of the decisions'
  instruments (at least 20 days);
- ``size``: log dollar volume (close x volume), averaged over the 20 rows up to t.

:func:`neutralize` regresses a list of them out of a signal, per date, cross-sectionally.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos.backtest.labels import wide_field
from kronos.rules import TRAILING, abnormal_volume, trailing_volatility
BETA_WINDOW = 60
FEATURES = ("abnormal_volume", "volatility", "beta", "size")


def wide_features(close: pd.DataFrame, volume: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{feature: wide [calendar x instruments]} from wide raw closes and volumes (NaN where absent)."""
    ret = close / close.shift(1) - 1.0
    market = ret.mean(axis=1)
    cov = ret.rolling(BETA_WINDOW, min_periods=TRAILING).cov(market)
    var = market.rolling(BETA_WINDOW, min_periods=TRAILING).var()
    return {
        "abnormal_volume": pd.DataFrame(abnormal_volume(volume.to_numpy(), axis=0), index=volume.index,
                                        columns=volume.columns),
        "volatility": pd.DataFrame(trailing_volatility(close.to_numpy(), axis=0), index=close.index,
                                   columns=close.columns),
        "beta": cov.div(var.where(var > 0), axis=0),
        "size": np.log((close * volume).where(volume > 0)).rolling(TRAILING, min_periods=1).mean(),
    }


def lookback_features(panel, decisions: pd.DataFrame) -> pd.DataFrame:
    """Every feature of :data:`FEATURES` for each decision row.

    Args:
        panel: ``Panel`` (raw prices per instrument).
        decisions: frame with ``datetime`` and ``instrument`` (panel names).

    Returns:
        DataFrame aligned with ``decisions``' rows (same index), columns :data:`FEATURES`.
    """
    names = sorted(set(decisions["instrument"]))
    wide = wide_features(wide_field(panel, names, "close"), wide_field(panel, names, "volume"))
    keys = pd.MultiIndex.from_arrays([pd.DatetimeIndex(decisions["datetime"]), decisions["instrument"]])
    out = pd.DataFrame({name: frame.stack(future_stack=True) for name, frame in wide.items()})
    return out.reindex(keys).set_axis(decisions.index)


def neutralize(signal: pd.Series, exposures: pd.DataFrame) -> pd.Series:
    """``signal`` with ``exposures`` regressed out per date (OLS with an intercept, cross-sectionally).

    Args:
        signal: Series on (datetime, instrument).
        exposures: DataFrame on the same index, one column per exposure (a categorical one, e.g. an
            industry, as dummy columns).

    Returns:
        The residual on (datetime, instrument) (NaN where the signal or an exposure is missing; a date
        with fewer names than regressors keeps its demeaned signal).
    """
    frame = pd.concat([signal.rename("_s"), exposures], axis=1).dropna()
    out = pd.Series(np.nan, index=signal.index, name=signal.name)
    parts = []
    for _, day in frame.groupby(level="datetime", sort=False):
        y = day["_s"].to_numpy(np.float64)
        x = np.column_stack([np.ones(len(day)), day.drop(columns="_s").to_numpy(np.float64)])
        if len(day) > x.shape[1]:
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            resid = y - x @ coef
        else:
            resid = y - y.mean()
        parts.append(pd.Series(resid, index=day.index))
    if parts:
        out.loc[pd.concat(parts).index] = pd.concat(parts).to_numpy()
    return out

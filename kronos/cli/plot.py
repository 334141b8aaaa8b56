"""Static PNG of a forecast: history close, mean forecast and a quantile band (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kronos.atomic import atomic_file  # noqa: E402
from kronos.inference.frame import TIME_COLUMN  # noqa: E402


def plot_forecast(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    band: tuple[np.ndarray, np.ndarray] | None,
    path: str | Path,
    title: str = "Kronos forecast",
) -> Path:
    """Write a two-panel PNG (close on top, volume below) to ``path``.

    Args:
        history: L rows with ``timestamps`` and ``close`` (``volume`` optional).
        forecast: H rows with ``timestamps``, ``close`` and ``volume`` (the point forecast: the median of the paths).
        band: (lower, upper) close quantiles, each [H], or None for no band.
        path: target PNG, written to a temporary name then renamed.
        title: figure title.
    """
    fig, (ax_price, ax_vol) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax_price.plot(history[TIME_COLUMN], history["close"], color="#1f77b4", lw=1.2, label="history close")
    ax_price.plot(forecast[TIME_COLUMN], forecast["close"], color="#d62728", lw=1.4, label="forecast close (mean)")
    if band is not None:
        ax_price.fill_between(
            forecast[TIME_COLUMN], band[0], band[1], color="#d62728", alpha=0.18, label="forecast quantile band"
        )
    ax_price.set_title(title)
    ax_price.set_ylabel("price")
    ax_price.legend(loc="upper left")
    ax_price.grid(alpha=0.3)
    if "volume" in history.columns:
        ax_vol.bar(history[TIME_COLUMN], history["volume"], width=_bar_width(history), color="#1f77b4", alpha=0.6)
    ax_vol.bar(forecast[TIME_COLUMN], forecast["volume"], width=_bar_width(forecast), color="#d62728", alpha=0.6)
    ax_vol.set_ylabel("volume")
    ax_vol.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    target = Path(path)
    try:
        with atomic_file(target, "wb") as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        plt.close(fig)
    return target


def _bar_width(frame: pd.DataFrame) -> float:
    """Bar width in matplotlib date units (days): 80% of the median spacing."""
    ts = pd.to_datetime(frame[TIME_COLUMN])
    if len(ts) < 2:
        return 0.8
    return 0.8 * ts.diff().dropna().median() / pd.Timedelta(days=1)

"""Rolling forecast origins of one split: the windows every model and baseline is scored on.

An origin is one (decision date, series) window of the datamodule's evaluation batches: the L
lookback rows are the history, the next H rows the realised future. Origins are chosen once and
shared by every forecaster, so all rows of the report are measured on exactly the same windows.

Stride rule: the split's distinct decision dates are sorted and every ``stride``-th one is kept,
starting from the first; every series with a window at a kept date contributes an origin there
(so series stay aligned in time and a stride of H gives non-overlapping forecast windows).

Origins are never chosen by what happens after them: a series whose future is partly missing (a
suspension, a delisting) keeps its origin, the steps that exist are scored and the missing ones are
counted (``missing``). Only a date beyond which the data holds no close at all for any series (the end
of the data) is left out, since nothing can be scored there.

Batches are read by :func:`kronos.inference.decisions.decision_arrays` (the one decision-batch layout) and
:meth:`Origins.batches` hands the kept origins back in that layout to the decision forecasts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from kronos.data.errors import DataValidationError
from kronos.inference.decisions import decision_arrays


@dataclass
class Origins:
    """The selected origins, as contiguous arrays (N origins, L lookback, H horizon, F features).

    Attributes:
        x_hist: float32 [N, L, F] lookback normalised with lookback-only statistics.
        x_stamp: int64 [N, L, 5] and y_stamp: int64 [N, H, 5] calendar fields.
        mean, std: float32 [N, F] the lookback statistics (to de-normalise forecasts).
        hist_close: float64 [N, L] raw lookback closes; future_close: float64 [N, H] realised closes.
        instrument: object [N] series names; datetime: int64 [N] decision time (ns).
        hist_raw: float64 [N, L, F] raw lookback features; future_raw: float64 [N, H, F] raw realised
            features (NaN where missing); None when the batches carry no ``raw`` key.
        features: the F feature names of ``hist_raw``/``future_raw``.
        skipped: origins dropped at the kept dates, by reason.
        missing: kept origins with a partly missing future (``origins_with_missing_future``) and the
            future closes missing over all kept origins (``missing_future_steps``).
    """

    x_hist: np.ndarray
    x_stamp: np.ndarray
    y_stamp: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    hist_close: np.ndarray
    future_close: np.ndarray
    instrument: np.ndarray
    datetime: np.ndarray
    hist_raw: np.ndarray | None = None
    future_raw: np.ndarray | None = None
    features: tuple[str, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.instrument)

    @property
    def lookback(self) -> int:
        return self.x_hist.shape[1]

    @property
    def horizon(self) -> int:
        return self.future_close.shape[1]

    @property
    def last_close(self) -> np.ndarray:
        """float64 [N] the close at each decision time."""
        return self.hist_close[:, -1]

    def chunks(self, size: int) -> Iterator[slice]:
        """Consecutive slices of at most ``size`` origins."""
        for start in range(0, len(self), size):
            yield slice(start, min(start + size, len(self)))

    def batches(self, size: int) -> Iterator[dict[str, Any]]:
        """The origins as decision batches of at most ``size`` (the layout kronos.inference.decisions reads)."""
        for sl in self.chunks(size):
            yield {
                "x": torch.from_numpy(self.x_hist[sl]),
                "stamp": torch.from_numpy(np.concatenate([self.x_stamp[sl], self.y_stamp[sl]], axis=1)),
                "y_stamp": torch.from_numpy(self.y_stamp[sl]),
                "instrument": list(self.instrument[sl]),
                "datetime": torch.from_numpy(self.datetime[sl]),
                "mean": torch.from_numpy(self.mean[sl]),
                "std": torch.from_numpy(self.std[sl]),
                "close": torch.from_numpy(np.concatenate([self.hist_close[sl], self.future_close[sl]], axis=1)),
            }


def kept_dates(datamodule: Any, split: str, stride: int, batch_size: int) -> np.ndarray:
    """Every ``stride``-th distinct decision time (int64 ns) of ``split``, from the first."""
    dates = [np.asarray(b["datetime"], dtype=np.int64) for b in datamodule.eval_dataloader(split, batch_size=batch_size)]
    if not dates:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate(dates))[::stride]


def collect_origins(datamodule: Any, split: str, stride: int, batch_size: int) -> Origins:
    """The rolling origins of ``split`` (see the module docstring for the stride rule).

    An origin is skipped (counted in ``skipped``) when its lookback closes are not all finite and
    positive (``bad_lookback``: the log-normal baseline and MASE need them), or when no series has any
    realised close after its date (``beyond_data``: the data ends there). A partly missing future
    keeps the origin (see ``Origins.missing``).

    Raises:
        DataValidationError: no origin is left (names the split and what to change).
    """
    L, H = int(datamodule.lookback), int(datamodule.horizon)
    keep_at = kept_dates(datamodule, split, stride, batch_size)
    keys = ("x_hist", "x_stamp", "y_stamp", "hist_close", "future_close", "hist_raw", "future_raw", "mean", "std",
            "instrument", "datetime")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    skipped = {"bad_lookback": 0, "beyond_data": 0}
    for batch in datamodule.eval_dataloader(split, batch_size=batch_size):
        when = np.asarray(batch["datetime"], dtype=np.int64)
        at = np.isin(when, keep_at)
        if not at.any():
            continue
        arrays = decision_arrays(batch)
        if arrays["x_hist"].shape[1] != L or arrays["y_stamp"].shape[1] != H:
            raise ValueError(f"evaluation batch holds {arrays['x_hist'].shape[1]} lookback rows and "
                             f"{arrays['y_stamp'].shape[1]} horizon steps; the datamodule says {L} and {H}")
        if "raw" in batch:
            raw = np.asarray(batch["raw"], dtype=np.float64)
            arrays["hist_raw"], arrays["future_raw"] = raw[:, :L], raw[:, L:L + H]
        hist = arrays["hist_close"]
        sane = np.isfinite(hist).all(axis=1) & (hist > 0).all(axis=1)
        skipped["bad_lookback"] += int((at & ~sane).sum())
        keep = at & sane
        for key, value in arrays.items():
            parts[key].append(value[keep])
    joined = {k: np.concatenate(v) for k, v in parts.items() if v}
    if joined:
        # A date is scorable when some series has a realised close after it; which series do is not asked.
        some = np.isfinite(joined["future_close"]).any(axis=1)
        live = np.isin(joined["datetime"], np.unique(joined["datetime"][some]))
        skipped["beyond_data"] = int((~live).sum())
        joined = {k: v[live] for k, v in joined.items()}
    total = len(joined["datetime"]) if joined else 0
    if total == 0:
        raise DataValidationError(
            f"split {split!r} has no evaluation origin with a realised future (kept dates: {len(keep_at)}, "
            f"skipped: {skipped}): lengthen the split, lower evaluate.stride or shorten data.lookback/horizon"
        )
    order = np.lexsort((joined["instrument"].astype(str), joined["datetime"]))
    ordered = {k: v[order] for k, v in joined.items()}
    gaps = ~np.isfinite(ordered["future_close"])
    missing = {"origins_with_missing_future": int(gaps.any(axis=1).sum()), "missing_future_steps": int(gaps.sum())}
    return Origins(**ordered, features=tuple(str(f) for f in datamodule.features), skipped=skipped, missing=missing)


_PREFIX = re.compile(r"^([A-Za-z]{2})\d+$")            # SH600000, SZ000001, BJ430047
_SUFFIX = re.compile(r"^[0-9A-Za-z]+\.([A-Za-z]{1,4})$")  # 600000.SH, AAPL.O
_QUALIFIED = re.compile(r"^([A-Za-z]+)[:/]")           # NASDAQ:AAPL, binance/BTCUSDT


def exchange_group(instrument: str) -> str:
    """The market a series belongs to, read from its name (``evaluate.group_by: exchange``).

    Rule: a two-letter prefix before digits (``SH600000`` -> SH), an exchange suffix after a dot
    (``600000.SH`` -> SH), or a qualifier before ``:`` or ``/`` (``NASDAQ:AAPL`` -> NASDAQ),
    upper-cased; any other name is in group ``other``.
    """
    name = str(instrument)
    for pattern in (_PREFIX, _SUFFIX, _QUALIFIED):
        match = pattern.match(name)
        if match:
            return match.group(1).upper()
    return "other"


def training_closes(datamodule: Any, split: str = "train") -> dict[str, np.ndarray]:
    """Each series' raw closes on ``split`` (the training split by default): {series: float64 [T]}.

    What the ``garch`` baseline is estimated on (where the model learns its weights). Rows are those of the
    datamodule's panel between the split's start and end (for a mixture, the span over its groups). A
    datamodule without a panel or without that split (test doubles, a source without a training split)
    gives ``{}``, and the suite leaves ``garch`` out with that reason.
    """
    describe = getattr(datamodule, "describe", None)
    if describe is None or not hasattr(datamodule, "panel"):
        return {}
    span = describe().get("splits", {}).get(split)
    if not span:
        return {}
    start, end = np.datetime64(span["start"], "ns"), np.datetime64(span["end"], "ns")
    panel = datamodule.panel
    ci = list(panel.features).index("close")
    out = {}
    for name, stamps, values, _ in panel.iter_series():
        rows = (stamps >= start) & (stamps <= end)
        if rows.any():
            out[str(name)] = np.asarray(values[rows, ci], dtype=np.float64)
    return out

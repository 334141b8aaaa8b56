"""Return forecasting (the paper's return task): cross-sectional IC of the predicted H-step return.

Signal: the predicted return ``mean-path close at step H / last observed close - 1``. Label: the
realised return to the last close that exists within the horizon (a series that stops trading is
scored on the move it made until then; one without any future close has no label and is counted).
Per decision date the Pearson IC and the Spearman RankIC across series; ``ic`` / ``rank_ic`` are their
means over dates and ``rank_ic_t`` the t over dates (HAC with the windows' overlap when stride < H).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos.stats import daily_ic, ic_summary


def realised_return(last_close: np.ndarray, future_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return to the last existing close of the horizon: last_close [N], future_close [N, H].

    Returns:
        (return [N], NaN without any future close; partial [N] bool, the step-H close is missing).
    """
    future = np.asarray(future_close, dtype=np.float64)
    seen = np.isfinite(future)
    last_seen = np.where(seen.any(axis=1), seen.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1), -1)
    rows = np.arange(len(future))
    end = np.where(last_seen >= 0, future[rows, np.maximum(last_seen, 0)], np.nan)
    return end / np.asarray(last_close, dtype=np.float64) - 1.0, ~seen[:, -1]


def score_returns(predicted: np.ndarray, realised: np.ndarray, dates: np.ndarray, instruments: np.ndarray,
                  overlap: int) -> dict[str, Any]:
    """The return task's row for one forecaster.

    Args:
        predicted, realised: [N] H-step returns; dates, instruments: [N].
        overlap: ``window_overlap(H, stride)``.

    Returns:
        ``ic``, ``rank_ic``, ``rank_ic_t``, ``icir``, ``dates`` (with a defined RankIC), and ``_loss``
        {date: -RankIC} for the Diebold–Mariano test (dropped before writing).
    """
    frame = pd.DataFrame({"datetime": np.asarray(dates), "instrument": np.asarray(instruments, dtype=str),
                          "signal": np.asarray(predicted, dtype=np.float64),
                          "label": np.asarray(realised, dtype=np.float64)})
    frame = frame[np.isfinite(frame["signal"]) & np.isfinite(frame["label"])]
    pearson = daily_ic(frame, "signal", "label", by="datetime", method="pearson")
    spearman = daily_ic(frame, "signal", "label", by="datetime", method="spearman")
    pearson, spearman = pearson[np.isfinite(pearson)], spearman[np.isfinite(spearman)]
    rank = ic_summary(spearman, overlap=overlap) if len(spearman) else {"ic": np.nan, "icir": np.nan, "t": np.nan}
    return {
        "ic": float(pearson.mean()) if len(pearson) else float("nan"),
        "rank_ic": float(rank["ic"]),
        "rank_ic_t": float(rank["t"]),
        "icir": float(rank["icir"]),
        "dates": int(len(spearman)),
        "_loss": {int(d): -float(v) for d, v in spearman.items()},
    }

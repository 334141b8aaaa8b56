"""Results of the backtest's per-signal analysis kept beside the forecasts they came from, keyed by content.

A second backtest on stored forecasts recomputes only what its changed settings touch: a result (a signal's
IC rows, factor analysis, long-short portfolio, Qlib simulation) is stored under
``<forecast store>/analysis/<kind>-<digest>.pkl``, where the digest covers the signal's values and index,
the labels, every setting the computation reads, and the source code of the modules that compute it (so an
edit of the statistics never reads a stale result). Changing ``backtest.signal`` reuses everything (the same
signal columns under other names), ``backtest.topk`` reuses all but the simulations, a cost all but the
simulations and the long-short rows. The report's figures are kept the same way, as PNG bytes keyed by what
they plot (``figure_<name>-<digest>.pkl``), so a re-run redraws only the figures whose data changed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import pandas as pd

from kronos.atomic import atomic_path

T = TypeVar("T")
# The modules whose code computes the cached results (their source enters every key).
ANALYSIS_MODULES = ("kronos.backtest.metrics", "kronos.backtest.factor", "kronos.backtest.performance",
                    "kronos.backtest.portfolio", "kronos.backtest.markets", "kronos.stats")


# The modules that draw the report's figures (a figure is kept as its PNG bytes, keyed by the data it plots).
FIGURE_MODULES = ("kronos.backtest.report", "kronos.reporting")


def _code_digest(modules: Sequence[str] = ANALYSIS_MODULES) -> str:
    digest = hashlib.sha256()
    for name in modules:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _feed(digest: Any, part: Any) -> None:
    """Hash one part of a key: pandas objects by values and index (not name), anything else as JSON."""
    if isinstance(part, (pd.Series, pd.DataFrame)):
        digest.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
        if isinstance(part, pd.DataFrame):
            digest.update(json.dumps([str(c) for c in part.columns]).encode())
    else:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())


class AnalysisCache:
    """``get(kind, parts, compute)``: the stored result of ``compute()`` for these parts, else compute and store.

    Args:
        directory: where results go (None: nothing is stored, every call computes).
        modules: the modules whose source enters every key (default: the analysis's, :data:`ANALYSIS_MODULES`;
            the report's figures use :data:`FIGURE_MODULES`).
    """

    def __init__(self, directory: Path | None, modules: Sequence[str] = ANALYSIS_MODULES) -> None:
        self.directory = directory
        self.hits, self.misses = 0, 0
        self._code = _code_digest(modules) if directory is not None else ""

    def get(self, kind: str, parts: Sequence[Any], compute: Callable[[], T]) -> T:
        if self.directory is None:
            return compute()
        digest = hashlib.sha256(f"{kind}|{self._code}".encode())
        for part in parts:
            _feed(digest, part)
        path = self.directory / f"{kind}-{digest.hexdigest()[:24]}.pkl"
        if path.is_file():
            try:
                with open(path, "rb") as fh:
                    value = pickle.load(fh)
                self.hits += 1
                return value
            except (OSError, pickle.UnpicklingError, EOFError):
                pass  # unreadable: compute it again
        value = compute()
        self.misses += 1
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return value

    def record(self) -> dict[str, int]:
        """``{reused, computed}`` results of this run (for metrics.json)."""
        return {"reused": self.hits, "computed": self.misses}

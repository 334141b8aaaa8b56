"""Strict JSON for every file the project writes: NaN and inf become ``null``, numpy values plain Python.

``json.dumps`` writes bare ``NaN`` by default, which strict parsers (and other languages) refuse. Every
``metrics.json``, manifest and report payload goes through :func:`strict_json` / :func:`dumps_strict`;
a statistic that cannot be computed is ``null`` (with its reason beside it, where the writer knows one).
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, numpy scalars/arrays as Python, mappings walked.

    Keys become strings; tuples and arrays become lists; paths and other unknown objects become ``str``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [strict_json(v) for v in value.tolist()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [strict_json(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return strict_json(value.item())
    return str(value)


def dumps_strict(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see :func:`strict_json`); never contains NaN or Infinity."""
    return json.dumps(strict_json(obj), indent=indent, allow_nan=False, ensure_ascii=False)

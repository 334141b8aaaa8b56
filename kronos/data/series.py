"""The item every source's ``iter_series()`` yields, for consumers that stream series (the window store).

``SeriesItem`` = (symbol, timestamps datetime64[ns] [T] strictly increasing, values float32 [T, 6] raw
FEATURES, member bool [T] or None), yielded in symbol order.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from kronos.data.panel import Panel

SeriesItem = Tuple[str, np.ndarray, np.ndarray, Optional[np.ndarray]]


def iter_panel(panel: Panel) -> Iterator[SeriesItem]:
    """A loaded Panel's series as ``iter_series`` items, in symbol order (sources read whole)."""
    for i in sorted(range(len(panel.instruments)), key=lambda k: panel.instruments[k]):
        member = panel.member[i] if panel.member is not None else None
        yield panel.instruments[i], panel.timestamps[i], panel.values[i], member

"""A test source that returns a fixed Panel (no ``iter_series``: the store falls back to the Panel's)."""

from __future__ import annotations

from kronos.data.panel import Panel


class PanelSource:
    """``load()`` returns the Panel it was given."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel

    def load(self) -> Panel:
        return self.panel

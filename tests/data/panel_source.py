"""A test source that returns a fixed Panel (SourceBase's defaults: not streaming, no region, no provider)."""

from __future__ import annotations

from kronos.data.panel import Panel
from kronos.data.source import SourceBase


class PanelSource(SourceBase):
    """``load()`` returns the Panel it was given."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel

    @property
    def origin(self) -> str:
        return self.panel.origin

    def load(self) -> Panel:
        return self.panel

"""The ``Source`` protocol: every ability the datamodule, the window store and the backtest ask a data
source for, declared once, and ``SourceBase``, whose defaults are the explicit "this source does not".

A source (SyntheticSource, CSVSource, ParquetSource, QlibSource, MixtureSource, or your own) has:

* ``origin``: a short name for messages and the store's metadata;
* ``region``: the market whose trading rules apply (``cn``, ``us``), or None (the source does not know:
  CSV, Parquet, synthetic data; the backtest then uses ``backtest.region``);
* ``provider_uri``: the Qlib provider directory the data comes from, or None (the backtest then builds
  a provider from the loaded rows);
* ``load() -> Panel``: every series in memory;
* ``iter_series()``: the series one at a time (``kronos.data.series.SeriesItem``), for the memory-mapped
  store; a source that cannot stream yields its loaded Panel's series;
* ``parts()``: ``[(component name or None, source, weight)]``, the groups of series drawn by weight
  (a mixture's components; ``[(None, self, 1.0)]`` for a plain source);
* ``load_parts()``: ``[(Panel, weight)]``, the same groups loaded.

Subclass :class:`SourceBase` and override what your source does; what you leave is the documented
opt-out. ``KronosDataModule`` refuses an object that lacks any of these (:func:`check_source`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from kronos.data.panel import Panel
from kronos.data.series import SeriesItem

SOURCE_ABILITIES = ("origin", "region", "provider_uri", "load", "iter_series", "parts", "load_parts")


@runtime_checkable
class Source(Protocol):
    """What the datamodule, the store and the backtest use of a data source (see the module doc)."""

    @property
    def origin(self) -> str: ...

    @property
    def region(self) -> str | None: ...

    @property
    def provider_uri(self) -> Path | None: ...

    def load(self) -> Panel: ...

    def iter_series(self) -> Iterator[SeriesItem]: ...

    def parts(self) -> list[tuple[str | None, "Source", float]]: ...

    def load_parts(self) -> list[tuple[Panel, float]]: ...


class SourceBase:
    """Defaults of a plain, non-streaming source without market rules or a Qlib provider.

    Subclasses implement ``load`` and override what they can do better. Attributes are class-level, so
    they never enter a source's fingerprint (``kronos.data.store.describe_inputs`` reads instance fields).
    """

    region: str | None = None  # no market rules of its own: backtest.region decides
    provider_uri: Path | None = None  # not read from a Qlib provider

    @property
    def origin(self) -> str:
        """The class name (sources with a path or provider override this)."""
        return type(self).__name__

    def load(self) -> Panel:
        raise NotImplementedError(f"{type(self).__name__} must implement load() -> Panel")

    def iter_series(self) -> Iterator[SeriesItem]:
        """Not streaming: the loaded Panel's series."""
        yield from self.load().iter_series()

    def parts(self) -> list[tuple[str | None, Source, float]]:
        """One group: the source itself, weight 1."""
        return [(None, self, 1.0)]

    def load_parts(self) -> list[tuple[Panel, float]]:
        """One group: the loaded Panel, weight 1."""
        return [(self.load(), 1.0)]


def is_mixture(source: Source) -> bool:
    """True when the source's groups are named components (a mixture), even a mixture of one."""
    return any(name is not None for name, _, _ in source.parts())


def check_source(source: object) -> Source:
    """``source`` itself when it has every ability of :class:`Source`, else a TypeError naming what is missing."""
    missing = [name for name in SOURCE_ABILITIES if not hasattr(source, name)]
    if missing:
        raise TypeError(
            f"data source {type(source).__name__} lacks {missing}: a source needs {list(SOURCE_ABILITIES)}; "
            "subclass kronos.data.source.SourceBase, which supplies the defaults (see its docstring)")
    return source  # type: ignore[return-value]

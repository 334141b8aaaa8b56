"""``MixtureSource``: several sources trained on together, each epoch's windows drawn by weight.

Each component is any source (synthetic, CSV, Qlib, Parquet, ...) with a weight. Its series keep
their own calendar (splits are resolved per component, so markets with different date ranges
each give train/val/test windows) and are named ``<component>:<symbol>``. The datamodule's
training sampler draws ``weight_k / sum(weights)`` of each epoch's windows from component k,
whatever the components' sizes (a small component is repeated, a large one subsampled).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator, Mapping

import numpy as np

from kronos.data.errors import DataValidationError
from kronos.data.panel import Panel
from kronos.data.source import SourceBase, check_source


class MixtureSource(SourceBase):
    """Weighted components, each a source.

    Args:
        components: ``{name: {"source": <source>, "weight": float}}`` in the order given; a weight of
            0 keeps the component's series in the data (and its validation/test windows) but draws
            none of its training windows.

    Raises:
        DataValidationError: no components, a component without a source, or weights that are
            negative or all zero.
    """

    def __init__(self, components: Mapping[str, Mapping[str, Any]]) -> None:
        if not components:
            raise DataValidationError("data.source.components: a mixture needs at least one component.")
        self.components: dict[str, tuple[Any, float]] = {}
        for name, spec in components.items():
            if not isinstance(spec, Mapping) or "source" not in spec:
                raise DataValidationError(
                    f"data.source.components.{name}: expected {{source: {{_target_: ...}}, weight: <number>}}, "
                    f"got {spec!r}."
                )
            weight = float(spec.get("weight", 1.0))
            if not np.isfinite(weight) or weight < 0:
                raise DataValidationError(f"data.source.components.{name}.weight={weight}: use a number >= 0.")
            if ":" in str(name):
                raise DataValidationError(f"data.source.components.{name}: a component name cannot contain ':'.")
            self.components[str(name)] = (check_source(spec["source"]), weight)
        if sum(w for _, w in self.components.values()) <= 0:
            raise DataValidationError("data.source.components: all mixture weights are 0; give one a positive weight.")

    @property
    def origin(self) -> str:
        return "mixture(" + ", ".join(self.components) + ")"

    @property
    def weights(self) -> dict[str, float]:
        """Weight per component name."""
        return {name: w for name, (_, w) in self.components.items()}

    def parts(self) -> list[tuple[str, Any, float]]:
        """(name, source, weight) per component, in order (the store builds one group of each)."""
        return [(name, src, w) for name, (src, w) in self.components.items()]

    def load_parts(self) -> list[tuple[Panel, float]]:
        """(panel, weight) per component; instruments renamed ``<component>:<symbol>``, origin = component name."""
        out = []
        for name, src, weight in self.parts():
            panel = src.load()
            out.append((replace(panel, instruments=[f"{name}:{s}" for s in panel.instruments], origin=name), weight))
        return out

    def load(self) -> Panel:
        """All components' series in one Panel (membership all True where a component has none)."""
        panels = [p for p, _ in self.load_parts()]
        has_member = any(p.member is not None for p in panels)
        member = None
        if has_member:
            member = [m for p in panels for m in (p.member or [np.ones(len(t), bool) for t in p.timestamps])]
        return Panel([n for p in panels for n in p.instruments], [t for p in panels for t in p.timestamps],
                     [v for p in panels for v in p.values], member, self.origin)

    def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
        """Every component's series in order, named ``<component>:<symbol>``."""
        for name, src, _ in self.parts():
            for symbol, ts, values, member in src.iter_series():
                yield f"{name}:{symbol}", ts, values, member

    def fingerprint(self) -> dict[str, Any]:
        """The store key's inputs: the components' sources, NOT the weights (they only change the
        draw, so re-weighting never rebuilds the store)."""
        from kronos.data.store import describe_inputs

        return {"class": f"{type(self).__module__}.{type(self).__qualname__}",
                "components": {name: describe_inputs(src) for name, (src, _) in self.components.items()}}

"""The Source protocol: every shipped source declares every ability; the datamodule asks for them
directly (no probing) and refuses an object without them; eval loaders use the per-group split bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from kronos.data.csv_source import CSVSource
from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError
from kronos.data.mixture import MixtureSource
from kronos.data.panel import Panel
from kronos.data.parquet_source import ParquetSource
from kronos.data.qlib_source import QlibSource
from kronos.data.source import SOURCE_ABILITIES, Source, SourceBase, check_source, is_mixture
from kronos.data.synthetic import SyntheticSource

L, H = 16, 4


def _sources(tmp_path: Path) -> list[object]:
    syn = SyntheticSource(n_instruments=3, n_steps=80, seed=0)
    return [syn, CSVSource(tmp_path / "a.csv"), ParquetSource(tmp_path / "a.parquet"),
            QlibSource(tmp_path / "qlib", region="us"), MixtureSource({"x": {"source": syn, "weight": 1.0}})]


def test_every_shipped_source_declares_every_ability(tmp_path: Path) -> None:
    for source in _sources(tmp_path):
        assert isinstance(source, Source), type(source).__name__
        assert all(hasattr(source, name) for name in SOURCE_ABILITIES)
    syn, csv, parquet, qlib, mix = _sources(tmp_path)
    assert (qlib.region, qlib.provider_uri) == ("us", tmp_path / "qlib")  # the only one with market rules
    assert all(s.region is None and s.provider_uri is None for s in (syn, csv, parquet, mix))  # explicit opt-outs
    assert csv.origin == f"CSVSource({tmp_path / 'a.csv'})" and qlib.origin == f"QlibSource({tmp_path / 'qlib'})"
    assert syn.parts() == [(None, syn, 1.0)] and not is_mixture(syn)
    assert mix.parts() == [("x", syn, 1.0)] and is_mixture(mix)  # a mixture of one is still a mixture


def test_source_base_defaults_load_once_through_the_panel() -> None:
    panel = SyntheticSource(n_instruments=2, n_steps=40, seed=3).load()

    class Fixed(SourceBase):
        def load(self) -> Panel:
            return panel

    src = Fixed()
    assert [s for s, *_ in src.iter_series()] == list(panel.instruments)
    assert src.load_parts() == [(panel, 1.0)] and src.origin == "Fixed"
    with pytest.raises(NotImplementedError, match="SourceBase must implement load"):
        SourceBase().load()


def test_an_object_without_the_abilities_is_refused_by_name() -> None:
    class OnlyLoad:
        def load(self) -> Panel:
            raise AssertionError("never called")

    with pytest.raises(TypeError, match=r"OnlyLoad lacks \['origin', 'region', 'provider_uri', 'iter_series'"):
        KronosDataModule(OnlyLoad(), lookback=L, horizon=H)
    with pytest.raises(TypeError, match="SourceBase"):
        MixtureSource({"x": {"source": OnlyLoad()}})
    assert check_source(SyntheticSource()) is not None


@pytest.mark.parametrize("mixture", [False, True])
def test_eval_loader_reads_the_group_bounds(mixture: bool) -> None:
    """The path that once fell back to a non-existent ``self._bounds``: eval loaders of a plain source and
    of a mixture (several groups, each with its own calendar and split bounds)."""
    plain = SyntheticSource(n_instruments=3, n_steps=200, seed=1)
    source = (MixtureSource({"a": {"source": plain, "weight": 1.0},
                             "b": {"source": SyntheticSource(n_instruments=2, n_steps=200, seed=2, start="2021-01-01"),
                                   "weight": 1.0}}) if mixture else plain)
    dm = KronosDataModule(source, lookback=L, horizon=H, batch_size=8)
    loader = dm.eval_dataloader("test")  # before setup(): the loader sets the module up itself
    assert len(dm._group_bounds) == (2 if mixture else 1)
    decisions = [(name.split(":")[0], int(t)) for b in loader for name, t in zip(b["instrument"], b["datetime"])]
    assert len(decisions) >= dm.describe()["splits"]["test"]["eval_windows"] > 0
    # every decision lies inside its own group's test bounds
    for k, group in enumerate(dm.store.groups):
        start, end = dm._group_bounds[k]["test"]
        times = [t for name, t in decisions if not mixture or name == group.name]
        assert times and start <= min(times) and max(times) <= end
    with pytest.raises(KeyError, match=r"unknown split 'holdout'; configured: \['train', 'val', 'test'\]"):
        dm.eval_dataloader("holdout")


def test_a_source_without_series_is_a_validation_error() -> None:
    class Empty(SourceBase):
        def load_parts(self) -> list[tuple[Panel, float]]:
            return []

    with pytest.raises(DataValidationError, match="Empty: the data source returned no series"):
        KronosDataModule(Empty(), lookback=L, horizon=H).eval_dataloader("test")

"""The forecast store (kronos.inference.store), per-window draws, rank sharding, resume and the progress line."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.data.datamodule import KronosDataModule
from kronos.data.synthetic import SyntheticSource
from kronos.inference import store as store_mod
from kronos.inference.decisions import DecisionForecast, collect_decision_forecasts
from kronos.inference.progress import ProgressLine
from kronos.inference.ranks import Ranks
from kronos.inference.settings import SamplingSettings
from kronos.inference.store import (ForecastStore, ShardWriter, concat_forecasts, data_fingerprint, fill_store,
                                    forecast_key, weights_fingerprint)
from kronos.inference.token_sampling import WindowDraws, inverse_cdf, sample_from_logits, window_keys

L, H = 16, 3
SAMPLING = SamplingSettings(T=1.0, top_p=0.9, sample_count=3, seed=4)


@pytest.fixture(scope="module")
def datamodule() -> KronosDataModule:
    source = SyntheticSource(n_instruments=4, n_steps=120, seed=1)
    return KronosDataModule(source, lookback=L, horizon=H, splits={"train": 0.6, "val": 0.1, "test": 0.3},
                            batch_size=8, seed=0)


@pytest.fixture(scope="module")
def predictor(tiny_pair) -> KronosPredictor:
    tokenizer, model = tiny_pair
    return KronosPredictor(Kronos.from_pretrained(model), KronosTokenizer.from_pretrained(tokenizer), device="cpu",
                           max_context=64)


class CountingForecaster:
    """Deterministic paths from the window's own inputs (no randomness); counts the windows it forecast."""

    device = "cpu"

    def __init__(self, fail_after: int | None = None) -> None:
        self.windows, self.calls, self.fail_after = 0, 0, fail_after

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, generator=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.windows += x.shape[0]
        base = x[:, -1:, :].unsqueeze(1)                                   # [B, 1, 1, F]
        steps = torch.arange(1, y_stamp.shape[1] + 1, dtype=torch.float32)[None, None, :, None]
        paths = torch.arange(sampling.sample_count, dtype=torch.float32)[None, :, None, None]
        return (base + 0.01 * steps + 0.001 * paths).expand(-1, -1, -1, x.shape[2]).contiguous()


def _key(datamodule, sampling=SAMPLING, weights=None):
    return forecast_key(weights=weights or {"tokenizer": {"location": "t"}, "predictor": {"location": "p"}},
                        data=data_fingerprint(datamodule), windows={"split": "test", "stride": 1},
                        sampling=sampling, max_context=64, cache="exact")


def _read_all(store: ForecastStore) -> DecisionForecast:
    parts = list(store.read(5))
    joined = concat_forecasts(parts)
    order = np.lexsort((joined.instrument.astype(str), joined.datetime))
    return store_mod._take(joined, order)


def _assert_same(a: DecisionForecast, b: DecisionForecast) -> None:
    for f in dataclasses.fields(DecisionForecast):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name


def test_every_field_round_trips_through_a_shard(tmp_path: Path, datamodule) -> None:
    forecast = collect_decision_forecasts(CountingForecaster(), datamodule.eval_dataloader("test", 7), SAMPLING)
    store = ForecastStore.open(tmp_path, _key(datamodule))
    writer = ShardWriter(store, rank=0, shard_windows=10)
    writer.add(forecast)
    writer.flush()
    assert len(store.shards()) == 1 and store.stored_ids().size == len(forecast)
    back = concat_forecasts(list(store.read(4)))
    _assert_same(back, forecast)


def test_a_window_stored_twice_is_read_once(tmp_path: Path, datamodule) -> None:
    """Two runs filling one store at once may both write a window: reading gives it once."""
    forecast = collect_decision_forecasts(CountingForecaster(), datamodule.eval_dataloader("test", 7), SAMPLING)
    store = ForecastStore.open(tmp_path, _key(datamodule))
    for _ in range(2):
        writer = ShardWriter(store, rank=0)
        writer.add(forecast)
        writer.flush()
    assert len(store.shards()) == 2
    back = concat_forecasts(list(store.read(6)))
    assert len(back) == len(forecast)
    _assert_same(back, forecast)


def test_a_field_added_to_decision_forecast_is_stored_without_code_changes(tmp_path: Path, datamodule,
                                                                             monkeypatch) -> None:
    """Other lanes add per-window fields (e.g. candle-repair counts): the store iterates dataclasses.fields."""
    Extended = dataclasses.make_dataclass("Extended", [("extra", np.ndarray), ("counts", dict)],
                                          bases=(DecisionForecast,))
    base = collect_decision_forecasts(CountingForecaster(), datamodule.eval_dataloader("test", 7), SAMPLING)
    n = len(base)
    extended = Extended(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                        extra=np.arange(n, dtype=np.int32), counts={"high": np.ones(n, np.int64)})
    monkeypatch.setattr(store_mod, "DecisionForecast", Extended)
    store = ForecastStore.open(tmp_path, _key(datamodule))
    writer = ShardWriter(store, rank=0)
    writer.add(extended)
    writer.flush()
    back = next(store.read(n))
    assert isinstance(back, Extended)
    assert np.array_equal(back.extra, np.arange(n)) and back.extra.dtype == np.int32
    assert np.array_equal(back.repairs, base.repairs)  # the candle-repair counts every forecast carries
    assert np.array_equal(back.counts["high"], np.ones(n))
    assert "repairs" in store_mod.forecast_key(weights={}, data={}, windows={}, sampling=SAMPLING, max_context=1,
                                               cache="exact").fields["decision_fields"]


def test_the_key_changes_with_weights_sampling_and_data(tmp_path: Path, datamodule, tiny_pair) -> None:
    tokenizer, predictor = tiny_pair
    copy = tmp_path / "predictor"
    copy.mkdir()
    for f in predictor.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    before = weights_fingerprint(copy)
    assert before == weights_fingerprint(predictor)
    (copy / "training_info.json").write_text(json.dumps({"temperature": 0.8}))  # another lane's calibration
    assert weights_fingerprint(copy) != before
    base = _key(datamodule)
    assert _key(datamodule).digest == base.digest
    assert _key(datamodule, dataclasses.replace(SAMPLING, sample_count=4)).digest != base.digest
    assert _key(datamodule, dataclasses.replace(SAMPLING, seed=5)).digest != base.digest
    other = KronosDataModule(SyntheticSource(n_instruments=4, n_steps=120, seed=2), lookback=L, horizon=H,
                             splits={"train": 0.6, "val": 0.1, "test": 0.3}, batch_size=8, seed=0)
    assert _key(other).digest != base.digest
    assert ForecastStore.open(tmp_path, base).root != ForecastStore.open(tmp_path, _key(other)).root


def test_a_half_written_shard_is_never_read(tmp_path: Path, datamodule) -> None:
    store = ForecastStore.open(tmp_path, _key(datamodule))
    (store.root / ".part-r0000-dead-000000.parquet.x1.tmp").write_bytes(b"PAR1 half")
    assert store.shards() == [] and store.stored_ids().size == 0


def test_a_killed_fill_resumes_with_only_the_missing_windows(tmp_path: Path, datamodule) -> None:
    batches = list(datamodule.eval_dataloader("test", 4))
    total = sum(len(b["instrument"]) for b in batches)
    store = ForecastStore.open(tmp_path / "a", _key(datamodule))
    killed = CountingForecaster(fail_after=len(batches) // 2)
    with pytest.raises(KeyboardInterrupt):  # shards of 8 windows: the kill loses the unwritten tail, never half a shard
        _fill_small(store, killed, batches)
    kept = store.stored_ids().size
    assert 0 < kept < total and kept % 8 == 0
    again = CountingForecaster()
    counts = _fill_small(store, again, batches)
    assert again.windows == total - kept == counts.computed and counts.reused == kept
    fresh = ForecastStore.open(tmp_path / "b", _key(datamodule))
    _fill_small(fresh, CountingForecaster(), batches)
    _assert_same(_read_all(store), _read_all(fresh))
    assert _fill_small(store, CountingForecaster(), batches).computed == 0


def _fill_small(store, forecaster, batches, ranks=None):
    return fill_store(store, forecaster, batches, SAMPLING, ranks=ranks, shard_windows=8)


def test_ranks_share_the_batches_and_together_fill_the_same_store(tmp_path: Path, datamodule, predictor) -> None:
    batches = list(datamodule.eval_dataloader("test", 5))
    one = ForecastStore.open(tmp_path / "one", _key(datamodule))
    fill_store(one, predictor, batches, SAMPLING)
    two = ForecastStore.open(tmp_path / "two", _key(datamodule))
    for rank in (0, 1):  # (sequentially here; under torchrun a barrier separates reading and writing)
        fill_store(two, predictor, batches, SAMPLING, ranks=Ranks(rank, 2))
    assert {p.name.split("-")[1] for p in two.shards()} == {"r0000", "r0001"}
    _assert_same(_read_all(one), _read_all(two))


def test_a_windows_paths_do_not_depend_on_its_batch(datamodule, predictor) -> None:
    """Per-window draws: batch size 7 vs 64 and a reversed order give the same tokens, window by window."""
    small = collect_decision_forecasts(predictor, datamodule.eval_dataloader("test", 7), SAMPLING)
    batches = list(datamodule.eval_dataloader("test", 64))
    large = collect_decision_forecasts(predictor, batches[::-1], SAMPLING)
    ids_small = list(zip(small.instrument, small.datetime))
    position = {key: i for i, key in enumerate(zip(large.instrument, large.datetime))}
    order = np.array([position[k] for k in ids_small])
    same = np.isclose(small.paths, large.paths[order], rtol=1e-4, atol=1e-5).all(axis=(1, 2, 3))
    assert same.all(), f"{(~same).sum()} of {len(same)} windows differ"
    other_seed = collect_decision_forecasts(predictor, batches, dataclasses.replace(SAMPLING, seed=5))
    assert not np.allclose(other_seed.paths[np.argsort(order)], small.paths)


def test_window_draws_are_uniform_and_inverse_cdf_follows_the_distribution() -> None:
    keys = window_keys(0, [f"S{i}" for i in range(4000)], np.arange(4000))
    u = WindowDraws(keys, 5).uniforms("cpu").numpy()
    assert u.shape == (20000,) and 0.0 <= u.min() and u.max() < 1.0
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert (np.abs(counts - 2000) < 5 * np.sqrt(2000)).all()
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).repeat(4, 1)
    assert inverse_cdf(probs, torch.tensor([0.05, 0.1, 0.69, 0.95], dtype=torch.float64)).tolist() == [0, 2, 2, 3]
    draws = WindowDraws(keys[:2], 3)
    logits = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    sampling = SamplingSettings(T=1.0, top_k=3, sample_count=3)
    tokens = sample_from_logits(logits, sampling, draws)
    kept = torch.topk(logits, 3).indices
    assert all(t in row for t, row in zip(tokens.tolist(), kept.tolist()))  # top-k filtering still applies


def test_progress_prints_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressLine(200, "backtest forecasts", stream=out, every_percent=25)
    for _ in range(20):
        bar.update(10)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4
    assert lines[-1].startswith("backtest forecasts: 200/200 windows (100 %),") and "left" in lines[-1]


def test_fp16_on_a_cpu_is_refused_and_bf16_runs(tiny_pair) -> None:
    from kronos.inference.validation import ForecastInputError

    tokenizer, model = tiny_pair
    pair = (Kronos.from_pretrained(model), KronosTokenizer.from_pretrained(tokenizer))
    with pytest.raises(ForecastInputError, match="precision=fp16 needs a CUDA device"):
        KronosPredictor(*pair, device="cpu", precision="fp16")
    with pytest.raises(ForecastInputError, match="precision='fp8'"):
        KronosPredictor(*pair, device="cpu", precision="fp8")
    bf16 = KronosPredictor(*pair, device="cpu", precision="bf16", max_context=32)
    x = torch.randn(2, 10, 6)
    stamp = torch.zeros(2, 10, 5, dtype=torch.long)
    out = bf16.forecast_normalized(x, stamp, torch.zeros(2, 2, 5, dtype=torch.long), SAMPLING)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_cli_lists_and_removes_stores(tmp_path: Path, datamodule, capsys) -> None:
    from kronos.cli.forecasts import run

    forecasts = tmp_path / "exp" / "forecasts"
    store = ForecastStore.open(forecasts, _key(datamodule))
    counts = _fill_small(store, CountingForecaster(), list(datamodule.eval_dataloader("test", 4)))
    store.write_manifest(counts)
    assert run(["--output-root", str(tmp_path), "--name", "exp", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 forecast store(s)" in out and store.root.name in out and f"{counts.requested} windows" in out
    from kronos.errors import KronosUserError

    with pytest.raises(KronosUserError, match="no forecast store"):
        run(["--output-root", str(tmp_path), "--name", "exp", "remove", "nope"])
    assert run(["--output-root", str(tmp_path), "--name", "exp", "remove", store.root.name]) == 0
    assert not store.root.exists()

"""The memory-mapped window store: identical batches to RAM, built once, atomic, validated, shared."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError
from kronos.data.panel import Panel
from kronos.data.parquet_source import ParquetSource
from kronos.data.source import SourceBase
from kronos.data.store import META, ensure_store, fingerprint, open_store
from kronos.data.synthetic import SyntheticSource
from tests.data.panel_source import PanelSource

L, H = 16, 4


def _member_panel() -> Panel:
    """Synthetic panel with membership gaps (one instrument leaves, one joins late)."""
    panel = SyntheticSource(n_instruments=4, n_steps=180, seed=5).load()
    member = [np.ones(180, bool) for _ in range(4)]
    member[1][120:] = False
    member[2][:60] = False
    member[3][90:100] = False
    return Panel(panel.instruments, panel.timestamps, panel.values, member, panel.origin)


def _pair(tmp_path: Path, **kw) -> tuple[KronosDataModule, KronosDataModule]:
    source = kw.pop("source", PanelSource(_member_panel()))
    args = dict(lookback=L, horizon=H, batch_size=8, seed=11, **kw)
    return (KronosDataModule(source, **args),
            KronosDataModule(source, store={"enabled": True, "dir": str(tmp_path / "store")}, **args))


def _same_batch(a: dict, b: dict) -> bool:
    """Equal keys and values; NaN (a missing future close in eval batches) equals NaN."""
    return a.keys() == b.keys() and all(
        torch.equal(a[k].nan_to_num(-1e30), b[k].nan_to_num(-1e30)) if isinstance(a[k], torch.Tensor)
        else a[k] == b[k] for k in a)


def test_mmap_store_gives_the_same_windows_and_batches_as_ram(tmp_path: Path) -> None:
    ram, mm = _pair(tmp_path)
    assert isinstance(mm.store.values, np.memmap) and not isinstance(ram.store.values, np.memmap)
    info_ram, info_mm = ram.describe(), mm.describe()
    assert info_ram["splits"] == info_mm["splits"] and info_ram["source"] == info_mm["source"]
    assert info_mm["store"]["kind"] == "mmap" and info_ram["store"]["kind"] == "ram"
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(np.stack(ram.dataset(split).windows.materialize()),
                                      np.stack(mm.dataset(split).windows.materialize()))
    for loader in ("train_dataloader", "val_dataloader"):
        batches = list(zip(getattr(ram, loader)(), getattr(mm, loader)(), strict=True))
        assert len(batches) > 3 and all(_same_batch(a, b) for a, b in batches)
    evals = list(zip(ram.eval_dataloader("test", 32), mm.eval_dataloader("test", 32), strict=True))
    assert evals and all(_same_batch(a, b) for a, b in evals)
    # the Panel the backtest reads is the same data, as views of the mapped files
    for arr_ram, arr_mm in zip(ram.panel.values, mm.panel.values):
        np.testing.assert_array_equal(arr_ram, arr_mm)
    assert isinstance(mm.panel.values[0], np.memmap)
    assert [m.tolist() for m in ram.panel.member] == [m.tolist() for m in mm.panel.member]


def test_mmap_store_normalises_in_returns_mode_like_ram(tmp_path: Path) -> None:
    """data.normalization=returns reaches the memory-mapped store's training and decision windows."""
    ram, mm = _pair(tmp_path, normalization="returns")
    level, _ = _pair(tmp_path / "level")
    assert mm.store.normalization == "returns" and mm.window_settings()["normalization"] == "returns"
    for a, b, c in zip(ram.train_dataloader(), mm.train_dataloader(), level.train_dataloader()):
        assert _same_batch(a, b) and not torch.equal(a["x"], c["x"])
    evals = list(zip(ram.eval_dataloader("test", 32), mm.eval_dataloader("test", 32), strict=True))
    assert evals and all(_same_batch(a, b) for a, b in evals)


def test_store_is_built_once_and_window_settings_do_not_rebuild(tmp_path: Path) -> None:
    source = SyntheticSource(n_instruments=3, n_steps=100, seed=2)
    root = tmp_path / "store"
    first = ensure_store(source, root)
    stamp = (first / "values.f32").stat().st_mtime_ns
    again = KronosDataModule(source, lookback=30, horizon=7, store={"enabled": True, "dir": str(root)})
    assert Path(again.store.location) == first
    assert (first / "values.f32").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in root.iterdir()) == sorted([first.name, f"{first.name}.lock"])
    other = ensure_store(SyntheticSource(n_instruments=3, n_steps=100, seed=3), root)
    assert other != first  # another source setting: another store, the first one untouched
    assert (first / META).is_file()


def test_fingerprint_follows_input_files(tmp_path: Path) -> None:
    from kronos.data.csv_source import CSVSource

    csv = tmp_path / "a.csv"
    frame = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=40, freq="D"), "open": 1.0, "high": 2.0,
                          "low": 0.5, "close": 1.5, "volume": 10.0})
    frame.to_csv(csv, index=False)
    key1, inputs = fingerprint(CSVSource(csv))
    assert str(csv.resolve()) in str(inputs)
    assert fingerprint(CSVSource(csv))[0] == key1
    frame.assign(close=1.6).to_csv(csv, index=False)
    os.utime(csv, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fingerprint(CSVSource(csv))[0] != key1


class ListSource(SourceBase):
    """A streaming source yielding given series (and recording that it was asked); it cannot ``load()``."""

    def __init__(self, series: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]], log: str | None = None,
                 fail_after: int | None = None, delay: float = 0.0) -> None:
        # private attributes stay out of the store's fingerprint (the log file changes as it is written)
        self._series, self._log, self._fail_after, self._delay = series, log, fail_after, delay
        self.name = "list"

    def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
        if self._log:
            with open(self._log, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        for k, item in enumerate(self._series):
            if self._fail_after is not None and k >= self._fail_after:
                raise RuntimeError("source broke mid-way")
            time.sleep(self._delay)
            yield item


def _series(symbol: str, n: int = 50, start: str = "2022-01-03") -> tuple[str, np.ndarray, np.ndarray, None]:
    ts = pd.date_range(start, periods=n, freq="h").as_unit("ns").to_numpy()
    vals = np.random.default_rng(len(symbol)).uniform(1, 2, (n, 6)).astype(np.float32)
    return symbol, ts, vals, None


def test_unsorted_input_is_one_clear_error(tmp_path: Path) -> None:
    sym, ts, vals, _ = _series("BBB")
    swapped = ts.copy()
    swapped[[7, 8]] = swapped[[8, 7]]
    with pytest.raises(DataValidationError, match=r"series 'BBB'.*row 8 .* is not after row 7.*sorted by symbol, then time"):
        ensure_store(ListSource([_series("AAA"), (sym, swapped, vals, None)]), tmp_path)
    with pytest.raises(DataValidationError, match=r"series 'AAA' appears again.*sorted by symbol"):
        ensure_store(ListSource([_series("AAA"), _series("BBB"), _series("AAA", start="2023-01-02")]), tmp_path)
    bad = vals.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataValidationError, match=r"series 'BBB': column 'low' is not a finite number at row 3"):
        ensure_store(ListSource([(sym, ts, bad, None)]), tmp_path)
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # nothing half-written left


def test_a_crashed_build_leaves_no_store_and_a_retry_builds_it(tmp_path: Path) -> None:
    series = [_series(s) for s in ("A", "B", "C")]
    with pytest.raises(RuntimeError, match="mid-way"):
        ensure_store(ListSource(series, fail_after=2), tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    path = ensure_store(ListSource(series), tmp_path)
    store = open_store(path, 10, 2)
    assert list(store.instruments) == ["A", "B", "C"] and store.n_rows == 150


def _build_in_child(root: str, log: str) -> None:
    ensure_store(ListSource([_series(s) for s in ("A", "B", "C", "D")], log=log, delay=0.05), root)


def test_processes_started_together_build_one_store(tmp_path: Path) -> None:
    log = tmp_path / "built.log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path / "s"), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(log.read_text().split()) == 1  # one process streamed the source, the others waited and reused it
    assert len([p for p in (tmp_path / "s").iterdir() if p.is_dir()]) == 1


def test_membership_runs_are_few_integers_per_series(tmp_path: Path) -> None:
    _, mm = _pair(tmp_path)
    train = mm.dataset("train").windows
    # 4 series; the membership gaps split series 3 into two spells, and series 1/2 are cut: at most 5 runs
    assert len(train.series) <= 5 and len(train) > 100
    inst, off = train.materialize()
    assert mm.store.member[mm.store.offsets[inst] + off + L - 1].all()


def test_parquet_source_streams_series_across_row_groups(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    panel = SyntheticSource(n_instruments=3, n_steps=70, seed=4).load()
    frames = [pd.DataFrame(v, columns=list(panel.features)).assign(ticker=n, date=t)
              for n, t, v in zip(panel.instruments, panel.timestamps, panel.values)]
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    pq.write_table(table, tmp_path / "long.parquet", row_group_size=50)  # series straddle row groups
    source = ParquetSource(tmp_path / "long.parquet")
    got = list(source.iter_series())
    assert [g[0] for g in got] == panel.instruments
    for (_, ts, vals, member), t_ref, v_ref in zip(got, panel.timestamps, panel.values):
        np.testing.assert_array_equal(ts, t_ref)
        np.testing.assert_array_equal(vals, v_ref)
        assert member is None


def test_a_long_csv_goes_through_the_same_store(tmp_path: Path) -> None:
    from kronos.data.csv_source import CSVSource

    panel = SyntheticSource(n_instruments=3, n_steps=90, seed=8).load()
    frames = [pd.DataFrame(v, columns=list(panel.features)).assign(code=n, date=t)
              for n, t, v in zip(panel.instruments, panel.timestamps, panel.values)]
    pd.concat(frames).to_csv(tmp_path / "long.csv", index=False)
    ram, mm = _pair(tmp_path, source=CSVSource(tmp_path / "long.csv", symbol_column="code"))
    assert mm.store.location is not None and list(mm.store.instruments) == list(ram.store.instruments)
    for a, b in zip(ram.train_dataloader(), mm.train_dataloader(), strict=True):
        assert _same_batch(a, b)


@pytest.mark.slow
def test_bench_scale_case_runs_tiny(tmp_path: Path) -> None:
    """scripts/bench_data.py --scale end to end on a tiny dataset: JSON figures, generated files removed."""
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    work = tmp_path / "scale"
    cmd = [sys.executable, str(repo / "scripts" / "bench_data.py"), "--scale", "--instruments", "12",
           "--rows", "24000", "--batches", "3", "--workdir", str(work)]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout[proc.stdout.index("{\n"):])
    assert result["rows"] == 24000 and result["tokenizer_epoch_batches"] == 3
    assert result["store_build_s"] > 0 and result["train_loader_windows_per_s"] > 0 and result["peak_rss_gb"] > 0
    assert result["store_bytes"] >= 24000 * (6 * 4 + 8 + 5)
    assert not work.exists()


def test_building_streams_one_series_at_a_time(tmp_path: Path) -> None:
    """Each series' arrays are released before the next ones are asked for: never all rows in memory."""
    import gc
    import weakref

    alive: list[weakref.ref] = []
    peaks: list[int] = []

    class Streaming(SourceBase):
        def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, None]]:
            for k in range(6):
                gc.collect()
                peaks.append(sum(ref() is not None for ref in alive))
                sym, ts, vals, _ = _series(f"S{k}")
                alive.append(weakref.ref(vals))
                yield sym, ts, vals, None

    store = open_store(ensure_store(Streaming(), tmp_path), 8, 2)
    assert store.n_rows == 300 and max(peaks) <= 1  # at most the previous series is still referenced


def _build_slowly_in_child(root: str) -> None:
    ensure_store(ListSource([_series(s) for s in ("A", "B", "C", "D")], delay=5.0), root)


def test_a_builder_killed_holding_the_lock_blocks_nothing_and_its_leftover_goes(tmp_path: Path) -> None:
    """Issue 20: a node killed while building the store must not leave a lock or directory that stops
    the relaunch; the next builder takes the lock at once and removes the dead builder's temporary."""
    import signal

    root = tmp_path / "s"
    child = mp.get_context("fork").Process(target=_build_slowly_in_child, args=(str(root),))
    child.start()
    deadline = time.time() + 30
    while time.time() < deadline and not list(root.glob(".*.tmp-*")):
        time.sleep(0.05)
    assert list(root.glob(".*.tmp-*")), "the child never started building"
    os.kill(child.pid, signal.SIGKILL)  # mid-build, lock held
    child.join(10)
    started = time.time()
    path = ensure_store(ListSource([_series(s) for s in ("A", "B", "C", "D")]), root)
    assert time.time() - started < 10  # not waiting on the dead process's lock
    assert open_store(path, 10, 2).n_rows == 200
    assert not list(root.glob(".*.tmp-*"))  # the killed build's temporary directory was removed
    assert [p.name for p in root.iterdir() if p.is_dir()] == [path.name]
@pytest.mark.parametrize("damage", ["truncated_values", "truncated_offsets", "empty_meta", "garbage_meta",
                                    "meta_without_rows", "meta_rows_text"])
def test_a_damaged_store_is_one_message_naming_it(tmp_path: Path, damage: str) -> None:
    """Regression (hostile round): a truncated store file or a corrupt manifest ended in a numpy/JSON traceback."""
    import json

    store = ensure_store(SyntheticSource(n_instruments=3, n_steps=100, seed=2), tmp_path / "store")
    meta = json.loads((store / META).read_text())
    if damage.startswith("truncated"):
        name = "values.f32" if damage == "truncated_values" else "offsets.i64"
        data = (store / name).read_bytes()
        (store / name).write_bytes(data[: len(data) // 2])
    elif damage == "empty_meta":
        (store / META).write_text("")
    elif damage == "garbage_meta":
        (store / META).write_bytes(b"\x00\xff{not json")
    elif damage == "meta_without_rows":
        del meta["rows"]
        (store / META).write_text(json.dumps(meta))
    else:
        meta["rows"] = "many"
        (store / META).write_text(json.dumps(meta))
    with pytest.raises(DataValidationError, match=f"store {store} is damaged .*delete that directory"):
        open_store(store, L, H)


def test_an_unwritable_store_directory_is_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store directory should be")
    with pytest.raises(DataValidationError, match="store directory .* cannot be written.*data.store.dir"):
        ensure_store(SyntheticSource(n_instruments=3, n_steps=100, seed=2), blocker)

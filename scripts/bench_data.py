"""Benchmark the data layer; prints one JSON object.

Three cases:

- default: windows per second of the train loader and of the raw dataset. Data: the real CSI300
  daily long CSV under $KRONOS_DATA_DIR (cn_csi300_daily_csv/csi300_members_daily_2023_2026.csv),
  else a synthetic market of the same size. Windows hold 101 rows (lookback 91 + horizon 10), the
  size of the reference's per-sample pandas slice (lookback 90 + predict 10 + 1). That reference
  (``df.iloc`` slice per window, then per-window normalisation) is measured in the same run on the same
  data (``reference_windows_per_s``), so the speedups compare like with like on this machine.
- ``--scale``: a generated long Parquet dataset (default 3,000 instruments x 20,000 bars = 60 M rows,
  sorted by symbol and time, written with pyarrow one row group at a time), streamed into the
  memory-mapped window store (``data=parquet``), then one tokenizer-stage epoch of ``--batches``
  batches. Reports the peak RSS of this (the training) process, the store build time and the train
  loader's windows/s. Generation runs in a child process so its memory is not counted. Everything
  is written under ``--workdir`` and deleted afterwards unless ``--keep``.
- ``--ddp``: the same kind of dataset trained by ``torchrun --standalone --nproc_per_node=2`` with
  ``trainer=ddp_cpu`` on a fresh store (``--ddp-store mmap``, or ``ram`` for contrast), then by one
  process on the same store: the store directories on disk and each process's peak RSS, private
  (anonymous) and file-backed (shared) resident memory and PSS.

Usage:
    python scripts/bench_data.py [--batch-size 256] [--batches 200] [--items 5000] [--num-workers 0]
    nice python scripts/bench_data.py --scale [--instruments 3000] [--rows 60000000] [--batches 20]
    nice python scripts/bench_data.py --ddp [--instruments 1000] [--rows 6000000] [--ddp-store mmap|ram]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]


def loader_case(args: argparse.Namespace) -> dict[str, Any]:
    """Windows/s of the train loader and of single-item access on CSI300-sized data (in RAM)."""
    from kronos.data.csv_source import CSVSource
    from kronos.data.datamodule import KronosDataModule
    from kronos.data.synthetic import SyntheticSource

    data_dir = os.environ.get("KRONOS_DATA_DIR")
    csv = Path(data_dir or "/nonexistent") / "cn_csi300_daily_csv" / "csi300_members_daily_2023_2026.csv"
    if csv.is_file():
        source, data = CSVSource(csv, on_nan="drop"), f"real: {csv}"
    else:
        source, data = SyntheticSource(n_instruments=360, n_steps=807), "synthetic (KRONOS_DATA_DIR unset)"
    t0 = time.perf_counter()
    dm = KronosDataModule(source, args.lookback, args.horizon, batch_size=args.batch_size,
                          num_workers=args.num_workers, seed=0)
    dm.setup()
    setup_s = time.perf_counter() - t0

    loader_rate = _loader_rate(dm, args.batches)
    ds = dm.dataset("train")
    idx = np.random.default_rng(0).integers(0, len(ds), args.items)
    t0 = time.perf_counter()
    for j in idx:
        ds[int(j)]
    item_rate = len(idx) / (time.perf_counter() - t0)
    reference_rate = _reference_rate(dm.panel, args.lookback + args.horizon, args.items)
    return {
        "data": data,
        "instruments": len(dm.store.instruments),
        "rows": dm.store.n_rows,
        "window_rows": args.lookback + args.horizon,
        "train_windows": len(ds),
        "setup_s": round(setup_s, 3),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "train_loader_windows_per_s": round(loader_rate, 1),
        "dataset_getitem_windows_per_s": round(item_rate, 1),
        "reference_windows_per_s": round(reference_rate, 1),
        "loader_speedup_vs_reference": round(loader_rate / reference_rate, 1),
        "getitem_speedup_vs_reference": round(item_rate / reference_rate, 1),
    }


def _reference_rate(panel: Any, window: int, items: int, clip: float = 5.0) -> float:
    """Windows/s of the reference's dataset on ``panel``: one pandas DataFrame per instrument (features and
    calendar columns), and per window an ``iloc`` slice, ``.values``, its own mean/std normalisation and clip."""
    import pandas as pd
    import torch

    from kronos.data.features import FEATURES, time_features

    stamps = ["minute", "hour", "weekday", "day", "month"]
    frames = []
    for ts, values in zip(panel.timestamps, panel.values):
        if len(ts) >= window:
            frame = pd.DataFrame(np.asarray(values, dtype=np.float64)[:, :len(FEATURES)], columns=list(FEATURES))
            frame[stamps] = time_features(pd.DatetimeIndex(ts))
            frames.append(frame)
    rng = np.random.default_rng(0)
    picks = [(int(k), int(rng.integers(0, len(frames[k]) - window + 1)))
             for k in rng.integers(0, len(frames), items)]
    t0 = time.perf_counter()
    for k, start in picks:
        win = frames[k].iloc[start:start + window]
        x = win[list(FEATURES)].values.astype(np.float32)
        x_stamp = win[stamps].values.astype(np.float32)
        mean, std = np.mean(x, axis=0), np.std(x, axis=0)
        x = np.clip((x - mean) / (std + 1e-5), -clip, clip)
        torch.from_numpy(x), torch.from_numpy(x_stamp)
    return items / (time.perf_counter() - t0)


def _loader_rate(dm: Any, batches: int) -> float:
    """Windows per second over the first ``batches`` batches of the train loader."""
    n, t0 = 0, time.perf_counter()
    for i, batch in enumerate(dm.train_dataloader()):
        n += len(batch["x"])
        if i + 1 >= batches:
            break
    return n / (time.perf_counter() - t0)


def generate_parquet(path: Path, instruments: int, bars: int, seed: int = 0) -> dict[str, Any]:
    """Write a long OHLCV Parquet file sorted by symbol then time, one row group (~1 M rows) at a time.

    Hourly bars from 2000-01-03; random-walk closes with candles around them. Memory: one row group.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    per_group = max(1, (1 << 20) // bars)
    stamps = pd.date_range("2000-01-03", periods=bars, freq="h").as_unit("ns").to_numpy()
    names = pa.array([f"S{i:05d}" for i in range(instruments)], pa.string())
    price = pa.float32()
    schema = pa.schema([("symbol", pa.dictionary(pa.int32(), pa.string())), ("timestamps", pa.timestamp("ns")),
                        ("open", price), ("high", price), ("low", price), ("close", price),
                        ("volume", price), ("amount", price)])
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for first in range(0, instruments, per_group):
            k = min(per_group, instruments - first)
            r = rng.standard_normal((k, bars), dtype=np.float32) * np.float32(0.004)
            close = (rng.uniform(10, 200, (k, 1)) * np.exp(np.cumsum(r, axis=1))).astype(np.float32)
            open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
            wick = np.abs(rng.standard_normal((2, k, bars), dtype=np.float32)) * np.float32(0.002)
            high = np.maximum(open_, close) * (1 + wick[0])
            low = np.minimum(open_, close) * (1 - wick[1])
            volume = np.exp(rng.normal(9.0, 1.0, (k, bars))).astype(np.float32)
            codes = pa.array(np.repeat(np.arange(first, first + k, dtype=np.int32), bars))
            cols = [pa.DictionaryArray.from_arrays(codes, names), pa.array(np.tile(stamps, k))]
            cols += [pa.array(a.reshape(-1)) for a in (open_, high, low, close, volume, volume * close)]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=k * bars)
    return {"rows": instruments * bars, "parquet_bytes": path.stat().st_size,
            "generate_s": round(time.perf_counter() - t0, 1)}


def _memory() -> dict[str, float]:
    """This process's peak RSS and current anonymous / file-backed resident memory and PSS, in MB."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for name, key in (("/proc/self/status", "RssAnon"), ("/proc/self/status", "RssFile"),
                      ("/proc/self/smaps_rollup", "Pss")):
        try:
            for line in Path(name).read_text().splitlines():
                if line.startswith(key + ":"):
                    out[f"{key.lower()}_mb"] = int(line.split()[1]) / 1024
        except OSError:  # not Linux: peak RSS only
            pass
    return {k: round(v, 1) for k, v in out.items()}


def _overrides(parquet: Path, work: Path, batches: int, batch_size: int, *extra: str) -> list[str]:
    return [
        "stage=tokenizer", "data=parquet",
        f"data.source.path={parquet}", f"data.store.dir={work / 'store'}", f"output_root={work / 'outputs'}",
        "name=bench", f"data.batch_size={batch_size}", f"data.samples_per_epoch={batches * batch_size}",
        "trainer.accelerator=cpu", "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
        "trainer.limit_val_batches=2", "callbacks.progress=null", "callbacks.early_stopping=null",
        "trainer.log_every_n_steps=5", *extra,
    ]


def _compose(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    from kronos.train import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _generate_in_child(parquet: Path, instruments: int, bars: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--generate", str(parquet), "--instruments", str(instruments),
                           "--rows", str(instruments * bars)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def scale_case(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the long Parquet dataset, build the store and train one tokenizer epoch, in bounded memory."""
    from hydra.utils import instantiate

    from kronos.train import train

    bars = args.rows // args.instruments
    work = Path(args.workdir or f"/tmp/kronos_bench_scale_{os.getpid()}")
    parquet = work / "bars.parquet"
    try:
        gen = _generate_in_child(parquet, args.instruments, bars)
        cfg = _compose(_overrides(parquet, work, args.batches, args.batch_size))
        t0 = time.perf_counter()
        dm = instantiate(cfg.data, _convert_="all")
        dm.setup()
        setup_s = time.perf_counter() - t0
        store_dir = Path(dm.store.location)
        build_s = json.loads((store_dir / "meta.json").read_text())["build_seconds"]
        after_build = _memory()
        rate = _loader_rate(dm, args.batches)
        del dm
        t0 = time.perf_counter()
        result = train(cfg)
        train_s = time.perf_counter() - t0
        info = json.loads((Path(result["tokenizer"]) / "training_info.json").read_text())
        return {
            "case": "scale",
            "instruments": args.instruments,
            "bars_per_instrument": bars,
            **gen,
            "store_bytes": _dir_bytes(store_dir),
            "store_build_s": build_s,
            "setup_s_incl_build_and_index": round(setup_s, 1),
            "train_windows": info["data"]["splits"]["train"]["windows"],
            "batch_size": args.batch_size,
            "window_rows": cfg.data.lookback + cfg.data.horizon,
            "train_loader_windows_per_s": round(rate, 1),
            "tokenizer_epoch_batches": info.get("global_step"),
            "tokenizer_stage_s": round(train_s, 1),
            "memory_after_build": after_build,
            "memory_at_end": _memory(),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "target_peak_rss_gb": 1.5,
            "float32_values_in_ram_gb": round(args.rows * 6 * 4 / 2**30, 2),
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def worker(out: Path, overrides: list[str]) -> None:
    """One training process (run by torchrun or alone): train, then write its memory figures to out/."""
    from hydra.utils import instantiate

    from kronos.train import train

    cfg = _compose(overrides)
    result = train(cfg)
    rank = int(os.environ.get("RANK", 0))
    out.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", 1)), **_memory(),
              "tokenizer": result.get("tokenizer")}
    if cfg.data.store.enabled:  # which store this rank trained on (opening it again maps, copies nothing)
        from kronos.data.store import fingerprint

        record["store"] = str(Path(cfg.data.store.dir) / fingerprint(instantiate(cfg.data.source, _convert_="all"))[0])
    (out / f"rank{rank}.json").write_text(json.dumps(record))


def ddp_case(args: argparse.Namespace) -> dict[str, Any]:
    """Two torchrun processes on a fresh store, then one process on the same store."""
    bars = args.rows // args.instruments
    work = Path(args.workdir or f"/tmp/kronos_bench_ddp_{os.getpid()}")
    parquet = work / "bars.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    try:
        gen = _generate_in_child(parquet, args.instruments, bars)
        runs = {}
        for label, launcher, extra in (
            ("ddp2", ["torchrun", "--standalone", "--nproc_per_node=2"], ["trainer=ddp_cpu"]),
            ("single", [sys.executable], ["trainer=cpu"]),
        ):
            out = work / f"mem_{label}"
            store = [f"data/store={args.ddp_store}"]
            cmd = [*launcher, str(SCRIPT), "--worker", str(out), "--",
                   *_overrides(parquet, work, args.batches, args.batch_size, *extra, *store, f"name={label}")]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"{label} run failed:\n{proc.stderr[-4000:]}")
            ranks = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
            info = json.loads((Path(ranks[0]["tokenizer"]) / "training_info.json").read_text())
            runs[label] = {"seconds": round(time.perf_counter() - t0, 1), "world_size": info.get("world_size"),
                           "store": info["data"]["store"], "ranks": ranks}
        store_root = work / "store"
        stores = sorted(p.name for p in store_root.iterdir() if p.is_dir()) if store_root.is_dir() else []
        single_peak = runs["single"]["ranks"][0]["peak_rss_mb"]
        return {
            "case": "ddp",
            "store_mode": args.ddp_store,
            "instruments": args.instruments,
            "bars_per_instrument": bars,
            **gen,
            "store_dirs_on_disk": stores,
            "store_bytes": sum(_dir_bytes(store_root / s) for s in stores),
            "runs": runs,
            "ddp_peak_rss_over_single": [round(r["peak_rss_mb"] / single_peak, 2) for r in runs["ddp2"]["ranks"]],
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Parse the arguments, run the chosen case and print its JSON result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:
        overrides, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookback", type=int, default=91)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=None, help="default: 256 (loader case), 64 (scale, ddp)")
    ap.add_argument("--batches", type=int, default=None, help="default: 200 (loader case), 20 (scale, ddp)")
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--scale", action="store_true", help="the long Parquet / memory-mapped store case")
    ap.add_argument("--ddp", action="store_true", help="the two-process torchrun case")
    ap.add_argument("--ddp-store", choices=["mmap", "ram"], default="mmap")
    ap.add_argument("--instruments", type=int, default=None, help="default: 3000 (scale), 1000 (ddp)")
    ap.add_argument("--rows", type=int, default=None, help="total rows; default 60,000,000 (scale), 6,000,000 (ddp)")
    ap.add_argument("--workdir", default=None, help="where the dataset, store and outputs go (default /tmp/...)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    big = args.scale or args.ddp or args.generate
    args.batch_size = args.batch_size or (64 if big else 256)
    args.batches = args.batches or (20 if big else 200)
    args.instruments = args.instruments or (1000 if args.ddp else 3000)
    args.rows = args.rows or (6_000_000 if args.ddp else 60_000_000)
    if args.worker:
        worker(Path(args.worker), overrides)
        return None
    if args.generate:
        result = generate_parquet(Path(args.generate), args.instruments, args.rows // args.instruments)
    elif args.scale:
        result = scale_case(args)
    elif args.ddp:
        result = ddp_case(args)
    else:
        result = loader_case(args)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

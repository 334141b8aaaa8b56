"""Benchmark the data layer: windows per second of the train loader and of the raw dataset.

Prints one JSON object. Data: the real CSI300 daily long CSV under $KRONOS_DATA_DIR
(cn_csi300_daily_csv/csi300_members_daily_2023_2026.csv), else a synthetic market of the same
size. Windows hold 101 rows (lookback 91 + horizon 10), the size of the reference's
per-sample pandas slice (lookback 90 + predict 10 + 1), which does ~790 windows/s.

Usage: python scripts/bench_data.py [--batch-size 256] [--batches 200] [--items 5000] [--num-workers 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from kronos.data.csv_source import CSVSource
from kronos.data.datamodule import KronosDataModule
from kronos.data.synthetic import SyntheticSource

REFERENCE_WINDOWS_PER_S = 790.0


def main() -> dict[str, object]:
    """Run the benchmark and print the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookback", type=int, default=91)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--num-workers", type=int, default=0)
    args = ap.parse_args()

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

    loader = dm.train_dataloader()
    n, t0 = 0, time.perf_counter()
    for i, batch in enumerate(loader):
        n += len(batch["x"])
        if i + 1 >= args.batches:
            break
    loader_rate = n / (time.perf_counter() - t0)

    ds = dm.dataset("train")
    idx = np.random.default_rng(0).integers(0, len(ds), args.items)
    t0 = time.perf_counter()
    for j in idx:
        ds[int(j)]
    item_rate = len(idx) / (time.perf_counter() - t0)

    result = {
        "data": data,
        "instruments": len(dm.panel.instruments),
        "rows": dm.panel.n_rows,
        "window_rows": args.lookback + args.horizon,
        "train_windows": len(ds),
        "setup_s": round(setup_s, 3),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "train_loader_windows_per_s": round(loader_rate, 1),
        "dataset_getitem_windows_per_s": round(item_rate, 1),
        "reference_windows_per_s": REFERENCE_WINDOWS_PER_S,
        "loader_speedup_vs_reference": round(loader_rate / REFERENCE_WINDOWS_PER_S, 1),
        "getitem_speedup_vs_reference": round(item_rate / REFERENCE_WINDOWS_PER_S, 1),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

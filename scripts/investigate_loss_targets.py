"""Does restricting the predictor's loss to the forecast horizon help? Prints JSON.

Runs the README's main job (``python -m kronos.train``: synthetic market, tiny model, all stages)
once per seed and per ``stage.loss_targets`` value (``all``: every next-token target of the window;
``horizon``: only targets after the lookback, the rows a forecast produces), with the backtest
anchored at the observed last close, and scores each run's ``backtest/signals.csv`` itself:

- ``next_return``: close(t) -> close(t+1), the first forecast step;
- ``tradable_return``: close(t+1) -> close(t+2), what a portfolio deciding at the close of t and
  filling at the next close earns (Qlib's next-day execution with deal_price=close).

For each label and signal column (``model`` and the baseline) it reports the mean daily RankIC and
its t-statistic, mean / std * sqrt(days) (one-day labels do not overlap), plus a Newey-West t with
``--nw-lags`` lags as a check against serial correlation of the daily RankIC.

Example (about 3 minutes per run on 2 CPU cores)::

    nice python scripts/investigate_loss_targets.py --seeds 0 1 2 --output-root /tmp/loss_targets \
        --override trainer.max_epochs=10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.stats import daily_ic, mean_t, newey_west_t

LABELS = ("next_return", "tradable_return")


def with_tradable_return(signals: pd.DataFrame) -> pd.DataFrame:
    """``signals`` plus ``tradable_return``: the instrument's next-row ``next_return`` (NaN on its last row).

    signals.csv rows are one per (datetime, instrument) on the common calendar, so the next row of
    an instrument is the next trading day.
    """
    out = signals.sort_values(["instrument", "datetime"]).copy()
    out["tradable_return"] = out.groupby("instrument")["next_return"].shift(-1)
    return out.sort_values(["datetime", "instrument"], ignore_index=True)


def signal_skill(signals_csv: str | Path, columns: tuple[str, ...] = ("model", "baseline"),
                 nw_lags: int = 5) -> dict[str, dict[str, dict[str, float]]]:
    """``{column: {label: {rank_ic, t, t_nw, days}}}`` from a backtest's signals.csv."""
    signals = with_tradable_return(pd.read_csv(signals_csv, parse_dates=["datetime"]))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        out[column] = {}
        for label in LABELS:
            ic = daily_ic(signals, column, label).to_numpy()
            out[column][label] = {"rank_ic": float(ic.mean()), "t": mean_t(ic).t, "t_nw": newey_west_t(ic, nw_lags).t,
                                  "days": len(ic)}
    return out


def run_main_job(output_root: Path, name: str, seed: int, loss_targets: str, extra: list[str]) -> float:
    """``python -m kronos.train`` with the main job's defaults, anchored at the last close; wall seconds."""
    cmd = [sys.executable, "-m", "kronos.train", f"output_root={output_root}", f"name={name}", f"seed={seed}",
           f"stage.loss_targets={loss_targets}", "backtest.anchor=last_close", "callbacks.progress=null",
           "trainer.enable_progress_bar=false", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", nargs="+", default=["all", "horizon"], choices=["all", "horizon"])
    parser.add_argument("--output-root", type=Path, default=Path("/tmp/kronos_loss_targets"))
    parser.add_argument("--nw-lags", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="score existing runs instead of training again")
    parser.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Hydra override for every run (repeatable), e.g. --override trainer.max_epochs=10")
    args = parser.parse_args()

    runs = []
    for targets in args.targets:
        for seed in args.seeds:
            name = f"loss_{targets}_seed{seed}"
            signals = args.output_root / name / "backtest" / "signals.csv"
            wall = None if args.reuse and signals.exists() else run_main_job(
                args.output_root, name, seed, targets, args.overrides)
            runs.append({"loss_targets": targets, "seed": seed, "wall_s": wall,
                         **signal_skill(signals, nw_lags=args.nw_lags)})
    summary = {}
    for targets in args.targets:
        mine = [r for r in runs if r["loss_targets"] == targets]
        summary[targets] = {
            f"{column}.{label}.{stat}": float(np.mean([r[column][label][stat] for r in mine]))
            for column in ("model", "baseline") for label in LABELS for stat in ("rank_ic", "t")
        }
    print(json.dumps({"overrides": args.overrides, "runs": runs, "mean_over_seeds": summary}, indent=2))


if __name__ == "__main__":
    main()

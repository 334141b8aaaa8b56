"""Run (or read) the synthetic recipe and the main job for some seeds and print issue 24's table.

    python scripts/report_recipe.py --seeds 0 1 2 --configs main recipe      # runs, then tabulates
    python scripts/report_recipe.py --seeds 0 --configs main recipe --read-only   # tabulates existing outputs

Each (config, seed) is the experiment ``<config>_s<seed>`` under ``--output-root`` (default
``$KRONOS_OUTPUT_ROOT`` or ``outputs``): ``main`` is ``python -m kronos.train`` with its defaults, ``recipe``
adds ``experiment=synthetic_recipe``. Every row is read from the run's ``backtest/metrics.json`` and
``evaluate/metrics.json``; a value whose key is absent prints as null and the JSON's ``missing`` says
which key it looked for (e.g. candle repair counts before the candle-validity work is merged). Prints one
JSON object, then a markdown table (mean over seeds, per-seed values in brackets).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

CONFIGS: dict[str, list[str]] = {"main": [], "recipe": ["experiment=synthetic_recipe"]}
WALL_FILE = "report_recipe_run.json"  # written beside the run's outputs: how long the command took


def dig(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...`` through dicts; None where a level is missing."""
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def find_keys(node: Any, words: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    """Every scalar under ``node`` whose key path contains one of ``words`` (candle repair / invalid counts,
    whatever their exact names)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}/{key}" if prefix else str(key)
            if isinstance(value, dict):
                out |= find_keys(value, words, path)
            elif any(w in path.lower() for w in words) and isinstance(value, (int, float)):
                out[path] = value
    return out


# (row name, file, key path) per scalar of the table; the table groups them per row.
Reader = tuple[str, str, tuple[str, ...]]
FIELDS: list[Reader] = [
    ("trade_rank_ic", "backtest", ("model", "ic", "trade_return", "rank_ic")),
    ("volume_rank_ic", "backtest", ("volume", "ic", "trade_return", "rank_ic")),
    ("oracle_rank_ic", "backtest", ("oracle", "ic", "trade_return", "rank_ic")),
    ("capture_ratio", "backtest", ("capture_ratio",)),
    ("relative_crps", "evaluate", ("models", "kronos", "relative_crps")),
    ("hist_vol_relative_crps", "evaluate", ("models", "hist_vol", "relative_crps")),
    ("coverage_50", "evaluate", ("models", "kronos", "coverage", "0.5")),
    ("coverage_80", "evaluate", ("models", "kronos", "coverage", "0.8")),
    ("coverage_90", "evaluate", ("models", "kronos", "coverage", "0.9")),
    ("qlike", "evaluate", ("tasks", "volatility", "models", "kronos", "qlike")),
    ("ewma_qlike", "evaluate", ("tasks", "volatility", "models", "ewma", "qlike")),
    ("garch_qlike", "evaluate", ("tasks", "volatility", "models", "garch", "qlike")),
    ("backtest_repair_share", "backtest", ("candle_repairs", "share")),
    ("discriminative_score", "evaluate", ("tasks", "generation", "models", "kronos", "discriminative_score")),
    ("bootstrap_discriminative_score", "evaluate",
     ("tasks", "generation", "models", "bootstrap", "discriminative_score")),
]
CANDLE_WORDS = ("repair", "invalid")


def read_run(run_dir: Path) -> dict[str, Any]:
    """The table's values of one run directory (None where absent) and the keys that were missing."""
    files: dict[str, Any] = {}
    for kind in ("backtest", "evaluate"):
        path = run_dir / kind / "metrics.json"
        files[kind] = json.loads(path.read_text()) if path.is_file() else None
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind, keys in FIELDS:
        values[name] = dig(files[kind], *keys)
        if values[name] is None:
            missing.append(f"{kind}/metrics.json:{'.'.join(keys)}")
    candles = {k: find_keys(files[k], CANDLE_WORDS) for k in files if files[k] is not None}
    values["candle_counts"] = {k: v for k, v in candles.items() if v} or None
    if values["candle_counts"] is None:
        missing.append("backtest|evaluate metrics.json: no key containing 'repair' or 'invalid' (written by "
                       "kronos.inference.candles since this round)")
    wall = run_dir / WALL_FILE
    values["wall_s"] = json.loads(wall.read_text()).get("wall_s") if wall.is_file() else None
    values["missing"] = missing
    return values


def run(config: str, seed: int, root: Path, extra: list[str]) -> None:
    """``python -m kronos.train`` for one (config, seed), its wall time written beside its outputs."""
    name = f"{config}_s{seed}"
    cmd = [sys.executable, "-m", "kronos.train", *CONFIGS[config], f"seed={seed}", f"name={name}",
           f"output_root={root}", *extra]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - start
    (root / name / WALL_FILE).write_text(json.dumps({"wall_s": round(wall, 1), "command": cmd}))


def fmt(values: list[Any], digits: int = 3) -> str:
    """Mean of the non-null values with each seed's value in brackets (``null`` when none is known)."""
    known = [v for v in values if isinstance(v, (int, float))]
    if not known:
        return "null"
    each = ", ".join("null" if not isinstance(v, (int, float)) else f"{v:.{digits}f}" for v in values)
    mean = sum(known) / len(known)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} [{each}]"


ROWS: list[tuple[str, Callable[[Callable[[str], str]], str]]] = [
    ("trade-signal RankIC on trade_return (capture of the oracle)",
     lambda f: f"{f('trade_rank_ic')} ({f('capture_ratio')}); volume rule {f('volume_rank_ic')}, "
               f"oracle {f('oracle_rank_ic')}"),
    ("relative CRPS vs hist_vol", lambda f: f"{f('relative_crps')} vs {f('hist_vol_relative_crps')}"),
    ("50/80/90 % coverage", lambda f: f"{f('coverage_50')} / {f('coverage_80')} / {f('coverage_90')}"),
    ("volatility QLIKE vs EWMA", lambda f: f"{f('qlike')} vs {f('ewma_qlike')}"),
    ("generation discriminative score vs bootstrap",
     lambda f: f"{f('discriminative_score')} vs {f('bootstrap_discriminative_score')}"),
    ("wall time (s)", lambda f: f("wall_s", 0)),
]


def table(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    """The markdown table: one column per config, the mean over its seeds (each seed's value bracketed)."""
    configs = list(results)
    lines = ["| what | " + " | ".join(f"{c} (seeds {', '.join(map(str, results[c]))})" for c in configs) + " |",
             "|---|" + "---|" * len(configs)]
    for label, cell in ROWS:
        cells = []
        for c in configs:
            runs = list(results[c].values())
            cells.append(cell(lambda key, digits=3: fmt([r.get(key) for r in runs], digits)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    candle = []
    for c in configs:
        counts = [r.get("candle_counts") for r in results[c].values()]
        candle.append("null (not in metrics.json)" if not any(counts) else json.dumps(counts))
    lines.append("| invalid / repaired candles | " + " | ".join(candle) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--read-only", action="store_true", help="only tabulate existing output directories")
    parser.add_argument("--output-root", type=Path, default=Path(os.environ.get("KRONOS_OUTPUT_ROOT", "outputs")))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    results: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in args.configs}
    for config in args.configs:
        for seed in args.seeds:
            run_dir = args.output_root / f"{config}_s{seed}"
            if not args.read_only:
                run(config, seed, args.output_root, args.overrides)
            results[config][seed] = read_run(run_dir)
    print(json.dumps({"output_root": str(args.output_root), "results": results}, indent=1, default=str))
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Arguments and loading shared by the example scripts (not an example itself).

Defaults need no network: the checkpoint pair is ``--model/--tokenizer``, else the export of
``--experiment NAME`` under outputs/, else the shared tiny fixture pair in $KRONOS_FIXTURES_DIR;
the CSV defaults to the fixture's input.csv.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from kronos import KronosPredictor
from kronos.data.csv_source import read_ohlcv_csv
from kronos.experiment import Experiment, WeightsNotFoundError, resolve_weights
from kronos.inference.loading import load_predictor


def fixtures_dir() -> Path | None:
    """$KRONOS_FIXTURES_DIR when it names a directory."""
    value = os.environ.get("KRONOS_FIXTURES_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def parser(description: str) -> argparse.ArgumentParser:
    """The options every example takes; scripts add their own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", help="predictor directory or hub id (default: see --experiment, then the fixture pair)")
    p.add_argument("--tokenizer", help="tokenizer directory or hub id")
    p.add_argument("--experiment", help="use outputs/<EXPERIMENT>/{predictor,tokenizer} from `python -m kronos.train`")
    p.add_argument("--outputs-dir", type=Path, default=Path(os.environ.get("KRONOS_OUTPUT_ROOT", "outputs")))
    p.add_argument("--csv", type=Path, help="OHLCV CSV (default: $KRONOS_FIXTURES_DIR/input.csv)")
    p.add_argument("--lookback", type=int, default=200)
    p.add_argument("--pred-len", type=int, default=24)
    p.add_argument("--max-context", type=int, default=512)
    p.add_argument("--device", default=None)
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill model/tokenizer/csv defaults in place, or exit with a message saying what to pass."""
    fixtures = fixtures_dir()
    if args.experiment and not (args.model or args.tokenizer):
        args.tokenizer, args.model = experiment_pair(Experiment(args.outputs_dir / args.experiment))
    if not (args.model and args.tokenizer):
        if fixtures is None:
            sys.exit("no checkpoint pair: pass --model and --tokenizer, --experiment NAME, or set KRONOS_FIXTURES_DIR")
        args.model, args.tokenizer = str(fixtures / "predictor"), str(fixtures / "tokenizer")
    if args.csv is None:
        if fixtures is None:
            sys.exit("no data: pass --csv or set KRONOS_FIXTURES_DIR")
        args.csv = fixtures / "input.csv"
    return args


def experiment_pair(experiment: Experiment) -> tuple[str, str]:
    """(tokenizer, predictor) an experiment exported, by the weights rule; exits saying what to run if missing."""
    try:
        return tuple(resolve_weights(kind, experiment).location for kind in ("tokenizer", "predictor"))
    except WeightsNotFoundError as err:
        sys.exit(str(err))


def load(args: argparse.Namespace) -> tuple[KronosPredictor, pd.DataFrame]:
    """The predictor and the validated CSV (``timestamps`` + the six features)."""
    predictor = load_predictor(args.tokenizer, args.model, device=args.device, max_context=args.max_context)
    return predictor, read_ohlcv_csv(args.csv)


def window(df: pd.DataFrame, end: int, lookback: int, pred_len: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """History rows [end-lookback, end) and the actual rows [end, end+pred_len) that follow."""
    if end - lookback < 0 or end + pred_len > len(df):
        sys.exit(f"the CSV has {len(df)} rows: too few for lookback {lookback} + pred_len {pred_len} ending at row {end}")
    return df.iloc[end - lookback : end].reset_index(drop=True), df.iloc[end : end + pred_len].reset_index(drop=True)

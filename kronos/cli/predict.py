"""``kronos-predict``: forecast the rows after the end of an OHLCV CSV with a Kronos checkpoint pair.

Future timestamps are not in the CSV, so they are inferred: the last timestamp plus multiples of
the median spacing of the history rows. Intraday data with closed hours (nights, weekends) gets
stamps running through those hours; the forecast is still one row per step.

Example::

    kronos-predict --model NeoQuasar/Kronos-small --tokenizer NeoQuasar/Kronos-Tokenizer-base \\
        --csv prices.csv --lookback 400 --pred-len 120 --sample-count 20 \\
        --quantiles 0.1,0.5,0.9 --out forecast.csv --plot forecast.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from kronos.atomic import atomic_write_text
from kronos.cli.forecast import (
    TIME_COLUMN,
    cut_window,
    forecast_table,
    future_timestamps,
    load_predictor,
    parse_quantiles,
    present_features,
    price_band,
    select_series,
)
from kronos.data.csv_source import read_ohlcv_csv
from kronos.data.errors import DataValidationError
from kronos.inference.validation import ForecastInputError
from kronos.models.hub import CheckpointError

PROG = "kronos-predict"
DEFAULT_BAND = (0.1, 0.9)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments; defaults follow the published Kronos examples."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="predictor checkpoint directory or hub id (e.g. NeoQuasar/Kronos-small)")
    p.add_argument("--tokenizer", required=True, help="tokenizer checkpoint directory or hub id (e.g. NeoQuasar/Kronos-Tokenizer-base)")
    p.add_argument("--csv", required=True, type=Path, help="OHLCV CSV: timestamps, open, high, low, close[, volume, amount]")
    p.add_argument("--symbol", default=None, help="which series of a long CSV with a symbol column")
    p.add_argument("--lookback", type=int, default=400, help="history rows used, taken from the end of the CSV")
    p.add_argument("--pred-len", type=int, default=120, help="rows to forecast after the last CSV row")
    p.add_argument("--T", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: off; 1: greedy)")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (ignored when --top-k > 0)")
    p.add_argument("--sample-count", type=int, default=1, help="sample paths drawn; the forecast is their mean")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--max-context", type=int, default=512, help="longest token window the predictor sees")
    p.add_argument("--quantiles", default=None, help="comma-separated levels such as 0.1,0.5,0.9: adds <feature>_q<pct> columns")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampling generator (same seed, same forecast)")
    p.add_argument("--out", type=Path, default=None, help="forecast CSV to write (default: print to stdout)")
    p.add_argument("--plot", type=Path, default=None, help="PNG of history, forecast and quantile band")
    return p


def run(args: argparse.Namespace) -> None:
    """Forecast and write the outputs; bad input raises DataValidationError, ForecastInputError or CheckpointError."""
    quantiles = parse_quantiles(args.quantiles) if args.quantiles else ()
    _check_sampling(args)
    df = select_series(read_ohlcv_csv(args.csv), args.symbol)
    if args.lookback > len(df):
        raise ForecastInputError(f"--lookback {args.lookback} is longer than the {len(df)} rows of {args.csv}: pass a smaller --lookback")
    window = cut_window(df, len(df) - args.lookback, args.lookback, args.pred_len)
    history = window.history
    index = future_timestamps(history[TIME_COLUMN], args.pred_len)
    predictor = load_predictor(args.model, args.tokenizer, device=args.device, max_context=args.max_context)
    generator = None if args.seed is None else torch.Generator(device=predictor.device).manual_seed(args.seed)
    samples = predictor.predict_samples(
        df=history[present_features(history)],
        x_timestamp=history[TIME_COLUMN],
        y_timestamp=pd.Series(index),
        pred_len=args.pred_len,
        T=args.T,
        top_k=args.top_k,
        top_p=args.top_p,
        sample_count=args.sample_count,
        verbose=False,
        generator=generator,
    )
    paths = np.asarray(samples.paths)
    table = forecast_table(paths, index, quantiles)
    if args.out is None:
        table.to_csv(sys.stdout, index=False)
    else:
        atomic_write_text(args.out, table.to_csv(index=False))
        print(f"wrote {len(table)} forecast rows to {args.out}", file=sys.stderr)
    if args.plot is not None:
        from kronos.cli.plot import plot_forecast  # matplotlib only when a plot is asked for

        low, high = (min(quantiles), max(quantiles)) if len(quantiles) >= 2 else DEFAULT_BAND
        band = price_band(paths, low, high)
        title = f"{args.csv.name}: {args.pred_len}-step forecast, {args.sample_count} sample(s), {low:g}-{high:g} band"
        plot_forecast(history, table, band, args.plot, title=title)
        print(f"wrote plot to {args.plot}", file=sys.stderr)


def _check_sampling(args: argparse.Namespace) -> None:
    """Reject sampling settings the predictor would fail on deep inside generation."""
    if args.T <= 0:
        raise ForecastInputError(f"--T must be positive, got {args.T}")
    if args.top_k < 0:
        raise ForecastInputError(f"--top-k must be 0 (off) or positive, got {args.top_k}")
    if not 0 < args.top_p <= 1:
        raise ForecastInputError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.sample_count < 1:
        raise ForecastInputError(f"--sample-count must be at least 1, got {args.sample_count}")
    if args.max_context < 2:
        raise ForecastInputError(f"--max-context must be at least 2, got {args.max_context}")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ForecastInputError(f"--device {args.device} asked for, but torch sees no CUDA GPU: use --device cpu")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0, or 2 with a one-line message (no traceback) for bad input."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (DataValidationError, ForecastInputError, CheckpointError, FileNotFoundError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

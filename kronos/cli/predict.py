"""``kronos-predict``: forecast the rows after the end of an OHLCV CSV with a Kronos checkpoint pair.

Future timestamps are not in the CSV, so they are inferred from the history: on the data's own sessions
(the bar times and weekdays seen in it, e.g. no lunch-break bars for A-shares, no weekends for daily
data) when the history spans a week or more, else as the last timestamp plus multiples of the median
spacing. A note on stderr says which; exchange holidays are never known.

Every mistake in the arguments or the data ends in one line ``kronos-predict: error: ...`` and exit
status 2, never a traceback.

Example::

    kronos-predict --model NeoQuasar/Kronos-small --tokenizer NeoQuasar/Kronos-Tokenizer-base \\
        --csv prices.csv --lookback 400 --pred-len 120 --sample-count 20 \\
        --quantiles 0.1,0.5,0.9 --out forecast.csv --plot forecast.png

``--generate N`` writes N generated continuations instead of the forecast: every sample path in full, one
row per (path, timestamp), columns ``path,timestamps,open,high,low,close,volume,amount`` (pass the paper's
generation settings with ``--T 1.0 --top-p 0.95``).

Every path written is a possible candle sequence (kronos.inference.candles); a note on stderr counts the
candles the repair changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from kronos.atomic import atomic_write_text, check_write_target, same_target
from kronos.errors import KronosUserError
from kronos.inference.frame import (
    forecast_frame,
    forecast_table,
    parse_quantiles,
    plan_forecast,
    price_band,
    read_series,
)
from kronos.inference.generate import generated_frames, long_table
from kronos.inference.loading import check_device, context_limit, load_predictor
from kronos.inference.predictor import sampling_of
from kronos.inference.settings import SAMPLE_COUNT_MAX, calibration_of, check_context
from kronos.inference.validation import ForecastInputError

PROG = "kronos-predict"
DEFAULT_BAND = (0.1, 0.9)
DEFAULT_MAX_CONTEXT = 512


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments; defaults follow the published Kronos examples."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="predictor checkpoint directory or hub id (e.g. NeoQuasar/Kronos-small)")
    p.add_argument("--tokenizer", required=True, help="tokenizer checkpoint directory or hub id (e.g. NeoQuasar/Kronos-Tokenizer-base)")
    p.add_argument("--csv", required=True, type=Path, help="OHLCV CSV: timestamps, open, high, low, close[, volume, amount]")
    p.add_argument("--symbol", default=None, help="which series of a long CSV with a symbol column")
    p.add_argument("--lookback", type=int, default=400,
                   help="history rows used, taken from the end of the CSV (only the last --max-context are seen)")
    p.add_argument("--pred-len", type=int, default=120, help="rows to forecast after the last CSV row")
    p.add_argument("--T", type=float, default=None,
                   help="sampling temperature (0.01..100; default: the one chosen on validation when the model's "
                        "training_info.json records it, else 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: off; 1: greedy)")
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus sampling mass (ignored when --top-k > 0; default: the calibrated one, else 0.9)")
    p.add_argument("--sample-count", type=int, default=1, help="sample paths drawn; the forecast is their median per step (the point forecast of kronos.scores)")
    p.add_argument("--generate", type=int, default=None, metavar="N",
                   help="write N generated continuations (every sample path, column path) instead of the forecast")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--max-context", type=int, default=None,
                   help=f"longest token window the predictor sees (default: {DEFAULT_MAX_CONTEXT}, or less when the "
                        f"model was trained on shorter windows)")
    p.add_argument("--quantiles", default=None, help="comma-separated levels such as 0.1,0.5,0.9: adds <feature>_q<pct> columns")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampling generator (same seed, same forecast)")
    p.add_argument("--out", type=Path, default=None, help="forecast CSV to write (default: print to stdout)")
    p.add_argument("--plot", type=Path, default=None, help="PNG of history, forecast and quantile band")
    return p


def _check_paths(args: argparse.Namespace) -> None:
    """Paths the OS cannot take and outputs that would replace a directory, before any work."""
    for flag, value in (("--csv", args.csv), ("--model", args.model), ("--tokenizer", args.tokenizer),
                        ("--out", args.out), ("--plot", args.plot)):
        if value is not None and "\x00" in str(value):
            raise ForecastInputError(f"{flag} {str(value)!r} contains a NUL byte; no file name can")
    for flag, value in (("--out", args.out), ("--plot", args.plot)):
        # writing the forecast over its own input would destroy the user's data
        if value is not None and value.exists() and args.csv.exists() and value.resolve() == args.csv.resolve():
            raise ForecastInputError(f"{flag} {value} is the input --csv itself: name another file so the data is kept")
        # a file where a folder of the path should be: found before the model runs, not when writing after it
        blocker = next((a for a in (value.parents if value is not None else ()) if a.exists() and not a.is_dir()), None)
        if blocker is not None:
            raise ForecastInputError(f"{flag} {value}: {blocker} is a file, not a directory; name a path in a directory")
        if value is not None and value.is_dir():
            raise ForecastInputError(f"{flag} {value} is a directory: name a file, e.g. {value / 'forecast'}"
                                     f"{'.csv' if flag == '--out' else '.png'}")
        if value is not None:
            check_write_target(value, flag)  # a named pipe or a device node is never replaced by a file
    if args.out is not None and args.plot is not None and same_target(args.out, args.plot):
        raise ForecastInputError(f"--out {args.out} and --plot {args.plot} are the same file: the picture would "
                                 f"replace the forecast; name two different files")


def run(args: argparse.Namespace) -> None:
    """Forecast and write the outputs; bad input raises a KronosUserError (data, request, checkpoint, output path)."""
    _check_paths(args)
    quantiles = parse_quantiles(args.quantiles) if args.quantiles else ()
    if args.generate is not None and quantiles:
        raise ForecastInputError("--quantiles summarise a forecast and --generate writes every path: give one of them")
    if args.generate is not None and not 1 <= args.generate <= SAMPLE_COUNT_MAX:
        raise ForecastInputError(f"--generate {args.generate}: draw from 1 to {SAMPLE_COUNT_MAX} continuations")
    sample_count = args.sample_count if args.generate is None else args.generate
    check_device(args.device)
    limit, why = context_limit(args.model)
    max_context = args.max_context if args.max_context is not None else min(DEFAULT_MAX_CONTEXT, limit)
    calibration = calibration_of(args.model)  # the T chosen on validation, when the model's export records one
    settings = sampling_of(None, args.T, args.top_k, args.top_p, sample_count, calibration)
    settings = dataclasses.replace(settings, seed=args.seed).validate(flag="--")
    check_context(max_context, args.pred_len, limit, flag="--", reason=why)
    if not args.csv.is_file():
        raise ForecastInputError(f"--csv {args.csv}: no such file")
    df = read_series(args.csv, args.symbol)
    if args.lookback > len(df):
        raise ForecastInputError(f"--lookback {args.lookback} is longer than the {len(df)} rows of {args.csv}: pass a smaller --lookback")
    window = plan_forecast(df, len(df) - args.lookback, args.lookback, args.pred_len, settings,
                           max_context=max_context, context=limit, context_reason=why, flag="--")
    if len(window.history) < args.lookback:
        print(f"note: --lookback {args.lookback} is longer than --max-context {max_context}: "
              f"the last {len(window.history)} rows are used", file=sys.stderr)
    predictor = load_predictor(args.tokenizer, args.model, device=args.device, max_context=max_context)
    result = forecast_frame(predictor, window, args.pred_len, settings, known_future=False,
                            requested_lookback=args.lookback)
    print(f"note: {result.future.note}", file=sys.stderr)
    print(f"note: {result.repairs.summary()}", file=sys.stderr)
    print(f"note: sampled at T {settings.T:g}, top-p {settings.top_p:g}"
          + (f", spread {settings.spread:g}" if settings.spread != 1.0 else "")
          + (" (chosen on validation, training_info.json)" if args.T is None and calibration else ""),
          file=sys.stderr)
    table = forecast_table(result.paths, result.future.index, quantiles)
    written = table if args.generate is None else long_table(generated_frames(result.paths, result.future.index))
    if args.out is None:
        written.to_csv(sys.stdout, index=False)
    else:
        atomic_write_text(args.out, written.to_csv(index=False))
        what = "forecast rows" if args.generate is None else f"rows of {args.generate} generated continuations"
        print(f"wrote {len(written)} {what} to {args.out}", file=sys.stderr)
    if args.plot is not None:
        from kronos.cli.plot import plot_forecast  # matplotlib only when a plot is asked for

        low, high = (min(quantiles), max(quantiles)) if len(quantiles) >= 2 else DEFAULT_BAND
        band = price_band(result.paths, low, high)
        drawn = (f"{sample_count} generated path(s)" if args.generate is not None  # --generate N draws N paths
                 else f"{sample_count} sample(s)")
        title = f"{args.csv.name}: {args.pred_len}-step forecast, {drawn}, {low:g}-{high:g} band"
        plot_forecast(result.history, table, band, args.plot, title=title)
        print(f"wrote plot to {args.plot}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0, 2 with a one-line message (no traceback) for bad input, 1 for another OS error
    (one line too), 130 when interrupted."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (KronosUserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        message = " ".join(str(err).split())  # one line, whatever the message held
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a name too long for the file system, a disk that is full
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

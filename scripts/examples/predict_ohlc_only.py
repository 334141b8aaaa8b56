"""Forecast from prices alone: without volume/amount columns the predictor fills them with zeros.

    python scripts/examples/predict_ohlc_only.py [--model DIR --tokenizer DIR] [--csv FILE]
"""

from __future__ import annotations

from example_args import load, parser, resolve, window

PRICES = ["open", "high", "low", "close"]


def main() -> None:
    args = resolve(parser(__doc__.splitlines()[0]).parse_args())
    predictor, df = load(args)
    history, actual = window(df, len(df) - args.pred_len, args.lookback, args.pred_len)
    forecast = predictor.predict(
        df=history[PRICES], x_timestamp=history["timestamps"], y_timestamp=actual["timestamps"],
        pred_len=args.pred_len, T=1.0, top_p=0.9, sample_count=1, verbose=False,
    )
    print(forecast[PRICES].head().to_string())
    print(f"forecast columns: {list(forecast.columns)}")


if __name__ == "__main__":
    main()

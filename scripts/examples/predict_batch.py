"""Forecast several series (here: windows of one CSV, with different history lengths) in one batched call.

    python scripts/examples/predict_batch.py [--model DIR --tokenizer DIR] [--csv FILE] [--series 3]
"""

from __future__ import annotations

from example_args import load, parser, resolve, window

from kronos.data.features import FEATURES


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=3)
    args = resolve(p.parse_args())
    predictor, df = load(args)
    histories, futures = [], []
    for k in range(args.series):
        # Unequal history lengths are allowed in one batch.
        history, actual = window(df, len(df) - args.pred_len - 150 * k, args.lookback - 10 * k, args.pred_len)
        histories.append(history)
        futures.append(actual)
    forecasts = predictor.predict_batch(
        df_list=[h[list(FEATURES)] for h in histories],
        x_timestamp_list=[h["timestamps"] for h in histories],
        y_timestamp_list=[f["timestamps"] for f in futures],
        pred_len=args.pred_len, T=1.0, top_p=0.9, sample_count=1, verbose=False,
    )
    for k, (history, forecast, actual) in enumerate(zip(histories, forecasts, futures)):
        print(f"series {k}: {len(history)} history rows to {history['timestamps'].iloc[-1]}; "
              f"last forecast close {forecast['close'].iloc[-1]:.4f}, actual {actual['close'].iloc[-1]:.4f}")


if __name__ == "__main__":
    main()

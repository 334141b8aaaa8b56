"""Forecast one series with ``KronosPredictor.predict`` and score it against the rows that followed.

    python scripts/examples/predict_single.py [--model DIR --tokenizer DIR] [--csv FILE]
"""

from __future__ import annotations

import numpy as np

from example_args import load, parser, resolve, window

from kronos.data.features import FEATURES


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sample-count", type=int, default=1)
    args = resolve(p.parse_args())
    predictor, df = load(args)
    history, actual = window(df, len(df) - args.pred_len, args.lookback, args.pred_len)
    forecast = predictor.predict(
        df=history[list(FEATURES)], x_timestamp=history["timestamps"], y_timestamp=actual["timestamps"],
        pred_len=args.pred_len, T=1.0, top_p=0.9, sample_count=args.sample_count, verbose=False,
    )
    print(forecast.head().to_string())
    mae = np.mean(np.abs(forecast["close"].to_numpy() - actual["close"].to_numpy()))
    naive = np.mean(np.abs(history["close"].iloc[-1] - actual["close"].to_numpy()))
    print(f"close MAE over {args.pred_len} rows: Kronos {mae:.4f}, naive (last close) {naive:.4f}")


if __name__ == "__main__":
    main()

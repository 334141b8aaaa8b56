"""Probabilistic forecast: draw sample paths with ``predict_samples`` and read quantiles from them.

    python scripts/examples/predict_quantiles.py [--model DIR --tokenizer DIR] [--csv FILE] [--sample-count 20]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from example_args import load, parser, resolve, window

from kronos.data.features import FEATURES


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sample-count", type=int, default=20)
    p.add_argument("--T", type=float, default=1.0)
    args = resolve(p.parse_args())
    predictor, df = load(args)
    history, actual = window(df, len(df) - args.pred_len, args.lookback, args.pred_len)
    samples = predictor.predict_samples(
        df=history[list(FEATURES)], x_timestamp=history["timestamps"], y_timestamp=actual["timestamps"],
        pred_len=args.pred_len, T=args.T, top_p=0.9, sample_count=args.sample_count, verbose=False,
    )
    print(f"sample paths: {tuple(np.asarray(samples.paths).shape)} (samples, horizon, features)")
    levels = samples.quantiles((0.1, 0.5, 0.9))
    close = pd.DataFrame({f"q{int(q * 100)}": frame["close"] for q, frame in levels.items()})
    close["actual"] = actual["close"].to_numpy()
    print(close.head(10))
    inside = (close["actual"] >= close["q10"]) & (close["actual"] <= close["q90"])
    print(f"actual close inside the 10-90% band on {inside.mean():.0%} of {len(close)} rows")


if __name__ == "__main__":
    main()

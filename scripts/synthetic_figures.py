"""Measure the synthetic market's promised figures over several seeds; print JSON.

    python scripts/synthetic_figures.py                              # the main job's market (24 x 700), seeds 0-4 and 42
    python scripts/synthetic_figures.py --instruments 48 --steps 1200 --seeds 0 1 2

Per seed: realised daily volatility of each instrument against its design level (the ratio's min, median
and max; realised idiosyncratic vol = std of r - beta * m - a, which the GARCH scales to ``level``), the
largest 20-day realised volatility of any instrument (in %/day and as a multiple of its level), the excess
kurtosis of standardised returns (mean over instruments), and the daily RankICs the docstring of
:mod:`kronos.data.synthetic` quotes: the oracle (the drift) on the next and the tradable return, abnormal
volume (log-volume minus its trailing 20-day mean) of the day before on the next return and of the day on
the tradable return, trailing 5-day return (momentum) on both.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from kronos.data.synthetic import SyntheticSource
from kronos.stats import daily_ic


def _rank_ic(signal: np.ndarray, label: np.ndarray) -> float:
    """Mean over days of the cross-sectional RankIC of signal vs label, both [I, D]."""
    frame = pd.DataFrame({"datetime": np.tile(np.arange(signal.shape[1]), signal.shape[0]),
                          "s": signal.ravel(), "l": label.ravel()})
    return float(daily_ic(frame, "s", "l").mean())


def seed_figures(source: SyntheticSource) -> dict[str, float]:
    """The figures of one market (see the module docstring)."""
    latent, panel = source.paths(), source.load()
    v = np.stack(panel.values).astype(np.float64)                     # [I, T, 6]
    r = latent.returns                                                # [I, T] log returns
    idio = r - latent.beta[:, None] * latent.market[None, :] - latent.drift   # sigma * eps: GARCH around level
    ratio = idio.std(axis=1) / latent.vol_level
    idio_20d = pd.DataFrame(idio.T).rolling(20).std().to_numpy().T / latent.vol_level[:, None]
    rolling = pd.DataFrame(r.T).rolling(20).std().to_numpy().T        # [I, T]
    worst = int(np.nanargmax(np.nanmax(rolling, axis=1)))
    z = (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True)
    log_close, log_vol = np.log(v[..., 3]), np.log(v[..., 4])
    t = np.arange(25, v.shape[1] - 2)

    def abnormal(day: np.ndarray) -> np.ndarray:
        return log_vol[:, day] - np.stack([log_vol[:, d - 20:d].mean(1) for d in day], 1)

    nxt, tradable = log_close[:, t + 1] - log_close[:, t], log_close[:, t + 2] - log_close[:, t + 1]
    momentum = log_close[:, t] - log_close[:, t - 5]
    return {
        "idio_vol_ratio_min": float(ratio.min()), "idio_vol_ratio_median": float(np.median(ratio)),
        "idio_vol_ratio_max": float(ratio.max()),
        "total_vol_pct_min": float(100 * r.std(1).min()), "total_vol_pct_max": float(100 * r.std(1).max()),
        "max_20d_vol_pct": float(100 * np.nanmax(rolling[worst])),
        "max_20d_vol_over_level": float(np.nanmax(rolling[worst]) / latent.vol_level[worst]),
        "max_20d_idio_vol_over_level": float(np.nanmax(idio_20d)),
        "excess_kurtosis_mean": float(((z**4).mean(1) - 3).mean()),
        "excess_kurtosis_max": float(((z**4).mean(1) - 3).max()),
        "rank_ic_oracle_next": _rank_ic(latent.drift[:, t + 1], nxt),
        "rank_ic_oracle_tradable": _rank_ic(latent.drift[:, t + 2], tradable),
        "rank_ic_volume_yesterday_next": _rank_ic(abnormal(t - 1), nxt),
        "rank_ic_volume_tradable": _rank_ic(abnormal(t), tradable),
        "rank_ic_momentum_next": _rank_ic(momentum, nxt),
        "rank_ic_momentum_tradable": _rank_ic(momentum, tradable),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 42])
    p.add_argument("--instruments", type=int, default=24)
    p.add_argument("--steps", type=int, default=700)
    args = p.parse_args()
    per_seed = {s: seed_figures(SyntheticSource(n_instruments=args.instruments, n_steps=args.steps, seed=s))
                for s in args.seeds}
    keys = next(iter(per_seed.values())).keys()
    summary = {k: {"min": min(f[k] for f in per_seed.values()), "max": max(f[k] for f in per_seed.values())}
               for k in keys}
    print(json.dumps({"market": {"instruments": args.instruments, "steps": args.steps}, "seeds": args.seeds,
                      "range_over_seeds": summary, "per_seed": per_seed}, indent=1))


if __name__ == "__main__":
    main()

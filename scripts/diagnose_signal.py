"""Where the synthetic market's planted signal is lost between the candles and the model's trade signal.

    python scripts/diagnose_signal.py outputs/default [outputs/other ...] [--windows 400] [--paths 25]

For each experiment (a directory holding ``tokenizer/`` and ``predictor/`` trained on the main job's synthetic
market, ``data.source`` defaults) and a fixed random sample of decision windows from the validation/test part of
the calendar, prints one JSON object:

- ``tokenizer_ceiling``: the traded return close(t+1) -> close(t+2) read from the tokenizer's reconstruction of
  the TRUE window against the real one (Pearson), and both against the planted shock v(t) (Spearman). What the
  decoder loses here it also loses on every sampled path;
- ``model``: the model's trade signal (mean over paths of the decoded log return close(t+1) -> close(t+2), over
  the lookback's return volatility) against v(t), the realised traded return and the window's normalised
  volume; ``split_half`` is the correlation of the signal from one half of the paths with the other half (close
  to 1: more paths would not help, the noise is in the learned function or the decoding);
- with several experiments, ``ensemble``: the same for the mean of their standardised signals and their pairwise
  correlations (low correlation between models on different tokenizers: tokenizer-specific noise).

Only the synthetic market's latent paths (``SyntheticSource.paths``) make v(t) known; the script refuses other
data. Sampling: T 0.6, top-p 0.9 (the backtest's default), one seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from kronos.data.synthetic import SyntheticSource
from kronos.data.transforms import decode, encode
from kronos.data.windows import WindowStore
from kronos.inference.loading import load_predictor
from kronos.inference.settings import SamplingSettings


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(spearmanr(a, b)[0]), 3)


def _windows(args: argparse.Namespace) -> dict[str, Any]:
    source = SyntheticSource(seed=args.market_seed)
    panel, latent = source.load(), source.paths()
    rng = np.random.default_rng(0)
    n_steps = panel.values[0].shape[0]
    low = int(n_steps * 0.68)  # the validation/test part of the main job's 0.7/0.1/0.2 calendar
    inst = rng.integers(0, len(panel.values), args.windows)
    off = rng.integers(low, n_steps - args.lookback - args.horizon, args.windows)
    raw = np.stack([panel.values[i][o:o + args.lookback + args.horizon] for i, o in zip(inst, off)]).astype(np.float64)
    t = off + args.lookback - 1
    return {"panel": panel, "inst": inst, "off": off, "raw": raw, "v_t": latent.volume_shock[inst, t],
            "real": np.log(raw[:, args.lookback + 1, 3] / raw[:, args.lookback, 3]),
            "sig": np.diff(np.log(raw[:, :args.lookback, 3]), axis=1).std(axis=1)}


def diagnose(root: Path, w: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], np.ndarray]:
    """The figures of one experiment and its standardised trade signal [windows]."""
    L = args.lookback
    predictor = load_predictor(root / "tokenizer", root / "predictor", device="cpu")
    norm = predictor.normalization
    store = WindowStore(w["panel"], L, args.horizon, normalization=norm)
    batch = store.gather(w["inst"], w["off"], with_eval=True)
    x = batch["x"]
    enc = encode(w["raw"], L, norm, 5.0)
    with torch.no_grad():
        rec = predictor.tokenizer.decode_ids(*predictor.tokenizer.encode_ids(x)).numpy()
    rebuilt = decode(rec[:, None, L:, :], enc.mean[:, None, :], enc.std[:, None, :], enc.anchor[:, None], norm)[:, 0]
    rec_trade = np.log(rebuilt[:, 1, 3].astype(np.float64) / rebuilt[:, 0, 3])
    sampling = SamplingSettings(T=0.6, top_k=0, top_p=0.9, sample_count=args.paths, seed=0)
    z = predictor.forecast_normalized(x[:, :L], batch["stamp"][:, :L], batch["stamp"][:, L:], sampling).numpy()
    close = decode(z, enc.mean[:, None, :], enc.std[:, None, :], enc.anchor[:, None], norm)[..., 3].astype(np.float64)
    per_path = np.log(close[:, :, 1] / close[:, :, 0]) / w["sig"][:, None]              # [windows, paths]
    signal = per_path.mean(axis=1)
    half = per_path.shape[1] // 2
    volume_z = encode(w["raw"], L, "level", 5.0).x[:, L - 1, 4]
    out = {
        "normalization": norm,
        "tokenizer_ceiling": {"pearson_recon_vs_real_trade_return": round(float(np.corrcoef(rec_trade, w["real"])[0, 1]), 3),
                              "spearman_recon_vs_v_t": _rho(rec_trade, w["v_t"]),
                              "spearman_real_vs_v_t": _rho(w["real"], w["v_t"])},
        "model": {"spearman_vs_v_t": _rho(signal, w["v_t"]), "spearman_vs_real": _rho(signal, w["real"]),
                  "spearman_vs_volume_z": _rho(signal, volume_z),
                  "split_half": round(float(np.corrcoef(per_path[:, :half].mean(1), per_path[:, half:].mean(1))[0, 1]), 3)},
    }
    return out, (signal - signal.mean()) / signal.std()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="+", type=Path, help="directories holding tokenizer/ and predictor/")
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--paths", type=int, default=25)
    ap.add_argument("--lookback", type=int, default=60)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--market-seed", type=int, default=42, help="data.source.seed of the synthetic market")
    args = ap.parse_args(argv)
    w = _windows(args)
    report: dict[str, Any] = {"windows": args.windows, "paths": args.paths,
                              "volume_rule_spearman_vs_real": _rho(
                                  np.log(w["raw"][:, args.lookback - 1, 4])
                                  - np.log(w["raw"][:, args.lookback - 20:args.lookback, 4]).mean(1), w["real"]),
                              "experiments": {}}
    signals = []
    for root in args.experiments:
        report["experiments"][str(root)], s = diagnose(root, w, args)
        signals.append(s)
    if len(signals) > 1:
        mean = np.mean(signals, axis=0)
        report["ensemble"] = {"spearman_vs_v_t": _rho(mean, w["v_t"]), "spearman_vs_real": _rho(mean, w["real"]),
                              "pairwise_correlation": np.round(np.corrcoef(signals), 3).tolist()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tiny random-weight Kronos models and synthetic K-lines for inference tests."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from kronos import Kronos, KronosTokenizer

TINY_TOKENIZER = dict(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=3, n_dec_layers=3, ffn_dropout_p=0.0,
                      attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=6, s2_bits=6, beta=0.05, gamma0=1.0,
                      gamma=1.1, zeta=0.05, group_size=4)
TINY_PREDICTOR = dict(s1_bits=6, s2_bits=6, n_layers=2, d_model=48, n_heads=4, ff_dim=96, ffn_dropout_p=0.1,
                      attn_dropout_p=0.1, resid_dropout_p=0.1, token_dropout_p=0.1, learn_te=True)


@pytest.fixture(scope="session")
def tiny_models() -> tuple[Kronos, KronosTokenizer]:
    torch.manual_seed(0)
    return Kronos(**TINY_PREDICTOR), KronosTokenizer(**TINY_TOKENIZER)


def make_series(rows: int, seed: int, start: str = "2024-01-02 09:30") -> tuple[pd.DataFrame, pd.Series]:
    """A random-walk OHLCVA frame of ``rows`` rows and its 5-minute timestamps."""
    rng = np.random.default_rng(seed)
    close = 10 + np.cumsum(rng.normal(0, 0.1, rows + 1))
    df = pd.DataFrame({
        "open": close[:-1], "high": np.maximum(close[:-1], close[1:]) + 0.05,
        "low": np.minimum(close[:-1], close[1:]) - 0.05, "close": close[1:],
        "volume": rng.uniform(100, 1000, rows),
    })
    df["amount"] = df["volume"] * df["close"]
    return df, pd.Series(pd.date_range(start, periods=rows, freq="5min"), name="timestamps")


def future_timestamps(x_ts: pd.Series, pred_len: int) -> pd.Series:
    return pd.Series(pd.date_range(x_ts.iloc[-1] + pd.Timedelta("5min"), periods=pred_len, freq="5min"))

"""Shared test fixtures: paths to the shared fixtures/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

# Constructor kwargs of the tiny pair built by the ``tiny_pair`` fixture (published config.json keys).
TINY_TOKENIZER_CONFIG = dict(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=2,
                             ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=6, s2_bits=6,
                             beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
TINY_PREDICTOR_CONFIG = dict(s1_bits=6, s2_bits=6, n_layers=2, d_model=48, n_heads=4, ff_dim=96, ffn_dropout_p=0.0,
                             attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


def _env_dir(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures/upstream_tiny through KRONOS_FIXTURES_DIR (set by .ci/run)."""
    path = _env_dir("KRONOS_FIXTURES_DIR")
    if path is None:
        pytest.skip("upstream_tiny fixtures not found: set KRONOS_FIXTURES_DIR to shared/fixtures/upstream_tiny")
    return path


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tokenizer_dir, predictor_dir): a tiny random-weight pair saved in the published format.

    Built in code (seeded) so tests that only need *a* loadable checkpoint pair do not depend on
    KRONOS_FIXTURES_DIR; only the upstream-parity tests need the shared fixtures.
    """
    from kronos import Kronos, KronosTokenizer

    root = tmp_path_factory.mktemp("tiny_pair")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        tokenizer = KronosTokenizer(**TINY_TOKENIZER_CONFIG)
        predictor = Kronos(**TINY_PREDICTOR_CONFIG)
    tokenizer.save_pretrained(root / "tokenizer")
    predictor.save_pretrained(root / "predictor")
    return root / "tokenizer", root / "predictor"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data through KRONOS_DATA_DIR (set by .ci/run)."""
    path = _env_dir("KRONOS_DATA_DIR")
    if path is None:
        pytest.skip("shared real data not found: set KRONOS_DATA_DIR to shared/data")
    return path


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op torch thread per test: the tests' models are tiny, and on a busy 2-core machine
    extra threads mostly wait for each other (the same tests ran 30x slower with two)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

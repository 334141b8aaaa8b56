"""Shared test fixtures: paths to the shared fixtures/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


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

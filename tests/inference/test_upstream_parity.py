"""Every case of the upstream fixtures through the public API, cached and uncached (the reference's
forecast after the documented candle repair of kronos.inference.candles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.data.features import FEATURES
from kronos.inference.candles import CandleRepairs, repair_candles

PRICES = ["open", "high", "low", "close"]
VOLUMES = ["volume", "amount"]


def _cases(fixtures_dir: Path) -> dict[str, dict]:
    return {case["name"]: case for case in json.loads((fixtures_dir / "cases.json").read_text())}


@pytest.fixture(scope="module")
def models(fixtures_dir: Path) -> tuple[Kronos, KronosTokenizer]:
    return Kronos.from_pretrained(fixtures_dir / "predictor"), KronosTokenizer.from_pretrained(fixtures_dir / "tokenizer")


@pytest.fixture(scope="module")
def rows(fixtures_dir: Path) -> pd.DataFrame:
    return pd.read_csv(fixtures_dir / "input.csv", parse_dates=["timestamps"])


def _assert_matches(pred: pd.DataFrame, expected_csv: Path, last_close: float) -> None:
    """``pred`` equals the reference's greedy forecast after the documented candle repair (the reference
    returns the decoded candles as they are, impossible ones included; greedy: one path, so the repair of
    the reference's path is the repair of ours)."""
    expected = pd.read_csv(expected_csv, parse_dates=["timestamps"])
    assert list(pred.index) == list(expected["timestamps"])
    repaired, counts = repair_candles(expected[list(FEATURES)].to_numpy(), last_close)
    assert pred.attrs["candle_repairs"] == CandleRepairs.from_array(counts).as_dict()
    expected[list(FEATURES)] = repaired
    np.testing.assert_allclose(pred[PRICES].to_numpy(), expected[PRICES].to_numpy(), rtol=1e-4, atol=0)
    for col in VOLUMES:
        atol = 1e-3 * np.abs(expected[col].to_numpy()).max() + 1e-6
        np.testing.assert_allclose(pred[col].to_numpy(), expected[col].to_numpy(), rtol=0, atol=atol, err_msg=col)


def _window(rows: pd.DataFrame, start: int, context: int, pred_len: int, columns: list[str]):
    hist = rows.iloc[start : start + context]
    future = rows.iloc[start + context : start + context + pred_len]
    return hist[columns].reset_index(drop=True), hist["timestamps"].reset_index(drop=True), future["timestamps"].reset_index(drop=True)


PREDICT_CASES = ["plain", "slide", "long_context", "ohlc_only", "ohlcv_no_amount"]


def test_fixture_lists_the_cases_we_run(fixtures_dir: Path) -> None:
    assert set(_cases(fixtures_dir)) == set(PREDICT_CASES) | {"batch", "tensors"}


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize("name", PREDICT_CASES)
def test_predict_case(name: str, use_cache: bool, fixtures_dir: Path, models, rows) -> None:
    case = _cases(fixtures_dir)[name]
    model, tokenizer = models
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=case["max_context"], use_cache=use_cache)
    df, x_ts, y_ts = _window(rows, case["start_row"], case["context_rows"], case["pred_len"], case["columns"])
    pred = predictor.predict(
        df, x_ts, y_ts, pred_len=case["pred_len"], T=case["T"], top_k=case["top_k"], top_p=case["top_p"],
        sample_count=case["sample_count"], verbose=False,
    )
    _assert_matches(pred, fixtures_dir / case["expected"], float(df["close"].iloc[-1]))


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_predict_batch_case(use_cache: bool, fixtures_dir: Path, models, rows) -> None:
    case = _cases(fixtures_dir)["batch"]
    model, tokenizer = models
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=case["max_context"], use_cache=use_cache)
    windows = [_window(rows, s, case["context_rows"], case["pred_len"], case["columns"]) for s in case["start_rows"]]
    preds = predictor.predict_batch(
        [w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows], pred_len=case["pred_len"],
        T=case["T"], top_k=case["top_k"], top_p=case["top_p"], sample_count=case["sample_count"], verbose=False,
    )
    assert len(preds) == len(case["expected"])
    for pred, expected, window in zip(preds, case["expected"], windows):
        _assert_matches(pred, fixtures_dir / expected, float(window[0]["close"].iloc[-1]))


def test_tensors_case(fixtures_dir: Path, models) -> None:
    model, tokenizer = models
    t = load_file(fixtures_dir / _cases(fixtures_dir)["tensors"]["file"])
    with torch.no_grad():
        s1, s2 = tokenizer.encode(t["x"], half=True)
        decoded = tokenizer.decode([t["s1_ids"], t["s2_ids"]], half=True)
        s1_logits, s2_logits = model(t["s1_ids"], t["s2_ids"], t["stamp"], use_teacher_forcing=True,
                                     s1_targets=t["s1_ids"])
    assert torch.equal(s1, t["s1_ids"]) and torch.equal(s2, t["s2_ids"])
    torch.testing.assert_close(decoded, t["decoded"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s1_logits, t["s1_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s2_logits, t["s2_logits_teacher_forced"], rtol=1e-4, atol=1e-4)

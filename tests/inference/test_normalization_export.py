"""A model exported in ``returns`` normalisation forecasts in that mode when loaded from its directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.inference.loading import load_predictor
from kronos.inference.settings import SamplingSettings
from kronos.training_info import TrainingInfo
from tests.inference.conftest import future_timestamps, make_series

SAMPLING = SamplingSettings(T=1.0, top_k=0, top_p=0.9, sample_count=3, seed=7)


@pytest.fixture()
def exported(tmp_path: Path, tiny_models: tuple[Kronos, KronosTokenizer]) -> tuple[Path, Path]:
    model, tokenizer = tiny_models
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    model.save_pretrained(tmp_path / "predictor")
    TrainingInfo(stage="predictor", normalization="returns").write(tmp_path / "predictor")
    return tmp_path / "tokenizer", tmp_path / "predictor"


def _paths(predictor: KronosPredictor) -> np.ndarray:
    df, ts = make_series(40, seed=3)
    return predictor.predict_samples(df, ts, future_timestamps(ts, 4), 4, sampling=SAMPLING, verbose=False).paths


def test_export_in_returns_mode_is_used_in_that_mode(exported: tuple[Path, Path],
                                                     tiny_models: tuple[Kronos, KronosTokenizer]) -> None:
    loaded = load_predictor(str(exported[0]), str(exported[1]), device="cpu")
    assert loaded.normalization == "returns"
    by_hand = KronosPredictor(Kronos.from_pretrained(exported[1]), KronosTokenizer.from_pretrained(exported[0]),
                              device="cpu")
    assert by_hand.normalization == "returns"
    model, tokenizer = tiny_models
    returns = KronosPredictor(model, tokenizer, device="cpu", normalization="returns")
    level = KronosPredictor(model, tokenizer, device="cpu", normalization="level")
    paths = _paths(loaded)
    np.testing.assert_allclose(paths, _paths(returns), rtol=1e-5)
    assert not np.allclose(paths, _paths(level))
    assert (paths[..., :4] > 0).all() and (paths[..., 4:] >= 0).all()


def test_export_without_the_record_keeps_level(exported: tuple[Path, Path]) -> None:
    (exported[1] / "training_info.json").unlink()
    assert load_predictor(str(exported[0]), str(exported[1]), device="cpu").normalization == "level"

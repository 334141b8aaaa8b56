"""The example scripts run on a tiny published-format pair and a generated CSV, without network (runpy)."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "scripts" / "examples"


@pytest.fixture(scope="module")
def prices_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 hourly OHLCV rows of a seeded random walk, in the examples' CSV format."""
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame({
        "timestamps": pd.date_range("2024-01-01", periods=600, freq="h"),
        "open": open_, "high": np.maximum(open_, close) * 1.002, "low": np.minimum(open_, close) * 0.998,
        "close": close, "volume": rng.uniform(100, 200, 600),
    })
    frame["amount"] = frame["volume"] * frame["close"]
    path = tmp_path_factory.mktemp("examples") / "prices.csv"
    frame.to_csv(path, index=False)
    return path


def _run(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRONOS_FIXTURES_DIR", raising=False)  # everything the script needs is passed
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("predict_single.py", "close MAE over 12 rows"),
        ("predict_batch.py", "series 2: 130 history rows"),
        ("predict_ohlc_only.py", "forecast columns: ['open', 'high', 'low', 'close', 'volume', 'amount']"),
        ("predict_quantiles.py", "sample paths: (5, 12, 6)"),
    ],
)
def test_prediction_examples(script: str, expected: str, tiny_pair: tuple[Path, Path], prices_csv: Path,
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--sample-count", "5"] if script == "predict_quantiles.py" else []
    tokenizer, predictor = tiny_pair
    _run(script, ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv", str(prices_csv),
                  "--lookback", "150", "--pred-len", "12", "--device", "cpu", *extra], monkeypatch)
    assert expected in capsys.readouterr().out


def test_missing_experiment_names_the_command_to_run(tmp_path: Path, prices_csv: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as stop:
        _run("predict_single.py", ["--experiment", "nope", "--outputs-dir", str(tmp_path), "--csv", str(prices_csv)],
             monkeypatch)
    assert "stage=tokenizer name=nope" in str(stop.value.code)


@pytest.mark.slow
def test_finetune_example_from_pretrained_trains_predictor_on_finetuned_tokenizer(
    tiny_pair: tuple[Path, Path], prices_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: `--from-pretrained` ran stage=predictor on the *pretrained* tokenizer while the
    forecast used the fine-tuned one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    tokenizer, predictor = tiny_pair
    outputs = tmp_path / "outputs"
    _run("finetune_csv.py", ["--name", "ex", "--outputs-dir", str(outputs), "--from-pretrained",
                             "--model", str(predictor), "--tokenizer", str(tokenizer), "--csv", str(prices_csv),
                             "--lookback", "100", "--pred-len", "8", "trainer.max_steps=2",
                             "trainer.limit_val_batches=1", "data.lookback=32", "data.horizon=4",
                             "callbacks.progress=null", "trainer.enable_progress_bar=false"], monkeypatch)
    for part in ("tokenizer", "predictor"):
        assert (outputs / "ex" / part / "model.safetensors").is_file()
    info = json.loads((outputs / "ex" / "predictor" / "training_info.json").read_text())
    assert info["tokenizer_source"] == {"location": str(outputs / "ex" / "tokenizer"), "origin": "export"}
    assert info["started_from"] == str(predictor)
    out = capsys.readouterr().out
    assert f"the predictor trained on the export tokenizer {outputs / 'ex' / 'tokenizer'}" in out
    assert f"forecast from {outputs / 'ex'}" in out

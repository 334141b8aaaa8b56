"""The example scripts run against the shared fixture pair without network (in-process, via runpy)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "scripts" / "examples"


def _run(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch, fixtures_dir: Path) -> None:
    monkeypatch.setenv("KRONOS_FIXTURES_DIR", str(fixtures_dir))
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
def test_prediction_examples(script: str, expected: str, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--sample-count", "5"] if script == "predict_quantiles.py" else []
    _run(script, ["--lookback", "150", "--pred-len", "12", "--device", "cpu", *extra], monkeypatch, fixtures_dir)
    assert expected in capsys.readouterr().out


@pytest.mark.slow
def test_finetune_example_trains_then_forecasts_from_export(fixtures_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _run("finetune_csv.py", ["--name", "ex", "--outputs-dir", str(tmp_path / "outputs"), "--lookback", "100",
                             "--pred-len", "8", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                             "trainer.limit_val_batches=1"], monkeypatch, fixtures_dir)
    for part in ("tokenizer", "predictor"):
        assert (tmp_path / "outputs" / "ex" / part / "model.safetensors").is_file()
    assert f"forecast from {tmp_path / 'outputs' / 'ex'}" in capsys.readouterr().out

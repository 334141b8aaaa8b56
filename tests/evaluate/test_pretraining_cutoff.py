"""Which training-data end the overlap warning uses for each model (the registry of published models and
the export's training_info.json)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from kronos.evaluate.settings import EvaluateSettings, ModelSpec
from kronos.experiment import WeightSource
from kronos.stages.evaluate import _spec_data_end, kronos_data_end
from kronos.train import CONFIG_DIR

def _settings(**change) -> EvaluateSettings:
    raw = OmegaConf.load(Path(CONFIG_DIR) / "evaluate" / "default.yaml")
    seeds = {task: {"seed": 0} for task in ("price", "return", "volatility", "generation")}
    raw.merge_with({"stride": 1, "sampling": {"seed": 0}, "task_sampling": seeds, **change})
    return EvaluateSettings.from_config(raw)


def _export(root: Path, started_from: str | None, train_end: str) -> Path:
    root.mkdir(parents=True)
    info = {"config": {"model": {"predictor": {"pretrained": started_from, "published": "NeoQuasar/Kronos-small",
                                               "published_data_end": "2024-06-30"}}},
            "data": {"splits": {"train": {"start": "2020-01-02 00:00:00", "end": train_end}}}}
    (root / "training_info.json").write_text(json.dumps(info))
    return root


def test_published_cutoff_is_in_the_model_configs() -> None:
    """The model configs read the registry of published models (kronos/models/registry.py)."""
    for name in ("small", "base", "mini"):
        model = OmegaConf.load(Path(CONFIG_DIR) / "model" / f"{name}.yaml")
        assert model.predictor.published_data_end == "2024-06-30", name


def test_published_weights_used_unchanged_get_the_published_cutoff() -> None:
    src = WeightSource("predictor", "NeoQuasar/Kronos-small", "pretrained")
    assert kronos_data_end(_settings(), src) == "2024-06-30"


def test_fine_tuned_export_inherits_the_cutoff_and_its_own_training_end(tmp_path: Path) -> None:
    tuned = _export(tmp_path / "tuned", "NeoQuasar/Kronos-small", "2023-12-29 00:00:00")
    src = WeightSource("predictor", str(tuned), "export")
    assert kronos_data_end(_settings(), src) == "2024-06-30"     # the later of the two
    scratch = _export(tmp_path / "scratch", None, "2025-03-31 00:00:00")
    assert kronos_data_end(_settings(), WeightSource("predictor", str(scratch), "export")) == "2025-03-31"
    # An explicit evaluate.kronos_data_end wins.
    assert kronos_data_end(_settings(kronos_data_end="2019-01-01"), src) == "2019-01-01"


def test_listed_published_pair_gets_the_cutoff_unless_given() -> None:
    spec = ModelSpec("zero_shot", "NeoQuasar/Kronos-Tokenizer-base", "NeoQuasar/Kronos-small")
    assert _spec_data_end(spec) == "2024-06-30"
    assert _spec_data_end(ModelSpec("z", "t", "NeoQuasar/Kronos-small", "2023-01-31")) == "2023-01-31"
    assert _spec_data_end(ModelSpec("mine", "t", "/nowhere/predictor")) is None


def test_intraday_training_end_keeps_its_time(tmp_path: Path) -> None:
    """QA: on 5-minute data the training split's end (00:55) was cut to its date and the warning then took the
    whole day as seen in training: test origins later that day (after the validation split) were flagged."""
    import numpy as np
    import pandas as pd

    from kronos.evaluate.runner import overlap_warning

    src = WeightSource("predictor", str(_export(tmp_path / "m5", None, "2024-03-05 00:55:00")), "export")
    end = kronos_data_end(_settings(), src)
    assert end == "2024-03-05 00:55:00"

    class _Origins:
        def __init__(self, stamps: list[str]) -> None:
            self.datetime = pd.to_datetime(stamps).to_numpy().astype("datetime64[ns]").astype(np.int64)

        def __len__(self) -> int:
            return len(self.datetime)

    assert overlap_warning("kronos", end, _Origins(["2024-03-05 19:45", "2024-03-06 10:00"])) is None
    assert "1 of 2 origins" in overlap_warning("kronos", end, _Origins(["2024-03-05 00:50", "2024-03-06 10:00"]))
    # A date still covers the whole day.
    assert "1 of 2 origins" in overlap_warning("kronos", "2024-03-05", _Origins(["2024-03-05 19:45", "2024-03-06 00:00"]))

"""TrainingInfo: one typed record of an export, written and read in one place; unknown fields survive."""

from __future__ import annotations

import json
from pathlib import Path

from kronos.training_info import FILE_NAME, TrainingInfo


def test_round_trip_keeps_unknown_fields(tmp_path: Path) -> None:
    raw = {"stage": "predictor", "global_step": 12, "config": {"data": {"lookback": 90, "horizon": 10}},
           "data": {"splits": {"train": {"end": "2024-01-31 00:00:00"}}}, "started_from": None,
           "tokenizer_source": {"location": "/x/tok", "origin": "export"}, "from_a_newer_version": {"k": [1, 2]}}
    (tmp_path / FILE_NAME).write_text(json.dumps(raw))
    info = TrainingInfo.read(tmp_path)
    assert info is not None and info.stage == "predictor" and info.global_step == 12
    assert info.extra == {"from_a_newer_version": {"k": [1, 2]}}
    assert info.window() == 100 and info.train_end() == "2024-01-31 00:00:00"
    assert info.tokenizer_location() == "/x/tok" and info.pretrained() is None
    out = tmp_path / "copy"
    out.mkdir()
    info.write(out)
    again = json.loads((out / FILE_NAME).read_text())
    assert again["from_a_newer_version"] == {"k": [1, 2]}
    assert {k: again[k] for k in raw} == raw


def test_missing_or_unreadable_is_none(tmp_path: Path) -> None:
    assert TrainingInfo.read(tmp_path) is None
    assert TrainingInfo.read("NeoQuasar/Kronos-small") is None  # a hub id: no record
    (tmp_path / FILE_NAME).write_text("{not json")
    assert TrainingInfo.read(tmp_path) is None
    (tmp_path / FILE_NAME).write_text("[1, 2]")
    assert TrainingInfo.read(tmp_path) is None


def test_typed_reads_tolerate_partial_records() -> None:
    info = TrainingInfo.from_dict({"config": {"data": {"lookback": "90"}}})
    assert info.window() is None and info.train_end() is None and info.tokenizer_location() is None
    # started_from wins for the export's own stage; the run config otherwise
    tuned = TrainingInfo.from_dict({"stage": "predictor", "started_from": "NeoQuasar/Kronos-small"})
    assert tuned.pretrained("predictor") == "NeoQuasar/Kronos-small"
    old = TrainingInfo.from_dict({"config": {"model": {"predictor": {"pretrained": "NeoQuasar/Kronos-base"}}}})
    assert old.pretrained("predictor") == "NeoQuasar/Kronos-base"
    assert "tokenizer_source" not in TrainingInfo().as_dict()  # tokenizer exports have none


def test_input_normalization_is_recorded_else_config_else_level() -> None:
    assert TrainingInfo(normalization="returns").input_normalization() == "returns"
    assert TrainingInfo(config={"data": {"normalization": "returns"}}).input_normalization() == "returns"
    assert TrainingInfo().input_normalization() == "level"  # older exports, published checkpoints
    assert TrainingInfo.from_dict(TrainingInfo(normalization="returns").as_dict()).normalization == "returns"

"""The weights rule across separate commands: consumers load the experiment's exports, not `pretrained`.

`model.<kind>.pretrained` only says where training starts; the predictor stage's tokenizer and the
backtest load what the experiment exported (or `weights.<kind>`) and record what they loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kronos.experiment import Experiment, WeightsNotFoundError
from kronos.train import train


def _info(path: Path) -> dict:
    return json.loads((path / "training_info.json").read_text())


def _pretrained(tiny_pair: tuple[Path, Path]) -> list[str]:
    tok, pred = tiny_pair
    return [f"model.tokenizer.pretrained={tok}", f"model.predictor.pretrained={pred}"]


def _same_weights(module: torch.nn.Module, export: Path) -> bool:
    saved = load_file(str(export / "model.safetensors"))
    state = module.state_dict()
    return saved.keys() <= state.keys() and all(torch.equal(state[k], v) for k, v in saved.items())


@pytest.fixture
def finetuned_tokenizer(make_cfg, tiny_pair) -> Experiment:
    """A separate `stage=tokenizer` of the fine-tuning recipe: its export differs from the pretrained one."""
    cfg = make_cfg("stage=tokenizer", *_pretrained(tiny_pair))
    out = train(cfg)
    export = Path(out["tokenizer"])
    assert load_file(str(export / "model.safetensors"))["embed.weight"].ne(
        load_file(str(tiny_pair[0] / "model.safetensors"))["embed.weight"]).any()
    return Experiment.from_config(cfg)


def test_separate_predictor_stage_trains_on_exported_tokenizer(make_cfg, tiny_pair, finetuned_tokenizer) -> None:
    """Regression: stage=predictor used `model.tokenizer.pretrained` although the experiment had
    fine-tuned (exported) its own tokenizer."""
    from kronos.stages.fit import build_module

    cfg = make_cfg("stage=predictor", *_pretrained(tiny_pair))
    module, source = build_module(cfg, "predictor", finetuned_tokenizer, produced={})
    assert _same_weights(module.tokenizer, finetuned_tokenizer.tokenizer_dir)

    out = train(cfg)
    info = _info(Path(out["predictor"]))
    assert info["tokenizer_source"] == {"location": str(finetuned_tokenizer.tokenizer_dir), "origin": "export"}
    assert info["started_from"] == str(tiny_pair[1])


def test_tokenizer_override_and_pretrained_fallback(make_cfg, tiny_pair) -> None:
    """`weights.tokenizer` wins; without an export the pretrained tokenizer is used unchanged, and recorded."""
    cfg = make_cfg("stage=predictor", *_pretrained(tiny_pair), "trainer.fast_dev_run=true")
    info = _info(Path(train(cfg)["predictor"]))
    assert info["tokenizer_source"] == {"location": str(tiny_pair[0]), "origin": "pretrained"}

    # A fresh predictor over the override tokenizer (6-bit codes like the tiny pair's).
    other = make_cfg("stage=predictor", f"weights.tokenizer={tiny_pair[0]}", "trainer.fast_dev_run=true",
                     "model.tokenizer.config.s1_bits=6", "model.tokenizer.config.s2_bits=6")
    assert _info(Path(train(other)["predictor"]))["tokenizer_source"]["origin"] == "override"


@pytest.mark.parametrize(("stage", "missing"), [("predictor", "tokenizer"), ("backtest", "tokenizer"),
                                               ("all", None)])
def test_missing_weights_stop_before_reading_data(make_cfg, tmp_path: Path, stage: str, missing: str | None) -> None:
    """One clear error naming the command to run, before the (here unreadable) data is touched."""
    cfg = make_cfg(f"stage={stage}", "data=csv", f"data.source.path={tmp_path / 'absent.csv'}", fast=False)
    if missing is None:  # stage=all trains what its later stages consume: the data is the first problem
        from kronos.data.errors import DataValidationError

        with pytest.raises(DataValidationError, match="absent.csv"):
            train(cfg)
        return
    with pytest.raises(WeightsNotFoundError, match=f"stage={missing} name=t"):
        train(cfg)


def test_separate_backtest_loads_the_finetuned_exports(make_cfg, tiny_pair, monkeypatch) -> None:
    """Regression: with the fine-tuning recipe (`pretrained` set), a separate stage=backtest loaded the
    published weights instead of outputs/<name>/{tokenizer,predictor}."""
    import kronos.inference.loading as loading

    out = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", *_pretrained(tiny_pair)))
    experiment = Experiment(Path(out["run_dir"]))
    loaded: list[tuple[str, str]] = []
    real_loader = loading.load_predictor

    def spy(tokenizer: str, predictor: str, **kwargs):  # noqa: ANN202
        loaded.append((tokenizer, predictor))
        return real_loader(tokenizer, predictor, **kwargs)

    monkeypatch.setattr(loading, "load_predictor", spy)  # the stage imports it when it runs
    result = train(make_cfg("stage=backtest", *_pretrained(tiny_pair)))
    assert loaded == [(str(experiment.tokenizer_dir), str(experiment.predictor_dir))]
    written = json.loads((experiment.backtest_dir / "metrics.json").read_text())
    expected = {kind: {"location": str(experiment.export_dir(kind)), "origin": "export"}
                for kind in ("tokenizer", "predictor")}
    assert written["weights"] == result["backtest"]["weights"] == expected
    assert written["n_forecasts"] > 0

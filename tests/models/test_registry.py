"""The registry of published models is what the configs, the web UI and the inference front ends read."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kronos.inference.loading import context_limit
from kronos.models import registry
from kronos.stages.evaluate import published_data_end
from kronos.train import CONFIG_DIR
from kronos.webui.catalog import HUB_CHOICES, located_context_limit


@pytest.mark.parametrize("model", registry.PUBLISHED, ids=lambda m: m.config)
def test_model_configs_read_the_registry(model: registry.PublishedModel) -> None:
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "model" / f"{model.config}.yaml")
    assert cfg.predictor.published == model.predictor
    assert cfg.tokenizer.published == model.tokenizer
    assert cfg.predictor.published_data_end == model.data_end
    assert model.parameters in (Path(CONFIG_DIR) / "model" / f"{model.config}.yaml").read_text()  # the comment agrees


def test_front_ends_and_evaluate_read_the_registry() -> None:
    assert [(c.name, c.predictor, c.tokenizer, c.context) for c in HUB_CHOICES] == [
        (f"{m.name} (hub)", m.predictor, m.tokenizer, m.context) for m in registry.PUBLISHED]
    for m in registry.PUBLISHED:
        assert context_limit(m.predictor)[0] == m.context
        assert published_data_end(m.predictor) == m.data_end
    assert registry.by_predictor("NeoQuasar/Kronos-mini").tokenizer == "NeoQuasar/Kronos-Tokenizer-2k"
    assert registry.by_predictor("someone/else") is None and published_data_end(None) is None
    assert located_context_limit("someone/else")[0] == registry.LONGEST_CONTEXT == 2048


def test_unknown_names_are_named() -> None:
    with pytest.raises(KeyError, match="tiny"):
        registry.by_config("tiny")
    with pytest.raises(Exception, match="colour"):
        OmegaConf.create({"x": "${published:small,colour}"}).x

"""The stage table (kronos.stages.table) is the one list of stages: every conf/stage option runs stages of
it, every record's runner and settings type exist, and the readers take it from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kronos.stages.table import STAGES, TRAINING_STAGES, _attribute
from kronos.train import CONFIG_DIR
from tests.conftest import REPO_ROOT

STAGE_CONF = Path(CONFIG_DIR) / "stage"


@pytest.mark.parametrize("option", sorted(p.stem for p in STAGE_CONF.glob("*.yaml")))
def test_every_stage_option_runs_stages_of_the_table(option: str) -> None:
    run = list(OmegaConf.load(STAGE_CONF / f"{option}.yaml").stage.run)
    assert run and all(name in STAGES for name in run), run
    if option == "all":
        assert run == list(STAGES), "stage=all runs every stage, in the table's order"
    else:
        assert run == [option]


@pytest.mark.parametrize("name", list(STAGES))
def test_each_record_names_a_runner_and_its_settings(name: str) -> None:
    stage = STAGES[name]
    assert callable(_attribute(stage.runner))
    if stage.settings is not None:
        group, type_name = stage.settings
        assert group == name and callable(_attribute(type_name).from_config)
    assert set(stage.needs) <= set(TRAINING_STAGES)
    assert all(list(STAGES).index(need) < list(STAGES).index(name) for need in stage.needs), \
        "a stage needs only what an earlier stage trains"


def test_no_other_module_spells_the_stage_list() -> None:
    """No tuple/list literal of two or more stage names outside the table (the readers take it from there)."""
    names = set(STAGES)
    offenders = []
    for path in sorted((REPO_ROOT / "kronos").rglob("*.py")):
        if path.name == "table.py" and path.parent.name == "stages":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(values) == len(node.elts) and len(values) >= 2 and set(values) <= names \
                        and not set(values) <= {"tokenizer", "predictor"}:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {values}")
    assert offenders == []

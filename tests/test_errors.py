"""One base class for user errors (kronos.errors.KronosUserError), caught once by every front end."""

from __future__ import annotations

import ast
import importlib

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kronos.errors import ConfigError, KronosUserError
from tests.conftest import REPO_ROOT

USER_ERRORS = [
    ("kronos.data.errors", "DataValidationError"), ("kronos.stages.common", "StageInputError"),
    ("kronos.models.hub", "CheckpointError"), ("kronos.lightning.base", "NonFiniteLossError"),
    ("kronos.experiment", "WeightsNotFoundError"), ("kronos.inference.validation", "ForecastInputError"),
    ("kronos.run_lock", "ExperimentDirError"), ("kronos.atomic", "WriteTargetError"),
    ("kronos.webui.catalog", "OutsideDataDirError"), ("kronos.webui.store", "UnknownItemError"),
]
CONFIG_ERRORS = [("kronos.backtest.settings", "BacktestSettingsError"), ("kronos.evaluate.settings", "EvaluateConfigError"),
                 ("kronos.lightning.finetune", "FinetuneConfigError"), ("kronos.config_checks", "ConfigValueError")]


@pytest.mark.parametrize(("module", "name"), USER_ERRORS)
def test_every_user_error_is_a_kronos_user_error(module: str, name: str) -> None:
    assert issubclass(getattr(importlib.import_module(module), name), KronosUserError)


@pytest.mark.parametrize(("module", "name"), CONFIG_ERRORS)
def test_the_config_errors_are_one_class(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is ConfigError


def test_front_ends_catch_the_base_not_a_list() -> None:
    """kronos.train, kronos-predict, the pipelines and the web UI name KronosUserError in their handlers."""
    for path in ("kronos/train.py", "kronos/cli/predict.py", "data_pipelines/clean_csv.py",
                 "data_pipelines/csv_to_qlib.py", "data_pipelines/download_qlib.py", "kronos/webui/errors.py"):
        assert "KronosUserError" in (REPO_ROOT / path).read_text(), path
    tree = ast.parse((REPO_ROOT / "kronos/train.py").read_text())
    handlers = [ast.unparse(h.type) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and h.type is not None]
    assert "KronosUserError" in handlers and not any("DataValidationError" in h for h in handlers)


def test_the_web_ui_answers_any_user_error_with_400_and_an_unknown_item_with_404() -> None:
    from kronos.webui.errors import install_error_handlers
    from kronos.webui.store import UnknownItemError

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/config")
    def config() -> None:
        raise ConfigError("backtest.topk=0 must be a whole number >= 1: pass e.g. backtest.topk=50")

    @app.get("/item")
    def item() -> None:
        raise UnknownItemError("dataset 'x' is no longer held by the server: load it again")

    client = TestClient(app)
    answer = client.get("/config")
    assert answer.status_code == 400 and answer.json()["detail"].startswith("backtest.topk=0")
    assert client.get("/item").status_code == 404

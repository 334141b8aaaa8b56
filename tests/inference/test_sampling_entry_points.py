"""Every sampling entry point refuses the same bad values with the same message (SamplingSettings.validate).

Entry points: the Python API (KronosPredictor), the CLI (kronos-predict), the web UI's JSON API, and the
backtest and evaluate configs (``backtest.sampling.*``, ``evaluate.sampling.*``). Messages differ only in
how the key is spelled (``--top-p``, ``top_p``, ``backtest.sampling.top_p``) and how the value is echoed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from kronos.backtest.settings import BacktestSettings, BacktestSettingsError
from kronos.cli.predict import main as predict_main
from kronos.evaluate.settings import EvaluateConfigError, EvaluateSettings
from kronos.inference.loading import load_predictor
from kronos.inference.settings import SamplingSettings
from kronos.inference.validation import ForecastInputError

REPO = Path(__file__).resolve().parents[2]
BAD = [("T", 0), ("T", float("nan")), ("top_p", 0), ("top_p", 1.5), ("sample_count", 0), ("seed", -1)]
CLI_FLAG = {"T": "--T", "top_p": "--top-p", "sample_count": "--sample-count", "seed": "--seed"}


def normalised(message: str) -> str:
    """The message with key spellings made plain and echoed values replaced by <value>."""
    text = message.strip().removeprefix("kronos-predict: error: ")
    text = re.sub(r"(backtest|evaluate)\.sampling\.", "", text)
    text = re.sub(r"--([a-z-]+|T)\b", lambda m: m.group(1).replace("-", "_"), text)
    return re.sub(r"got [^;]*", "got <value>", text)


def _candles(rows: int = 60) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=rows, freq="h")
    close = 100 + np.cumsum(np.sin(np.arange(rows) / 3))
    return pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close})


@pytest.fixture(scope="module")
def entry_points(tiny_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """{name: call(key, value) -> the error message}."""
    from fastapi.testclient import TestClient

    from kronos.webui.app import create_app

    tokenizer, predictor_dir = tiny_pair
    root = tmp_path_factory.mktemp("entry")
    frame = _candles()
    csv = root / "series.csv"
    frame.to_csv(csv, index=False)
    outputs = root / "outputs"
    shutil.copytree(tokenizer, outputs / "tiny" / "tokenizer")
    shutil.copytree(predictor_dir, outputs / "tiny" / "predictor")
    (root / "data").mkdir()
    client = TestClient(create_app(outputs, root / "data"), base_url="http://127.0.0.1:7070",
                        raise_server_exceptions=False)
    predictor = load_predictor(str(tokenizer), str(predictor_dir), device="cpu", max_context=64)
    history, x_ts = frame.iloc[:40], frame["timestamps"].iloc[:40]
    y_ts = pd.Series(pd.date_range(x_ts.iloc[-1] + pd.Timedelta(hours=1), periods=4, freq="h"))
    evaluate_yaml = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "evaluate" / "default.yaml"))
    evaluate_yaml |= {"stride": 1, "sampling": {**evaluate_yaml["sampling"], "seed": 0}}

    def python_api(key, value):
        with pytest.raises(ForecastInputError) as err:
            if key == "seed":  # not one of the reference's keywords: given whole
                predictor.predict(history, x_ts, y_ts, 4, verbose=False, sampling=SamplingSettings(seed=value))
            else:
                predictor.predict(history, x_ts, y_ts, 4, verbose=False, **{key: value})
        return str(err.value)

    def cli(key, value):
        import contextlib
        import io

        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            rc = predict_main(["--model", str(predictor_dir), "--tokenizer", str(tokenizer), "--csv", str(csv),
                               "--lookback", "40", "--pred-len", "4", CLI_FLAG[key], str(value)])
        assert rc == 2, stderr.getvalue()
        return stderr.getvalue()

    def web(key, value):
        body = {"predictor": str(outputs / "tiny" / "predictor"), "tokenizer": str(outputs / "tiny" / "tokenizer"),
                "pred_len": 4, "max_context": 64, "sample_count": 2,
                "candles": frame.assign(timestamps=frame["timestamps"].astype(str)).to_dict("records"), key: value}
        # NaN as a browser's JSON.stringify cannot send it but a script's json.dumps does
        response = client.post("/api/forecast/inline", content=json.dumps(body),
                               headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        return response.json()["detail"]

    def backtest(key, value):
        with pytest.raises(BacktestSettingsError) as err:
            BacktestSettings.from_config({"sampling": {key: value}})
        return str(err.value)

    def evaluate(key, value):
        with pytest.raises(EvaluateConfigError) as err:
            EvaluateSettings.from_config(evaluate_yaml | {"sampling": {**evaluate_yaml["sampling"], key: value}})
        return str(err.value)

    return {"python": python_api, "cli": cli, "web": web, "backtest": backtest, "evaluate": evaluate}


@pytest.mark.parametrize(("key", "value"), BAD, ids=[f"{k}={v}" for k, v in BAD])
def test_every_entry_point_refuses_with_the_same_message(entry_points, key: str, value) -> None:
    with pytest.raises(ForecastInputError) as err:
        SamplingSettings(**{key: value}).validate()
    expected = normalised(str(err.value))
    messages = {name: call(key, value) for name, call in entry_points.items()}
    assert {name: normalised(text) for name, text in messages.items()} == {name: expected for name in messages}
    assert messages["backtest"].startswith(f"backtest.sampling.{key} ")
    assert messages["evaluate"].startswith(f"evaluate.sampling.{key} ")


@pytest.mark.parametrize("stage", ["backtest", "evaluate"])
@pytest.mark.parametrize("key", ["T", "top_k", "top_p", "sample_count", "seed"])
def test_old_flat_keys_name_the_new_one(stage: str, key: str) -> None:
    settings, error = ((BacktestSettings, BacktestSettingsError) if stage == "backtest"
                       else (EvaluateSettings, EvaluateConfigError))
    with pytest.raises(error, match=re.escape(f"{stage}.{key} -> {stage}.sampling.{key}")):
        settings.from_config({key: 1})

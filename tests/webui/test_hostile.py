"""Hostile-round regressions on the web UI: bounded work, prompt shutdown, short messages, no NaN in JSON."""

from __future__ import annotations

import asyncio
import io
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.inference.generation import GenerationCancelled
from kronos.webui.jobs import run_cancellable
from tests.webui.test_robustness import _csv, _one_message, _upload, served  # noqa: F401  (fixture)


def _big_upload_client(served: dict):
    from fastapi.testclient import TestClient

    from kronos.webui.app import create_app

    return TestClient(create_app(served["outputs"], served["outputs"].parent / "data", max_upload_bytes=8 * 2**20),
                      base_url="http://127.0.0.1:7070", raise_server_exceptions=False)


def test_too_many_quantile_levels_are_refused_before_any_work(served: dict) -> None:
    """Regression (hostile round): 1,000 quantile levels took 40 s outside the work budget and the slots."""
    candles = pd.read_csv(io.BytesIO(_csv(120))).to_dict("records")
    body = {"predictor": served["predictor"], "tokenizer": served["tokenizer"], "candles": candles, "pred_len": 4,
            "sample_count": 2, "max_context": 64, "quantiles": list(np.linspace(0.001, 0.999, 1000))}
    start = time.monotonic()
    detail = _one_message(served["client"].post("/api/forecast/inline", json=body))
    assert "1,000 quantile levels" in detail and "at most 99" in detail and time.monotonic() - start < 5


def test_quantile_table_is_linear_in_levels() -> None:
    from kronos.inference.frame import forecast_table

    paths = np.random.default_rng(0).random((8, 48, 6))
    start = time.monotonic()
    table = forecast_table(paths, pd.date_range("2024", periods=48, freq="h"), tuple(np.linspace(0.01, 0.99, 99)))
    assert table.shape == (48, 7 + 99 * 6) and time.monotonic() - start < 2


def test_a_very_wide_upload_is_refused_before_parsing(served: dict) -> None:
    """Regression (hostile round): 200k columns were parsed before any check (65 s, 1 GB)."""
    header = ",".join(["timestamps", "open", "high", "low", "close"] + [f"c{i}" for i in range(200_000)])
    content = (header + "\n" + "2024-01-01,1,2,0.5,1" + ",1" * 200_000 + "\n").encode()
    start = time.monotonic()
    response = _upload(_big_upload_client(served), "wide.csv", content)  # the width is refused, not the size
    assert response.status_code in (400, 413) and time.monotonic() - start < 5, response.text
    assert "header" in response.json()["detail"]


def test_a_narrow_header_with_many_columns_is_refused(tmp_path: Path) -> None:
    from kronos.data.csv_source import MAX_CSV_COLUMNS, read_ohlcv_csv
    from kronos.data.errors import DataValidationError

    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(MAX_CSV_COLUMNS + 1)) + "\n")
    with pytest.raises(DataValidationError, match=f"{MAX_CSV_COLUMNS + 1:,} columns"):
        read_ohlcv_csv(path)


def test_a_huge_cell_is_never_echoed(served: dict) -> None:
    """Regression (hostile round): an error message echoed a 15 MB cell back."""
    cell = "x" * 500_000
    content = f"timestamps,open,high,low,close\n2024-01-01,{cell},2,0.5,1\n2024-01-02,1,2,0.5,1\n".encode()
    detail = _one_message(_upload(_big_upload_client(served), "big.csv", content))
    assert "non-numeric text" in detail and len(detail) < 1000 and "500,002 characters" in detail


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_missing_symbol_is_one_4xx(served: dict, blank: str) -> None:
    """Regression (hostile round): a symbol column with a missing value gave a 500 ('Out of range float values
    are not JSON compliant'); the CLI a traceback."""
    rows = ["timestamps,symbol,open,high,low,close"]
    for i in range(40):
        rows.append(f"2024-01-{1 + i % 28:02d} {i // 28:02d}:00,{'A' if i % 2 else 'B'},1,2,0.5,1")
    rows.append(f"2024-02-01,{blank},1,2,0.5,1")
    detail = _one_message(_upload(served["client"], "long.csv", ("\n".join(rows) + "\n").encode()))
    assert "symbol" in detail and "missing" in detail


def test_json_answers_never_hold_nan() -> None:
    """NaN/inf anywhere in an answer becomes null instead of a 500 (the encoder is sanitised)."""
    from fastapi.testclient import TestClient
    from fastapi import FastAPI

    from kronos.webui.errors import SafeJSONResponse

    app = FastAPI(default_response_class=SafeJSONResponse)

    @app.get("/x")
    def x() -> dict[str, object]:
        return {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": np.float64("nan")}}

    response = TestClient(app).get("/x")
    assert response.status_code == 200 and response.json() == {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_shutdown_answers_promptly_even_when_the_work_ignores_cancellation() -> None:
    """Regression (hostile round): SIGTERM during a request ended in a 500 after ~9 s."""
    shutdown = threading.Event()
    release = threading.Event()

    class _Request:
        async def is_disconnected(self) -> bool:
            return False

    async def job(_cancelled) -> str:
        await asyncio.to_thread(release.wait, 30)  # work with no cancellation check (e.g. parsing)
        return "done"

    async def scenario() -> float:
        asyncio.get_running_loop().call_later(0.3, shutdown.set)
        start = time.monotonic()
        with pytest.raises(GenerationCancelled, match="shutting down"):
            await run_cancellable(_Request(), shutdown, job)  # type: ignore[arg-type]
        elapsed = time.monotonic() - start
        release.set()  # let the abandoned worker thread end, so the loop can close
        return elapsed

    try:
        assert asyncio.run(scenario()) < 3
    finally:
        release.set()


def test_listings_show_nothing_that_would_be_refused(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    """Regression (hostile round): symlinks pointing outside were listed, then refused when chosen."""
    import shutil

    from fastapi.testclient import TestClient

    from kronos.webui.app import create_app

    outside, outputs, data = tmp_path / "outside", tmp_path / "outputs", tmp_path / "data"
    (outside / "exp").mkdir(parents=True)
    data.mkdir()
    outputs.mkdir()
    tokenizer, predictor = tiny_pair
    shutil.copytree(tokenizer, outside / "exp" / "tokenizer")
    shutil.copytree(predictor, outside / "exp" / "predictor")
    (outputs / "linked").symlink_to(outside / "exp")
    (outside / "prices.csv").write_bytes(_csv(50))
    (data / "linked.csv").symlink_to(outside / "prices.csv")
    (data / "own.csv").write_bytes(_csv(50))
    client = TestClient(create_app(outputs, data), base_url="http://127.0.0.1:7070")
    assert client.get("/api/data-files").json()["files"] == ["own.csv"]
    assert client.get("/api/models").json()["experiments"] == []
    assert client.post("/api/datasets/file", json={"path": "linked.csv"}).status_code == 400


@pytest.mark.parametrize("route", ["file", "forecast_csv"])
def test_request_values_are_not_echoed_whole(served: dict, route: str) -> None:
    """The same class as the 15 MB cell: a 1 MB path or id in a request comes back cut, not whole."""
    client = served["client"]
    if route == "file":
        response = client.post("/api/datasets/file", json={"path": "../" + "x" * 1_000_000})
    else:
        response = client.get("/api/forecasts/" + "y" * 20_000 + ".csv")
    assert 400 <= response.status_code < 500 and len(response.text) < 1000, response.text[:200]

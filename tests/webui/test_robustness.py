"""Issue 11 on the JSON API: bad input answers 4xx with one message, work budget, local-only guards,
model confinement, downloads with any file name, inline forecasts, /health and trader metrics."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from kronos.webui.app import create_app

BASE_URL = "http://127.0.0.1:7070"


@pytest.fixture()
def served(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> dict:
    """An app whose outputs directory holds the tiny pair as experiment 'tiny' (nothing outside is allowed)."""
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    (outputs / "tiny").mkdir(parents=True)
    data.mkdir()
    tokenizer, predictor = tiny_pair
    shutil.copytree(tokenizer, outputs / "tiny" / "tokenizer")
    shutil.copytree(predictor, outputs / "tiny" / "predictor")
    (outputs / "tiny" / "checkpoints" / "predictor" / "epoch3").mkdir(parents=True)
    shutil.copytree(predictor, outputs / "tiny" / "checkpoints" / "predictor" / "epoch3", dirs_exist_ok=True)
    client = TestClient(create_app(outputs, data, max_upload_bytes=2**20), base_url=BASE_URL,
                        raise_server_exceptions=False)
    return {"client": client, "outputs": outputs, "tiny_pair": tiny_pair,
            "predictor": str(outputs / "tiny" / "predictor"), "tokenizer": str(outputs / "tiny" / "tokenizer")}


def _csv(rows: int = 300, freq: str = "h") -> bytes:
    ts = pd.date_range("2024-01-01", periods=rows, freq=freq)
    close = 100 + np.cumsum(np.sin(np.arange(rows) / 3))
    df = pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close + 0.2,
                       "volume": np.arange(rows, dtype=float) + 10})
    return df.to_csv(index=False).encode()


def _upload(client: TestClient, name: str, content: bytes):
    return client.post("/api/datasets/upload", files={"file": (name, io.BytesIO(content), "text/csv")})


def _request(served: dict, name: str = "series.csv", **extra) -> dict:
    dataset = _upload(served["client"], name, _csv()).json()
    return {"dataset_id": dataset["id"], "predictor": served["predictor"], "tokenizer": served["tokenizer"],
            "lookback": 64, "pred_len": 6, "sample_count": 2, "max_context": 128, **extra}


def _one_message(response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail
    return detail


# ---------------------------------------------------------------- no 5xx on bad input


@pytest.mark.parametrize(("change", "expected"), [
    ({"start": "²"}, "neither a row number nor a date"),
    ({"start": "3000-01-01"}, "after the data's last timestamp"),
    ({"start": "2024-01-02 10:00+02:00"}, "time zone"),
    ({"seed": 2**70}, "seed must be a whole number"),
    ({"seed": 1.1805916207174113e21}, "seed must be a whole number"),
    ({"T": 1e-300}, "T must be between"),
    ({"max_context": 3}, "longer than max_context 3"),
    ({"predictor": "SWAP"}, "swap predictor and tokenizer"),
    ({"predictor": "/tmp/pred\x00ictor"}, "not a checkpoint this server offers"),
    ({"pred_len": 1.5}, "pred_len"),
    ({"band_low": 0.9, "band_high": 0.1}, "band"),
])
def test_bad_forecast_request_is_one_4xx_message(served: dict, change: dict, expected: str) -> None:
    request = _request(served)
    if change.get("predictor") == "SWAP":
        change = {"predictor": served["tokenizer"], "tokenizer": served["predictor"]}
    detail = _one_message(served["client"].post("/api/forecast", json={**request, **change}))
    assert expected in detail


@pytest.mark.parametrize(("content", "expected"), [
    (b"timestamps,open,high,low,close,Close\n2024-01-01,1,2,0.5,1,1\n2024-01-02,1,2,0.5,1,1\n", "'Close'"),
    (b"timestamps,open,high,low,close\n2024-01-01 00:00+00:00,1,2,0.5,1\n2024-01-01 03:00+02:00,1,2,0.5,1\n"
     b"2024-01-01 04:00+01:00,1,2,0.5,1\n", None),  # refused with one message, or converted to UTC
])
def test_bad_csv_is_one_4xx_message(served: dict, content: bytes, expected: str | None) -> None:
    response = _upload(served["client"], "bad.csv", content)
    if expected is None and response.status_code == 200:
        assert response.json()["first"] == "2024-01-01T00:00:00" and response.json()["last"] == "2024-01-01T03:00:00"
        return
    detail = _one_message(response)
    assert "bad.csv" in detail and (expected is None or expected in detail)


def test_schema_errors_are_one_line(served: dict) -> None:
    detail = _one_message(served["client"].post("/api/forecast", json={"predictor": "x"}))
    assert "dataset_id: Field required" in detail and "tokenizer: Field required" in detail


# ---------------------------------------------------------------- work budget and trained context


def test_default_budget_refuses_huge_request_at_once(served: dict) -> None:
    import time

    # The case, with the page's defaults otherwise (max_context 512, lookback 256).
    request = {**_request(served), "lookback": 256, "pred_len": 4096, "sample_count": 256}
    del request["max_context"]
    started = time.perf_counter()
    detail = _one_message(served["client"].post("/api/forecast", json=request))
    assert time.perf_counter() - started < 5  # refused before any model work
    assert "lower pred_len to 512" in detail
    # A horizon that fits the window but too much work: the budget says what to lower.
    detail = _one_message(served["client"].post("/api/forecast", json={**request, "pred_len": 2048,
                                                                       "max_context": 2048}))
    assert "exceeds the budget of 1,048,576" in detail and "lower sample_count to" in detail
    assert time.perf_counter() - started < 10


def test_max_context_above_the_trained_window_is_refused(served: dict) -> None:
    info = {"config": {"data": {"lookback": 90, "horizon": 10}, "model": {"predictor": {"pretrained": None}}}}
    (Path(served["predictor"]) / "training_info.json").write_text(json.dumps(info))
    detail = _one_message(served["client"].post("/api/forecast", json=_request(served, max_context=128)))
    assert "lower max_context to 100" in detail and "training_info.json" in detail
    models = served["client"].get("/api/models").json()
    assert models["experiments"][0]["context"] == 100  # the page fills max_context from this
    ok = served["client"].post("/api/forecast", json=_request(served, max_context=100, lookback=150))
    assert ok.status_code == 200, ok.text
    window = ok.json()["window"]
    assert window["truncated"] and window["used_rows"] == 100 and window["lookback"] == 150


# ---------------------------------------------------------------- local-only guards


def test_host_header_must_be_the_served_address(served: dict) -> None:
    client = served["client"]
    assert client.get("/health").status_code == 200
    for host in ("evil.example", "evil.example:7070", "127.0.0.1.evil.example"):
        response = client.get("/api/models", headers={"Host": host})
        assert response.status_code == 421 and "local-only" in response.json()["detail"]
    assert client.get("/health", headers={"Host": "localhost:7070"}).status_code == 200


def test_cross_origin_writes_are_refused(served: dict) -> None:
    client = served["client"]
    files = {"file": ("a.csv", io.BytesIO(_csv(20)), "text/csv")}
    refused = client.post("/api/datasets/upload", files=files, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403 and "cross-origin" in refused.json()["detail"]
    files = {"file": ("a.csv", io.BytesIO(_csv(20)), "text/csv")}
    assert client.post("/api/datasets/upload", files=files, headers={"Origin": "null"}).status_code == 403
    files = {"file": ("a.csv", io.BytesIO(_csv(20)), "text/csv")}
    same = client.post("/api/datasets/upload", files=files, headers={"Origin": BASE_URL})
    assert same.status_code == 200


def test_oversized_json_body_is_refused_before_reading(served: dict) -> None:
    big = {"predictor": "p", "tokenizer": "t", "candles": [{"timestamps": "2024-01-01", "open": 1.0}] * 60_000}
    response = served["client"].post("/api/forecast/inline", json=big)  # ~2.3 MB > 1 MB + framing
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_security_headers_on_every_answer(served: dict) -> None:
    for path in ("/", "/api/models", "/static/app.js", "/api/forecasts/nope.csv"):
        headers = served["client"].get(path).headers
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_models_are_confined_and_there_is_no_existence_oracle(served: dict, tmp_path: Path) -> None:
    client = served["client"]
    tokenizer, predictor = served["tiny_pair"]  # real checkpoints, but outside the outputs directory
    request = _request(served)
    outside = _one_message(client.post("/api/forecast", json={**request, "predictor": str(predictor)}))
    missing = _one_message(client.post("/api/forecast", json={**request, "predictor": str(tmp_path / "nothing")}))
    escape = _one_message(client.post("/api/forecast", json={**request, "predictor": "../../" + predictor.name}))
    for detail, value in ((outside, str(predictor)), (missing, str(tmp_path / "nothing"))):
        assert detail.replace(value, "<v>") == missing.replace(str(tmp_path / "nothing"), "<v>")
    assert "not a checkpoint this server offers" in escape
    link = served["outputs"] / "link"
    link.symlink_to(predictor)  # a symlink out of the outputs directory is outside too
    assert "not a checkpoint" in _one_message(client.post("/api/forecast", json={**request, "predictor": str(link)}))


def _offline_hub_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> Path:
    """Make ``cache`` the (offline) Hugging Face cache for this test; returns it."""
    import huggingface_hub.constants

    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_snapshot(cache: Path, repo_id: str, checkpoint: Path) -> None:
    """Place ``checkpoint`` in the cache's layout for ``repo_id`` (models--o--n/refs/main, snapshots/<commit>/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoint, repo / "snapshots" / commit)


def test_hub_shaped_values_are_no_working_directory_oracle(served: dict, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``owner/name`` values outside the roots: existing, forbidden and missing directories answer alike."""
    client = served["client"]
    tokenizer, predictor = served["tiny_pair"]
    _offline_hub_cache(monkeypatch, tmp_path / "hf_cache")
    cwd = tmp_path / "server_cwd"
    # Real checkpoints relative to the server's working directory: one with a training record that would
    # shorten the allowed context (max_context 128 > 10), and a tokenizer that would trip the swap check.
    shutil.copytree(predictor, cwd / "there" / "pred")
    (cwd / "there" / "pred" / "training_info.json").write_text(
        json.dumps({"config": {"data": {"lookback": 8, "horizon": 2}}}))
    shutil.copytree(tokenizer, cwd / "there" / "tok")
    (served["outputs"] / "link").mkdir()
    (served["outputs"] / "link" / "pred").symlink_to(predictor)  # inside the outputs, leading out of them
    monkeypatch.chdir(cwd)
    request = _request(served)
    for field in ("predictor", "tokenizer"):
        answers = {}
        for value in ("there/pred", "there/tok", "link/pred", "nowhere/pred"):
            response = client.post("/api/forecast", json={**request, field: value})
            answers[value] = (response.status_code, _one_message(response).replace(value, "<v>"))
        assert len(set(answers.values())) == 1, answers
        status, detail = answers["nowhere/pred"]
        assert status == 400 and f"could not fetch {field} checkpoint '<v>' from the Hugging Face Hub" in detail
        assert str(cwd) not in detail
    # Dot names are hub-shaped too: whether 'there' exists in the working directory stays hidden.
    answers = {v: _one_message(client.post("/api/forecast", json={**request, "predictor": v})).replace(v, "<v>")
               for v in ("there/..", "nowhere/..")}
    assert len(set(answers.values())) == 1 and "is not a valid Hugging Face hub id" in answers["there/.."], answers


def test_cached_hub_id_loads_strictly_from_the_hub(served: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer, predictor = served["tiny_pair"]
    cache = _offline_hub_cache(monkeypatch, tmp_path / "hf_cache")
    _cache_snapshot(cache, "kronos-test/pred", predictor)
    _cache_snapshot(cache, "kronos-test/tok", tokenizer)
    # Same-named directories in the working directory hold the wrong kinds: they are never read.
    shutil.copytree(tokenizer, tmp_path / "cwd" / "kronos-test" / "pred")
    shutil.copytree(predictor, tmp_path / "cwd" / "kronos-test" / "tok")
    monkeypatch.chdir(tmp_path / "cwd")
    response = served["client"].post("/api/forecast", json=_request(served, predictor="kronos-test/pred",
                                                                    tokenizer="kronos-test/tok"))
    assert response.status_code == 200, response.text
    assert len(response.json()["forecast"]["close"]) == 6


def test_checkpoint_directory_inside_outputs_stays_valid(served: dict) -> None:
    request = _request(served, predictor=str(served["outputs"] / "tiny" / "checkpoints" / "predictor" / "epoch3"))
    assert served["client"].post("/api/forecast", json=request).status_code == 200
    relative = _request(served, predictor="tiny/predictor", tokenizer="tiny/tokenizer")  # relative to outputs
    assert served["client"].post("/api/forecast", json=relative).status_code == 200


def test_models_dir_adds_a_place(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    (tmp_path / "o").mkdir()
    client = TestClient(create_app(tmp_path / "o", tmp_path / "d", models_dir=predictor.parent), base_url=BASE_URL)
    dataset = _upload(client, "s.csv", _csv(100)).json()
    response = client.post("/api/forecast", json={"dataset_id": dataset["id"], "predictor": str(predictor),
                                                  "tokenizer": str(tokenizer), "lookback": 40, "pred_len": 3,
                                                  "sample_count": 1})
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- downloads, inline API, health


def test_csv_download_works_for_any_file_name(served: dict) -> None:
    client = served["client"]
    for name in ("沪深300 日线.csv", "semi;colon name.csv", "plain.csv"):
        body = client.post("/api/forecast", json=_request(served, name=name)).json()
        response = client.get(body["csv_url"])
        assert response.status_code == 200
        disposition = response.headers["content-disposition"]
        disposition.encode("latin-1")  # a header value HTTP can carry
        assert "filename*=UTF-8''" in disposition
        exact = unquote(disposition.split("filename*=UTF-8''")[1])
        assert exact == name.removesuffix(".csv") + "_forecast.csv"
        fallback = disposition.split('filename="')[1].split('"')[0]
        assert fallback.isascii() and fallback.endswith(".csv") and ";" not in fallback


def test_inline_forecast_takes_candles_and_returns_columns(served: dict) -> None:
    frame = pd.read_csv(io.BytesIO(_csv(120)))
    candles = json.loads(frame.to_json(orient="records"))
    response = served["client"].post("/api/forecast/inline", json={
        "predictor": served["predictor"], "tokenizer": served["tokenizer"], "candles": candles,
        "pred_len": 5, "sample_count": 3, "seed": 3, "quantiles": [0.1, 0.9], "max_context": 64})
    assert response.status_code == 200, response.text
    body = response.json()
    forecast = body["forecast"]
    assert len(forecast["timestamps"]) == 5 and {"close", "close_q10", "close_q90"} <= set(forecast)
    assert forecast["timestamps"][0] == (pd.Timestamp(frame["timestamps"].iloc[-1]) + pd.Timedelta("1h")).isoformat()
    assert body["window"]["truncated"] and body["window"]["used_rows"] == 64
    assert body["future_timestamps"] in ("sessions", "approximate")
    assert served["client"].get(body["csv_url"]).status_code == 200
    bad = served["client"].post("/api/forecast/inline", json={
        "predictor": served["predictor"], "tokenizer": served["tokenizer"],
        "candles": [{"timestamps": "2024-01-01", "open": 1, "high": 2, "low": 0.5}]})
    assert "close" in _one_message(bad)


def test_health_answers(served: dict) -> None:
    body = served["client"].get("/health").json()
    assert body == {"status": "ok", "forecasts_running": 0, "forecasts_waiting": 0}


# ---------------------------------------------------------------- what a trader sees


def test_forecast_payload_has_fan_median_consistent_candles_and_scores(served: dict) -> None:
    client = served["client"]
    body = client.post("/api/forecast", json=_request(served, sample_count=5, start="100")).json()
    forecast, median = body["forecast"], body["median"]
    for series in (forecast, median):
        o, h, low, c = (np.array(series[k]) for k in ("open", "high", "low", "close"))
        assert np.all(h >= np.maximum(o, c)) and np.all(np.minimum(o, c) >= low)
    assert body["paths"]["shown"] == 5 and len(body["paths"]["close"]) == 5
    fan = np.array(body["fan"]["close"])
    assert fan.shape == (5, 6) and np.all(np.diff(fan, axis=0) >= 0)
    metrics = body["metrics"]
    assert metrics["direction_reference"] == 0.5 and metrics["point"] == "median of the sample paths"
    assert metrics["naive"]["direction_accuracy"] is None  # no direction: n/a, not 0 %
    assert metrics["naive"]["crps_close"] == pytest.approx(metrics["naive"]["mae_close"])
    assert metrics["model"]["crps_close"] >= 0 and 0 <= metrics["band"]["coverage"] <= 1
    assert metrics["band"]["nominal"] == pytest.approx(0.8)
    assert metrics["beats"]["mae"] == (metrics["model"]["mae_close"] < metrics["naive"]["mae_close"])
    table = pd.read_csv(io.StringIO(client.get(body["csv_url"]).text))
    np.testing.assert_allclose(table["open"], median["open"], rtol=1e-6)  # the CSV: the point forecast (median)
    assert body["window"]["future_timestamps"] == "known"


def test_slots_cap_concurrency_keep_arrival_order_and_cancel_waiters() -> None:
    import asyncio

    from kronos.inference.generation import GenerationCancelled
    from kronos.webui.jobs import ForecastSlots

    async def scenario() -> tuple[list[str], int, int]:
        slots = ForecastSlots(1)
        order: list[str] = []
        peak = 0
        gone = {"b": False}

        async def job(name: str, hold_s: float) -> None:
            nonlocal peak
            try:
                async with slots.hold(lambda: gone.get(name, False)):
                    peak = max(peak, slots.running)
                    order.append(name)
                    await asyncio.sleep(hold_s)
            except GenerationCancelled:
                order.append(f"{name} cancelled")

        first = asyncio.ensure_future(job("a", 0.4))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(job(n, 0.01)) for n in ("b", "c", "d")]
        await asyncio.sleep(0.15)
        seen_waiting = slots.waiting
        gone["b"] = True  # b's client leaves while it waits: it must not hold up c and d
        await asyncio.gather(first, *waiting)
        return order, peak, seen_waiting

    order, peak, seen_waiting = asyncio.run(scenario())
    assert peak == 1 and seen_waiting == 3
    assert order == ["a", "b cancelled", "c", "d"]


def test_names_too_long_for_the_file_system_are_4xx(served: dict) -> None:
    client = served["client"]
    long_name = "a" * 300 + ".csv"  # one path component over the usual 255-byte limit
    assert "pick one from the list" in _one_message(client.post("/api/datasets/file", json={"path": long_name}))
    request = _request(served)
    for value in (str(served["outputs"] / ("b" * 300)), "c" * 300 + "/" + "d" * 300):
        detail = _one_message(client.post("/api/forecast", json={**request, "predictor": value}))
        assert "not a checkpoint this server offers" in detail


ODD_VALUES = [None, "", "abc", "\x00", "²", -1, 0, 1, 2, 1e308, -1e308, 1e-300, 2**70, -(2**70), 0.5, True, [], {},
              [1], "1e3", "NaN", "Infinity", "2024-01-03", "   ", "0x10"]
FORECAST_FIELDS = ["dataset_id", "predictor", "tokenizer", "symbol", "start", "lookback", "pred_len", "T", "top_k",
                   "top_p", "sample_count", "seed", "max_context", "band_low", "band_high"]


def test_no_5xx_for_any_odd_value_of_any_field(served: dict) -> None:
    """Every forecast field and the data-file path take each odd value: an answer, or one 4xx message."""
    client = served["client"]
    request = {**_request(served), "lookback": 32, "pred_len": 3, "sample_count": 1, "max_context": 64}
    answered = 0
    for field in FORECAST_FIELDS:
        for value in ODD_VALUES:
            response = client.post("/api/forecast", json={**request, field: value})
            if response.status_code != 200:
                _one_message(response)
            answered += 1
    for raw in (b"", b"{", b"[]", b"null", b'{"dataset_id": 1}', b"\xff\xfe"):
        _one_message(client.post("/api/forecast", content=raw, headers={"Content-Type": "application/json"}))
    for value in ODD_VALUES:
        response = client.post("/api/datasets/file", json={"path": value})
        assert response.status_code < 500, (value, response.text)
    assert answered == len(FORECAST_FIELDS) * len(ODD_VALUES)


def test_long_file_with_a_suspended_symbol_keeps_the_others_usable(served: dict) -> None:
    """Regression: one NaN row of any symbol refused the whole long file (2 of the 6 shared data files
    could not be opened); now the intact symbols forecast and the incomplete one is one 4xx when chosen."""
    ts = pd.date_range("2024-01-01", periods=120, freq="D")
    close = 100 + np.cumsum(np.sin(np.arange(120) / 3))
    parts = [pd.DataFrame({"date": ts, "symbol": s, "open": close, "high": close + 1, "low": close - 1,
                           "close": close, "volume": 1000.0}) for s in ("AAA", "BBB")]
    parts[1].loc[[5, 9], "volume"] = np.nan
    content = pd.concat(parts).sort_values(["date", "symbol"]).to_csv(index=False).encode()
    client = served["client"]
    summary = client.post("/api/datasets/upload", files={"file": ("long.csv", io.BytesIO(content), "text/csv")})
    assert summary.status_code == 200, summary.text
    assert summary.json()["symbols"] == ["AAA", "BBB"] and summary.json()["incomplete_symbols"] == {"BBB": 2}
    body = {"dataset_id": summary.json()["id"], "predictor": served["predictor"], "tokenizer": served["tokenizer"],
            "lookback": 64, "pred_len": 4, "sample_count": 1, "top_k": 1, "max_context": 128}
    ok = client.post("/api/forecast", json={**body, "symbol": "AAA"})
    assert ok.status_code == 200, ok.text
    detail = _one_message(client.post("/api/forecast", json={**body, "symbol": "BBB"}))
    assert "symbol 'BBB' has 2 row(s) with a missing value (NaN)" in detail
    # a one-series file with a NaN is still refused when it is read
    one = parts[1].drop(columns="symbol").to_csv(index=False).encode()
    assert "missing value (NaN)" in _one_message(_upload(client, "one.csv", one))

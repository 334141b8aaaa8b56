"""Web UI server: binding, catalog, upload/path validation and a forecast through the JSON API."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import kronos.webui.__main__ as webui_main
from kronos.webui.app import create_app
from tests.webui.live_server import running_server

BASE_URL = "http://127.0.0.1:7070"  # the Host header the local-only guard accepts


def _write_series(path: Path, rows: int = 40) -> pd.DataFrame:
    """A small valid hourly OHLCV CSV at ``path``."""
    ts = pd.date_range("2024-01-01", periods=rows, freq="h")
    close = 100 + np.cumsum(np.sin(np.arange(rows)))
    df = pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                       "volume": np.arange(rows, dtype=float) + 10})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    outputs.mkdir()
    data.mkdir()
    return outputs, data


@pytest.fixture()
def client(dirs: tuple[Path, Path]) -> TestClient:
    return TestClient(create_app(*dirs, max_upload_bytes=4096), base_url=BASE_URL)


def _upload(client: TestClient, name: str, content: bytes):
    return client.post("/api/datasets/upload", files={"file": (name, io.BytesIO(content), "text/csv")})


def test_main_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    monkeypatch.setattr(webui_main._Server, "run", lambda self: seen.update(host=self.config.host, port=self.config.port))
    webui_main.main([])
    assert seen["host"] == "127.0.0.1"
    assert seen["port"] == 7070


def test_non_loopback_host_warns_and_accepts_only_named_hosts(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    seen = {}
    monkeypatch.setattr(webui_main._Server, "run", lambda self: seen.update(app=self.config.app))
    webui_main.main(["--host", "0.0.0.0", "--allowed-host", "box.lan"])
    assert "no authentication" in capsys.readouterr().err
    client = TestClient(seen["app"])
    assert client.get("/health", headers={"Host": "box.lan:7070"}).status_code == 200
    assert client.get("/health", headers={"Host": "127.0.0.1:7070"}).status_code == 200
    assert client.get("/health", headers={"Host": "rebound.example:7070"}).status_code == 421
    webui_main.main([])
    assert "no authentication" not in capsys.readouterr().err


def test_bad_device_is_one_line_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        webui_main.main(["--device", "tpu"])
    assert exit_info.value.code == 2 and "device 'tpu'" in capsys.readouterr().err


def test_running_server_listens_on_loopback_only(dirs: tuple[Path, Path]) -> None:
    proc_tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not proc_tables[0].exists():
        pytest.skip("needs /proc/net/tcp to list listening sockets")
    with running_server(*dirs) as (_, port):
        listening = []
        for table in proc_tables:
            if not table.exists():
                continue
            for line in table.read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                    listening.append(addr)
    assert listening == ["0100007F"], f"sockets listening on port {port}: {listening} (0100007F is 127.0.0.1)"


def test_page_and_local_plotly_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/vendor/plotly.min.js" in page.text
    assert "cdn" not in page.text.lower()
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and "plotly" in js.text[:2000].lower()
    assert client.get("/static/app.js").status_code == 200


def test_model_listing_finds_outputs_experiment(dirs: tuple[Path, Path], client: TestClient) -> None:
    outputs, _ = dirs
    for part in ("tokenizer", "predictor"):
        (outputs / "exp_a" / part).mkdir(parents=True)
        (outputs / "exp_a" / part / "config.json").write_text("{}")
    (outputs / "half_done" / "tokenizer").mkdir(parents=True)
    (outputs / "half_done" / "tokenizer" / "config.json").write_text("{}")
    body = client.get("/api/models").json()
    assert [e["name"] for e in body["experiments"]] == ["exp_a"]
    assert body["experiments"][0]["predictor"] == str((outputs / "exp_a" / "predictor").resolve())
    assert any(h["predictor"] == "NeoQuasar/Kronos-small" and h["tokenizer"] == "NeoQuasar/Kronos-Tokenizer-base"
               for h in body["hub"])


def test_data_files_are_listed_and_opened(dirs: tuple[Path, Path], client: TestClient) -> None:
    _, data = dirs
    _write_series(data / "crypto" / "btc.csv", rows=30)
    assert client.get("/api/data-files").json()["files"] == ["crypto/btc.csv"]
    opened = client.post("/api/datasets/file", json={"path": "crypto/btc.csv"})
    assert opened.status_code == 200, opened.text
    assert opened.json()["rows"] == 30


@pytest.mark.parametrize("path", ["../secret.csv", "crypto/../../secret.csv", "/etc/passwd"])
def test_data_path_outside_data_dir_is_refused(dirs: tuple[Path, Path], client: TestClient, path: str) -> None:
    outputs, data = dirs
    _write_series(data.parent / "secret.csv")
    response = client.post("/api/datasets/file", json={"path": path})
    assert response.status_code == 400
    assert "outside the data directory" in response.json()["detail"]


def test_missing_data_file_is_404(client: TestClient) -> None:
    response = client.post("/api/datasets/file", json={"path": "nope.csv"})
    assert response.status_code == 404
    assert "nope.csv" in response.json()["detail"]


def test_oversized_upload_is_413(client: TestClient) -> None:
    big = b"timestamps,open,high,low,close\n" + b"2024-01-01 00:00:00,1,1,1,1\n" * 400  # ~11 KB > 4 KB limit
    response = _upload(client, "big.csv", big)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_malformed_upload_gets_validation_message(client: TestClient) -> None:
    no_close = b"timestamps,open,high,low\n2024-01-01,1,2,0.5\n"
    response = _upload(client, "no_close.csv", no_close)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "no_close.csv" in detail and "close" in detail

    text_price = b"timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,abc\n"
    detail = _upload(client, "text.csv", text_price).json()["detail"]
    assert "'close'" in detail and "row 1" in detail


def test_unknown_dataset_is_404(client: TestClient) -> None:
    response = client.post("/api/forecast", json={"dataset_id": "missing", "predictor": "p", "tokenizer": "t"})
    assert response.status_code == 404
    assert "load it again" in response.json()["detail"]


def _fixture_upload(client: TestClient, fixtures_dir: Path, rows: int) -> dict:
    content = "".join((fixtures_dir / "input.csv").read_text().splitlines(keepends=True)[: rows + 1]).encode()
    response = _upload(client, "input.csv", content)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture()
def fixture_client(dirs: tuple[Path, Path], fixtures_dir: Path) -> TestClient:
    return TestClient(create_app(*dirs, models_dir=fixtures_dir), base_url=BASE_URL)


def test_forecast_scores_against_actual_and_downloads_csv(fixture_client: TestClient, fixtures_dir: Path) -> None:
    client = fixture_client
    dataset = _fixture_upload(client, fixtures_dir, rows=300)
    request = {"dataset_id": dataset["id"], "predictor": str(fixtures_dir / "predictor"),
               "tokenizer": str(fixtures_dir / "tokenizer"), "lookback": 120, "pred_len": 12,
               "sample_count": 4, "max_context": 256, "start": "100"}
    response = client.post("/api/forecast", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    source = pd.read_csv(fixtures_dir / "input.csv", nrows=300, parse_dates=["timestamps"])
    actual = source.iloc[220:232]
    assert body["forecast"]["timestamps"] == [t.isoformat() for t in actual["timestamps"]]
    assert body["history"]["timestamps"][0] == source["timestamps"].iloc[100].isoformat()
    lower, upper = np.array(body["band"]["lower"]), np.array(body["band"]["upper"])
    assert lower.shape == (12,) and np.all(lower <= upper)
    last_close = source["close"].iloc[219]
    naive_mae = np.mean(np.abs(actual["close"].to_numpy() - last_close))
    # the point forecast is the median of the sample paths (the page's "median" series), not their mean
    model_mae = np.mean(np.abs(np.array(body["median"]["close"]) - actual["close"].to_numpy()))
    assert body["metrics"]["rows"] == 12
    assert body["metrics"]["naive"]["mae_close"] == pytest.approx(naive_mae)
    assert body["metrics"]["model"]["mae_close"] == pytest.approx(model_mae)
    # every candle of the 4 paths x 12 steps looked at; what the repair changed is in the JSON
    repairs = body["candle_repairs"]
    assert repairs["candles"] == 48 and set(repairs["share"]) == {"nonpositive_price", "negative_volume",
                                                                  "negative_amount", "wick"}

    csv = client.get(body["csv_url"])
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    table = pd.read_csv(io.StringIO(csv.text))
    assert len(table) == 12
    assert {"close_q10", "close_q50", "close_q90"} <= set(table.columns)
    assert np.all(table["close_q10"] <= table["close_q90"])
    # the CSV holds the point forecast (the median of the paths, as kronos-predict writes it): the "median" candles
    np.testing.assert_allclose(table["close"], body["median"]["close"], rtol=1e-6)
    np.testing.assert_allclose(table["close"], table["close_q50"], rtol=1e-6)

    # The same model again: served from the cache, not loaded twice; a seed makes the draw repeatable.
    seeded = [client.post("/api/forecast", json={**request, "start": "150", "seed": 7}).json() for _ in range(2)]
    assert seeded[0]["forecast"] == seeded[1]["forecast"]
    assert len(client.get("/api/models").json()["loaded"]) == 1


def test_forecast_past_the_data_infers_timestamps(fixture_client: TestClient, fixtures_dir: Path) -> None:
    client = fixture_client
    dataset = _fixture_upload(client, fixtures_dir, rows=200)
    body = client.post("/api/forecast", json={
        "dataset_id": dataset["id"], "predictor": str(fixtures_dir / "predictor"),
        "tokenizer": str(fixtures_dir / "tokenizer"), "lookback": 100, "pred_len": 6, "sample_count": 1,
        "start": "100", "max_context": 256}).json()
    assert body["actual"] is None and body["metrics"] is None
    stamps = pd.to_datetime(body["forecast"]["timestamps"])
    history = pd.to_datetime(body["history"]["timestamps"])
    step = pd.Series(history).diff().median()
    assert list(stamps) == [history[-1] + step * (k + 1) for k in range(6)]


def test_bad_window_and_missing_checkpoint_are_400(fixture_client: TestClient, fixtures_dir: Path, tmp_path: Path) -> None:
    client = fixture_client
    dataset = _fixture_upload(client, fixtures_dir, rows=50)
    base = {"dataset_id": dataset["id"], "predictor": str(fixtures_dir / "predictor"),
            "tokenizer": str(fixtures_dir / "tokenizer")}
    too_long = client.post("/api/forecast", json={**base, "lookback": 100, "start": "0"})
    assert too_long.status_code == 400 and "50 rows" in too_long.json()["detail"]
    missing = client.post("/api/forecast", json={**base, "lookback": 20, "predictor": str(tmp_path / "nowhere")})
    assert missing.status_code == 400 and "nowhere" in missing.json()["detail"]


def test_hub_choice_offline_shows_checkpoint_error(fixture_client: TestClient, fixtures_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network here
    dataset = _fixture_upload(fixture_client, fixtures_dir, rows=60)
    response = fixture_client.post("/api/forecast", json={
        "dataset_id": dataset["id"], "predictor": "NeoQuasar/Kronos-small",
        "tokenizer": "NeoQuasar/Kronos-Tokenizer-base", "lookback": 40, "pred_len": 4})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "NeoQuasar/Kronos-Tokenizer-base" in detail and "local directory" in detail


def test_long_file_lists_symbols_and_asks_for_one(client: TestClient) -> None:
    rows = "".join(f"2024-01-0{d},{sym},1,2,0.5,1.5\n" for sym in ("AAA", "BBB") for d in range(1, 4))
    summary = _upload(client, "long.csv", ("timestamps,symbol,open,high,low,close\n" + rows).encode()).json()
    assert summary["symbols"] == ["AAA", "BBB"]
    response = client.post("/api/forecast", json={"dataset_id": summary["id"], "predictor": "p", "tokenizer": "t",
                                                  "lookback": 2, "pred_len": 1})
    assert response.status_code == 400 and "AAA, BBB" in response.json()["detail"]

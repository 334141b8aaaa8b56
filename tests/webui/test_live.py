"""The real server process (uvicorn) under cancel, SIGTERM and a bounded load (loopback only).

A "long" forecast here is the tiny pair at pred_len 600 x 256 samples (minutes of CPU): it never
finishes inside these tests, so every pass below shows that something stopped it.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.webui.live_server import running_server, running_server_process

LONG = {"lookback": 400, "pred_len": 600, "sample_count": 256, "max_context": 1024}


def _csv(rows: int = 1200) -> bytes:
    ts = pd.date_range("2024-01-01", periods=rows, freq="h")
    close = 100 + np.cumsum(np.sin(np.arange(rows) / 5))
    return pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": np.full(rows, 50.0)}).to_csv(index=False).encode()


def _post(base: str, path: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _health(base: str) -> tuple[dict, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(base + "/health", timeout=5) as response:
        body = json.loads(response.read())
    return body, time.perf_counter() - started


def _upload(base: str) -> str:
    boundary = "kronosboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + _csv() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base + "/api/datasets/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["id"]


def _abandon(port: int, body: dict, after_s: float) -> None:
    """Send a forecast request and hang up after ``after_s`` seconds without reading the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=after_s)
    conn.request("POST", "/api/forecast", body=json.dumps(body), headers={"Content-Type": "application/json"})
    try:
        conn.getresponse()
    except (TimeoutError, OSError):
        pass
    finally:
        conn.close()


def _wait_until(predicate, timeout_s: float, what: str) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.1)
    return time.perf_counter() - started


@pytest.fixture()
def server(tmp_path: Path, tiny_pair: tuple[Path, Path]):
    tokenizer, predictor = tiny_pair
    (tmp_path / "outputs").mkdir()
    (tmp_path / "data").mkdir()
    args = ("--models-dir", str(predictor.parent), "--work-budget", "0", "--max-concurrent", "2", "--device", "cpu")
    with running_server(tmp_path / "outputs", tmp_path / "data", args) as (base, port):
        dataset = _upload(base)
        model = {"dataset_id": dataset, "predictor": str(predictor), "tokenizer": str(tokenizer)}
        yield base, port, model


def test_abandoned_forecast_stops_and_does_not_block_the_same_model(server) -> None:
    base, port, model = server
    client = threading.Thread(target=_abandon, args=(port, {**model, **LONG}, 2.0))
    client.start()
    _wait_until(lambda: _health(base)[0]["forecasts_running"] == 1, 30, "the long forecast starting")
    client.join()
    stopped = _wait_until(lambda: _health(base)[0]["forecasts_running"] == 0, 10, "the abandoned forecast stopping")
    assert stopped < 10
    print(f"abandoned forecast stopped {stopped:.2f} s after its client hung up")
    status, body = _post(base, "/api/forecast", {**model, "lookback": 64, "pred_len": 4, "sample_count": 1}, timeout=30)
    assert status == 200 and len(body["forecast"]["close"]) == 4


def test_first_sigterm_stops_the_server_during_a_forecast(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    (tmp_path / "outputs").mkdir()
    (tmp_path / "data").mkdir()
    args = ("--models-dir", str(predictor.parent), "--work-budget", "0", "--device", "cpu")
    with running_server_process(tmp_path / "outputs", tmp_path / "data", args) as (base, port, proc):
        model = {"dataset_id": _upload(base), "predictor": str(predictor), "tokenizer": str(tokenizer)}
        answer: dict = {}
        waiter = threading.Thread(target=lambda: answer.update(zip(("status", "body"),
                                                                   _post(base, "/api/forecast", {**model, **LONG}))))
        waiter.start()
        _wait_until(lambda: _health(base)[0]["forecasts_running"] == 1, 30, "the long forecast starting")
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)  # one signal, to our own server process only
        proc.wait(timeout=15)
        took = time.perf_counter() - started
        assert took < 15
        print(f"server exited {took:.2f} s after one SIGTERM during a forecast")
        waiter.join(timeout=15)
        assert answer.get("status") == 503 and "cancelled" in answer["body"]["detail"]


def test_bounded_load_twenty_mixed_forecasts_one_abandoned(server) -> None:
    """~20 concurrent forecasts of mixed sizes, one abandoned mid-way: all others answer, /health stays fast."""
    base, port, model = server
    sizes = [(4, 1), (8, 2), (12, 4), (24, 2), (6, 8)] * 4  # (pred_len, sample_count): 20 requests
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    same_request: dict[int, list] = {}

    def one(i: int, pred_len: int, samples: int) -> None:
        # Requests i and i + 5 are identical (seeded): run concurrently, they must still agree.
        status, body = _post(base, "/api/forecast", {**model, "lookback": 96 + 8 * (i % 5), "pred_len": pred_len,
                                                     "sample_count": samples, "seed": i % 5}, timeout=120)
        with lock:
            results.append((status, len(body.get("forecast", {}).get("close", [])) if status == 200 else -1))
            if status == 200:
                same_request.setdefault(i % 5, []).append(body["forecast"]["close"])

    started = time.perf_counter()
    # The long one starts first and holds a slot; it is abandoned while the 20 others run.
    abandoned = threading.Thread(target=_abandon, args=(port, {**model, **LONG}, 3.0))
    abandoned.start()
    _wait_until(lambda: _health(base)[0]["forecasts_running"] == 1, 30, "the long forecast starting")
    threads = [abandoned] + [threading.Thread(target=one, args=(i, h, s)) for i, (h, s) in enumerate(sizes)]
    for t in threads[1:]:
        t.start()
    health_latency = []
    while any(t.is_alive() for t in threads) and time.perf_counter() - started < 150:
        health_latency.append(_health(base)[1])
        time.sleep(0.25)
    for t in threads:
        t.join(timeout=1)
    assert not any(t.is_alive() for t in threads), "the load did not finish within 150 s"
    assert len(results) == 20 and all(status == 200 for status, _ in results), results
    assert sorted(n for _, n in results) == sorted(h for h, _ in sizes)
    for key, forecasts in same_request.items():
        assert all(f == forecasts[0] for f in forecasts), f"identical seeded requests {key} differ under load"
    assert max(health_latency) < 1.0, f"/health took up to {max(health_latency):.2f} s under load"
    _wait_until(lambda: _health(base)[0] == {"status": "ok", "forecasts_running": 0, "forecasts_waiting": 0},
                10, "the server going idle")
    print(f"load: 20 forecasts + 1 abandoned in {time.perf_counter() - started:.1f} s; "
          f"/health median {np.median(health_latency) * 1000:.0f} ms, max {max(health_latency) * 1000:.0f} ms")


def _chunked_post(port: int, path: str, content_type: str, chunks: list[bytes], end: bool) -> tuple[int, dict]:
    """POST ``chunks`` with Transfer-Encoding: chunked (no Content-Length) over a raw socket and read the answer.

    ``end``: send the terminating chunk; without it the body never ends, so an answer proves the server
    did not wait for (buffer) the whole body.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode())
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        if end:
            sock.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()  # raises TimeoutError if the server waits for the rest of the body
        return response.status, json.loads(response.read())


def test_chunked_body_over_the_cap_is_refused_while_streaming(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "data").mkdir()
    cap = int(0.25 * 2**20) + 64 * 1024  # --max-upload-mb plus the multipart allowance
    with running_server(tmp_path / "outputs", tmp_path / "data", ("--max-upload-mb", "0.25")) as (base, port):
        boundary = "kronosboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n").encode()
        csv = _csv(20_000)  # ~1.4 MB, several times the cap
        assert len(csv) > 3 * cap
        pieces = [head] + [csv[i:i + 16384] for i in range(0, len(csv), 16384)]
        multipart = f"multipart/form-data; boundary={boundary}"
        sent = 0
        over = []
        for piece in pieces:  # just past the cap, and the body left open
            over.append(piece)
            sent += len(piece)
            if sent > cap + 16384:
                break
        for path, content_type in (("/api/datasets/upload", multipart), ("/api/forecast", "application/json")):
            status, body = _chunked_post(port, path, content_type, over, end=False)
            assert status == 413 and "larger than the 0.312 MB limit" in body["detail"], (path, status, body)
        # A chunked body under the cap is read as before.
        small = [head, _csv(300), f"\r\n--{boundary}--\r\n".encode()]
        status, body = _chunked_post(port, "/api/datasets/upload", multipart, small, end=True)
        assert status == 200 and body["rows"] == 300, body
        assert _health(base)[0]["status"] == "ok"

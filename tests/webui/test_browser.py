"""End to end in real headless Chromium (Debian /usr/bin/chromium through Playwright, no browser download).

One server, one page: a rejected upload, a bad request's message (and the stale chart cleared), an
intraday forecast on a gap-free axis, the median and fan views, Cancel stopping a long forecast on the
server, and the layout at 760 px. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.webui.live_server import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "test-artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright python package not installed").sync_playwright


def _health(base: str) -> dict:
    with urllib.request.urlopen(base + "/health", timeout=5) as response:
        return json.loads(response.read())


def _traces(page) -> dict[str, dict]:
    return {t["name"]: t for t in page.evaluate(
        "document.getElementById('chart').data.map(t => ({name: t.name, type: t.type, n: t.x.length,"
        " open: t.open, high: t.high, low: t.low, close: t.close}))")}


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_page_end_to_end(sync_playwright, fixtures_dir: Path, tmp_path: Path) -> None:
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    outputs.mkdir()
    data.mkdir()
    bad_csv = tmp_path / "no_close.csv"
    bad_csv.write_text("timestamps,open,high,low\n2024-01-01,1,2,0.5\n")
    args = ("--models-dir", str(fixtures_dir), "--work-budget", "0", "--device", "cpu")
    with running_server(outputs, data, args) as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            console_errors: list[str] = []
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.goto(base, wait_until="load")
            page.wait_for_selector("body[data-state=ready]", timeout=20_000)
            assert page.evaluate("typeof Plotly") == "object", "Plotly did not load from the server"

            # A malformed upload shows read_ohlcv_csv's message in the page.
            page.set_input_files("#csv-file", str(bad_csv))
            page.wait_for_selector("#error:not(.hidden)", timeout=20_000)
            assert "close" in page.inner_text("#error")

            page.set_input_files("#csv-file", str(fixtures_dir / "input.csv"))
            page.wait_for_function("() => document.getElementById('dataset-info').innerText.includes('2,500')", timeout=20_000)
            assert not page.is_visible("#error")
            page.select_option("#model-select", "__local__")
            page.fill("#predictor-path", str(fixtures_dir / "predictor"))
            page.fill("#tokenizer-path", str(fixtures_dir / "tokenizer"))
            page.fill("#lookback", "200")
            page.fill("#pred-len", "36")
            page.fill("#sample-count", "8")
            page.fill("#seed", "3")

            # 1. The intraday forecast: candles on a category axis (no night/lunch gaps), years on the axis.
            page.click("#predict")
            page.wait_for_selector("body[data-state=done]", timeout=120_000)
            traces = _traces(page)
            mean = traces["Forecast (mean)"]
            assert mean["type"] == "candlestick" and mean["n"] == 36 and traces["History"]["n"] == 200
            assert traces["Actual close"]["n"] == 36 and traces["Close 10–90% band"]["n"] == 36
            band_tip = page.evaluate(
                "document.getElementById('chart').data.find(t => t.name === 'Close 10–90% band').hovertemplate")
            assert band_tip.startswith("Close 10–90% band: %{y") and "to %{customdata" in band_tip
            o, h, low, c = (np.array(mean[k]) for k in ("open", "high", "low", "close"))
            assert np.all(h >= np.maximum(o, c)) and np.all(np.minimum(o, c) >= low)
            axis = page.evaluate("document.getElementById('chart').layout.xaxis")
            assert axis["type"] == "category"
            assert all(t.startswith("2024-") and "<br>" in t for t in axis["ticktext"])
            table = page.inner_text("#metrics-table")
            assert "naive" in table and "median of the sample paths" in table and "coin flip" in table and "CRPS" in table and "band" in table
            assert page.get_attribute("#download", "href").endswith(".csv")
            _shot(page, "webui-intraday-candles.png")

            # 2. The median path and the fan of sample paths.
            page.select_option("#view-select", "median")
            page.wait_for_function("() => document.getElementById('chart').data.some(t => t.name === 'Forecast (median)')")
            page.select_option("#view-select", "fan")
            page.wait_for_function("() => document.getElementById('chart').data.some(t => t.name === 'Median close')")
            traces = _traces(page)
            assert "Sample paths (8 of 8)" in traces and "Close 5–95%" in traces and "Close 25–75%" in traces
            _shot(page, "webui-fan.png")
            page.select_option("#view-select", "candles")

            # 2b. Past the end of the data: future bars follow the A-share sessions (no lunch-break bars).
            page.fill("#start", "2300")
            page.click("#predict")
            page.wait_for_function("() => document.body.dataset.state === 'done' && "
                                   "document.getElementById('chart-caption').innerText.includes('sessions')")
            assert "follow the data's sessions" in page.inner_text("#chart-caption")
            future = _traces(page)["Forecast (mean)"]
            stamps = page.evaluate("document.getElementById('chart').data.find(t => t.name === 'Forecast (mean)').x")
            assert future["n"] == 36 and not any("11:30" < t[11:16] < "13:05" or t[11:16] > "15:00" for t in stamps)
            _shot(page, "webui-intraday-future.png")

            # 3. A bad request: one message in the page, the stale chart cleared.
            page.fill("#start", "²")
            page.click("#predict")
            page.wait_for_selector("body[data-state=error]", timeout=30_000)
            assert "neither a row number nor a date" in page.inner_text("#error")
            assert page.evaluate("(document.getElementById('chart').data || []).length") == 0
            assert page.is_visible("#placeholder") and not page.is_visible("#download")
            _shot(page, "webui-bad-request.png")
            page.fill("#start", "")
            page.fill("#seed", str(2**70))
            page.click("#predict")
            page.wait_for_function("() => document.getElementById('error').innerText.includes('seed must be')")

            # 4. Cancel a long forecast: the page stops waiting and the server stops computing.
            page.fill("#seed", "")
            page.fill("#lookback", "512")
            page.fill("#pred-len", "480")
            page.fill("#sample-count", "256")
            page.click("#predict")
            page.wait_for_selector("#cancel:not(.hidden)")
            page.wait_for_function(
                "() => fetch('/health').then(r => r.json()).then(h => h.forecasts_running === 1)", timeout=60_000)
            page.wait_for_timeout(1000)
            _shot(page, "webui-predicting.png")  # the Cancel button beside the disabled Predict
            page.click("#cancel")
            page.wait_for_selector("body[data-state=cancelled]", timeout=10_000)
            assert "Cancelled" in page.inner_text("#status")
            page.wait_for_function(
                "() => fetch('/health').then(r => r.json()).then(h => h.forecasts_running === 0)", timeout=10_000)
            _shot(page, "webui-cancelled.png")

            # 5. The layout holds at 760 px: no sideways scrolling, chart as wide as the window allows.
            page.fill("#lookback", "600")  # above max_context 512: the caption says it was truncated
            page.fill("#pred-len", "36")
            page.fill("#sample-count", "8")
            page.set_viewport_size({"width": 760, "height": 1000})
            page.click("#predict")
            page.wait_for_selector("body[data-state=done]", timeout=120_000)
            assert "Lookback 600 truncated to the last 512 rows" in page.inner_text("#chart-caption")
            assert page.evaluate("document.documentElement.scrollWidth") <= 760
            assert page.evaluate("document.getElementById('chart').getBoundingClientRect().width") >= 600
            _shot(page, "webui-760px.png")
            assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
        finally:
            browser.close()
    assert _health_down(base)


def _health_down(base: str) -> bool:
    """After the server stopped, /health no longer answers (the test's server is gone, nothing left running)."""
    try:
        _health(base)
    except OSError:
        return True
    return False

"""End to end in real headless Chromium: start the server, upload a CSV, pick the fixture pair, predict.

Leaves a screenshot at test-artifacts/webui.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.webui.live_server import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "webui.png"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright python package not installed").sync_playwright


def test_upload_pick_model_predict_and_chart(sync_playwright, fixtures_dir: Path, tmp_path: Path) -> None:
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    outputs.mkdir()
    data.mkdir()
    bad_csv = tmp_path / "no_close.csv"
    bad_csv.write_text("timestamps,open,high,low\n2024-01-01,1,2,0.5\n")
    with running_server(outputs, data) as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            page.goto(base, wait_until="load")
            page.wait_for_selector("body[data-state=ready]", timeout=20_000)
            assert page.evaluate("typeof Plotly") == "object", "Plotly did not load from the server"

            # A malformed upload shows read_ohlcv_csv's message in the page.
            page.set_input_files("#csv-file", str(bad_csv))
            page.wait_for_selector("#error:not(.hidden)", timeout=20_000)
            assert "close" in page.inner_text("#error")

            page.set_input_files("#csv-file", str(fixtures_dir / "input.csv"))
            page.wait_for_function("document.getElementById('dataset-info').innerText.includes('2,500')", timeout=20_000)
            page.select_option("#model-select", "__local__")
            page.fill("#predictor-path", str(fixtures_dir / "predictor"))
            page.fill("#tokenizer-path", str(fixtures_dir / "tokenizer"))
            page.fill("#lookback", "200")
            page.fill("#pred-len", "36")
            page.fill("#sample-count", "8")
            page.click("#predict")
            page.wait_for_selector("body[data-state=done]", timeout=120_000)

            traces = page.evaluate(
                "document.getElementById('chart').data.map(t => ({name: t.name, type: t.type, n: t.x.length}))"
            )
            by_name = {t["name"]: t for t in traces}
            assert by_name["Forecast (mean)"]["type"] == "candlestick" and by_name["Forecast (mean)"]["n"] == 36
            assert by_name["History"]["n"] == 200
            assert by_name["Actual close"]["n"] == 36
            assert by_name["Close 10–90% band"]["n"] == 36
            assert by_name["Forecast volume"]["type"] == "bar"
            assert page.is_visible("#metrics-table") and "Persistence" in page.inner_text("#metrics-table")
            assert page.get_attribute("#download", "href").endswith(".csv")
            assert not page.is_visible("#error")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000

"""csv_to_qlib writes providers pyqlib reads back; QlibSource reads them (and real CSI300 data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_pipelines.csv_to_qlib import main
from kronos.data.qlib_provider import build_provider, build_provider_from_panel
from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError
from kronos.data.qlib_source import QlibSource
from kronos.data.synthetic import SyntheticSource


def _frames() -> dict[str, pd.DataFrame]:
    panel = SyntheticSource(n_instruments=2, n_steps=60, seed=4).load()
    a, b = panel.frame("SYN000"), panel.frame("SYN001").iloc[5:]
    b = b.drop(b.index[10])  # a missing day inside b's span: NaN in its bin, dropped by QlibSource
    a["member"] = np.arange(len(a)) >= 20
    b["member"] = True
    return {"btc-usd": a, "SYN001": b}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_provider(_frames(), tmp_path_factory.mktemp("prov") / "qlib", market="mkt")


def test_round_trip_through_pyqlib(provider: Path) -> None:
    import qlib
    from qlib.data import D

    qlib.init(provider_uri=str(provider), region="cn", kernels=1)
    assert D.list_instruments(D.instruments("all"), as_list=True) == ["BTC_USD", "SYN001"]
    spans = D.list_instruments(D.instruments("mkt"))
    frames = _frames()
    assert pd.Timestamp(spans["BTC_USD"][0][0]) == frames["btc-usd"].index[20]
    got = D.features(["BTC_USD", "SYN001"], ["$open", "$close", "$volume", "$amount", "$factor", "$change"])
    a = got.loc["BTC_USD"]
    np.testing.assert_array_equal(a["$close"].to_numpy(np.float32), frames["btc-usd"]["close"].to_numpy())
    np.testing.assert_array_equal(a["$amount"].to_numpy(np.float32), frames["btc-usd"]["amount"].to_numpy())
    assert (a["$factor"] == 1.0).all()
    np.testing.assert_allclose(a["$change"].iloc[1:], a["$close"].pct_change().iloc[1:], rtol=1e-5)
    b = got.loc["SYN001"]
    assert len(b) == 55 and b["$close"].isna().sum() == 1  # the missing day reads back as NaN


def test_qlib_source_on_generated_provider(provider: Path) -> None:
    panel = QlibSource(provider, market="mkt").load()
    assert panel.instruments == ["BTC_USD", "SYN001"]
    frames = _frames()
    np.testing.assert_array_equal(panel.values[1], frames["SYN001"][list(panel.features)].to_numpy())
    np.testing.assert_array_equal(panel.member[0], frames["btc-usd"]["member"].to_numpy())
    assert panel.member[1].all()


def test_build_provider_from_panel_and_cli(tmp_path: Path) -> None:
    panel = SyntheticSource(n_instruments=3, n_steps=40, seed=0).load()
    out = build_provider_from_panel(panel, tmp_path / "syn")
    got = QlibSource(out, market="all").load()
    assert got.instruments == panel.instruments
    np.testing.assert_array_equal(got.values[2], panel.values[2])
    csv = tmp_path / "long.csv"
    pd.concat([panel.frame(i).assign(symbol=i) for i in panel.instruments]).rename_axis("date").to_csv(csv)
    out2 = main(["--csv", str(csv), "--out", str(tmp_path / "cli"), "--market", "demo"])
    assert (out2 / "instruments" / "demo.txt").read_text().count("\n") == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_identical_rebuild_keeps_the_provider_and_changed_content_replaces_it(tmp_path: Path) -> None:
    panel = SyntheticSource(n_instruments=3, n_steps=40, seed=0).load()
    out = build_provider_from_panel(panel, tmp_path / "syn")
    close_bin = next((out / "features").glob("*/close.day.bin"))
    written = close_bin.stat().st_mtime_ns
    marker = out / "calendars" / "kept.txt"  # would vanish if the directory were rebuilt
    marker.write_text("x")
    assert build_provider_from_panel(panel, out, overwrite=True) == out
    assert marker.exists() and close_bin.stat().st_mtime_ns == written
    other = SyntheticSource(n_instruments=3, n_steps=40, seed=1).load()  # same shape, other prices
    build_provider_from_panel(other, out, overwrite=True)
    assert not marker.exists()
    np.testing.assert_array_equal(QlibSource(out, market="all").load().values[0], other.values[0])
    with pytest.raises(DataValidationError, match="overwrite"):  # without overwrite an existing one is refused
        build_provider_from_panel(other, out)


def test_missing_provider_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLIB_DATA_PATH", str(tmp_path / "absent"))
    with pytest.raises(DataValidationError) as err:
        QlibSource().load()
    msg = str(err.value)
    assert str(tmp_path / "absent") in msg and "QLIB_DATA_PATH" in msg
    assert "python -m data_pipelines.download_qlib" in msg and "python -m data_pipelines.csv_to_qlib" in msg


@pytest.mark.realdata
def test_qlib_source_real_csi300(data_dir: Path) -> None:
    source = QlibSource(data_dir / "qlib_cn_csi300", market="csi300", start="2024-01-01", end="2024-12-31")
    dm = KronosDataModule(source, lookback=30, horizon=5, batch_size=32)
    panel = dm.panel
    assert 280 <= len(panel.instruments) <= 453
    members_per_day = pd.Series(np.concatenate(panel.member)).groupby(np.concatenate(panel.timestamps)).sum()
    assert members_per_day.between(243, 300).all()
    assert all(np.isfinite(v).all() for v in panel.values)
    batch = next(iter(dm.eval_dataloader("test")))
    assert batch["x"].shape == (32, 30, 6) and len(batch["instrument"]) == 32


def test_qlib_source_iter_series_in_symbol_order(provider: Path) -> None:
    source = QlibSource(provider, market="mkt")
    panel = source.load()
    items = list(source.iter_series())
    assert [s for s, *_ in items] == sorted(panel.instruments)
    for sym, ts, values, member in items:
        i = panel.instruments.index(sym)
        np.testing.assert_array_equal(ts, panel.timestamps[i])
        np.testing.assert_array_equal(values, panel.values[i])
        np.testing.assert_array_equal(member, panel.member[i])

"""CSVSource on the shared real data: CSI300 daily long file and Binance hourly folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_pipelines.clean_csv import clean_csv
from kronos.data.csv_source import CSVSource
from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError

pytestmark = pytest.mark.realdata


def test_csi300_daily_long_file(data_dir: Path) -> None:
    path = data_dir / "cn_csi300_daily_csv" / "csi300_members_daily_2023_2026.csv"
    with pytest.raises(DataValidationError, match=r"column 'volume' has a missing value \(NaN\) at row \d+"):
        CSVSource(path).load()  # suspension days: NaN volume
    dm = KronosDataModule(CSVSource(path, on_nan="drop"), lookback=90, horizon=10, batch_size=64)
    panel = dm.panel
    assert len(panel.instruments) == 360
    assert panel.n_rows == 289_159 - 300
    assert panel.member is not None and 0.5 < np.concatenate(panel.member).mean() < 1.0
    info = dm.describe()
    assert info["date_range"][0].startswith("2023-01-03") and info["splits"]["test"]["eval_windows"] > 0
    batch = next(iter(dm.eval_dataloader("test", batch_size=256)))
    assert batch["x"].shape == (256, 90, 6) and np.isfinite(batch["x"].numpy()).all()


def test_crypto_hourly_folder(data_dir: Path, tmp_path: Path) -> None:
    folder = data_dir / "crypto_binance_1h"
    panel = CSVSource(folder, glob="B*USDT_1h_clean.csv").load()
    assert panel.instruments == ["BNBUSDT_1h_clean", "BTCUSDT_1h_clean"]
    assert [len(t) for t in panel.timestamps] == [7_478, 33_412]
    eth = folder / "ETHUSDT_1h_clean.csv"
    with pytest.raises(DataValidationError, match=r"ETHUSDT_1h_clean\.csv: column 'amount' has a missing value"):
        CSVSource(eth).load()
    report = clean_csv(eth, tmp_path / "ETHUSDT.csv", nan="ffill", verbose=False)
    assert report["nan_cells_filled"] == 1 and report["rows_out"] == 33_412
    dm = KronosDataModule(CSVSource(tmp_path / "ETHUSDT.csv"), lookback=48, horizon=12, batch_size=16)
    stamp = next(iter(dm.train_dataloader()))["stamp"]
    assert stamp[..., 1].max() > 0  # hourly data: the hour field varies


def test_hourly_crypto_provider_needs_its_frequency(data_dir: Path, tmp_path: Path) -> None:
    """Issue 11: BTCUSDT hourly under the default --freq day wrote 33,412 date-only calendar lines, 1,393 unique."""
    from data_pipelines.csv_to_qlib import main

    csv = data_dir / "crypto_binance_1h" / "BTCUSDT_1h_clean.csv"
    with pytest.raises(DataValidationError, match=r"bars are 60min apart, but the calendar frequency is 'day'.*"
                                                  r"Use --freq 60min"):
        main(["--csv", str(csv), "--out", str(tmp_path / "btc")])
    assert not (tmp_path / "btc").exists()
    out = main(["--csv", str(csv), "--out", str(tmp_path / "btc"), "--freq", "60min"])
    lines = (out / "calendars" / "60min.txt").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 33_412


def test_csi300_parquet_matches_csv(data_dir: Path, tmp_path: Path) -> None:
    """The same market as Parquet (small row groups) gives the CSV source's panel, streamed or loaded."""
    import pandas as pd

    from kronos.data.parquet_source import ParquetSource

    csv = data_dir / "cn_csi300_daily_csv" / "csi300_members_daily_2023_2026.csv"
    expected = CSVSource(csv, on_nan="drop").load()
    df = pd.read_csv(csv).sort_values(["symbol", "date"], kind="stable")
    df.to_parquet(tmp_path / "csi300.parquet", row_group_size=50_000, index=False)
    source = ParquetSource(tmp_path / "csi300.parquet", on_nan="drop", batch_rows=30_000)
    streamed = {sym: (ts, v, m) for sym, ts, v, m in source.iter_series()}
    assert sorted(streamed) == sorted(expected.instruments) and len(streamed) == 360
    for i, sym in enumerate(expected.instruments):
        ts, v, m = streamed[sym]
        np.testing.assert_array_equal(ts, expected.timestamps[i])
        np.testing.assert_array_equal(v, expected.values[i])
        np.testing.assert_array_equal(m, expected.member[i])
    assert source.load().n_rows == expected.n_rows == 289_159 - 300


def test_crypto_hourly_experiment_loads_the_shared_folder(data_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: `python -m kronos.train experiment=crypto_hourly` stopped before training on the very data it is
    written for (ETHUSDT's one NaN amount); the experiment now skips such rows."""
    from hydra.utils import instantiate

    from tests.lightning.conftest import compose_config

    monkeypatch.setenv("KRONOS_DATA_DIR", str(data_dir))
    cfg = compose_config([f"output_root={tmp_path}", "experiment=crypto_hourly"])
    panel = instantiate(cfg.data.source).load()
    assert len(panel.instruments) == 4
    assert sum(len(t) for t in panel.timestamps) == 2 * 33_412 + 2 * 7_478 - 1  # the one NaN hour skipped

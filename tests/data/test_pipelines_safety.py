"""The data pipelines never lose data: csv_to_qlib's --out rules, calendar frequency, permissions, layering."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_pipelines.csv_to_qlib import main
from kronos.data.errors import DataValidationError
from kronos.data.qlib_provider import build_provider, build_provider_from_panel, detect_frequency, init_qlib
from kronos.data.synthetic import SyntheticSource

REPO = Path(__file__).resolve().parents[2]


def _csv(tmp_path: Path, freq: str = "D", n: int = 48, name: str = "bars.csv") -> Path:
    stamps = pd.date_range("2024-01-01", periods=n, freq=freq)
    close = 10 + np.arange(n) * 0.01
    path = tmp_path / name
    pd.DataFrame({"timestamps": stamps, "open": close, "high": close + 0.1, "low": close - 0.1, "close": close,
                  "volume": 100.0}).to_csv(path, index=False)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_out_with_other_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    """Regression (issue 11): --out DIR deleted whatever DIR held (a project folder, `--out .`)."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "model.py").write_text("print('precious')\n")
    (project / "notes.txt").write_text("keep me\n")
    before = _tree(project)
    with pytest.raises(DataValidationError, match=r"not empty and is not a Qlib provider .*\['notes.txt', 'src'\]"):
        main(["--csv", str(_csv(tmp_path)), "--out", str(project)])
    proc = subprocess.run([sys.executable, "-m", "data_pipelines.csv_to_qlib", "--csv", str(_csv(tmp_path)),
                           "--out", "."], cwd=project, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "not a Qlib provider" in proc.stderr
    assert _tree(project) == before


def test_existing_provider_needs_overwrite_and_survives_a_failed_build(tmp_path: Path) -> None:
    out = tmp_path / "prov"
    main(["--csv", str(_csv(tmp_path)), "--out", str(out)])
    before = _tree(out)
    with pytest.raises(DataValidationError, match=r"already holds a Qlib provider. Pass --overwrite"):
        main(["--csv", str(_csv(tmp_path, n=60)), "--out", str(out)])
    bad = _csv(tmp_path, n=60, name="bad.csv")
    bad.write_text(bad.read_text().replace(",10.5,", ",abc,", 1))
    with pytest.raises(DataValidationError, match="non-numeric"):
        main(["--csv", str(bad), "--out", str(out), "--overwrite"])
    with pytest.raises(RuntimeError, match="disk full"):  # a crash while writing the new provider
        build_provider({"X": pd.read_csv(_csv(tmp_path, n=60), parse_dates=["timestamps"])}, out,
                       overwrite=True, market=_Explodes())
    assert _tree(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    main(["--csv", str(_csv(tmp_path, n=60)), "--out", str(out), "--overwrite"])
    assert (out / "calendars" / "day.txt").read_text().count("\n") == 60


class _Explodes(str):
    """A market name whose use inside the build raises (simulates a crash half-way through writing)."""

    def __new__(cls) -> "_Explodes":
        return super().__new__(cls, "boom")

    def lower(self) -> str:  # called once the features are written
        raise RuntimeError("disk full")


def test_empty_out_directory_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["--csv", str(_csv(tmp_path)), "--out", str(out)]) == out.resolve()


@pytest.mark.parametrize("bars, wrong, right", [("h", "day", "60min"), ("5min", "day", "5min"),
                                                 ("D", "60min", "day"), ("5min", "1min", "5min")])
def test_calendar_frequency_must_match_the_data(tmp_path: Path, bars: str, wrong: str, right: str) -> None:
    """Regression (issue 11): hourly bars under the default --freq day wrote date-only, duplicated calendar lines."""
    csv = _csv(tmp_path, freq=bars)
    out = tmp_path / "prov"
    with pytest.raises(DataValidationError, match=rf"calendar frequency is '{wrong}'.*Use --freq {right}\."):
        main(["--csv", str(csv), "--out", str(out), "--freq", wrong])
    assert not out.exists()
    main(["--csv", str(csv), "--out", str(out), "--freq", right])
    lines = (out / "calendars" / f"{right}.txt").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 48


def test_unknown_frequency_is_refused_and_spellings_are_canonical(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"--freq 'hourly' is not a Qlib frequency"):
        main(["--csv", str(_csv(tmp_path)), "--out", str(tmp_path / "p"), "--freq", "hourly"])
    out = main(["--csv", str(_csv(tmp_path)), "--out", str(tmp_path / "p"), "--freq", "1d"])
    assert (out / "calendars" / "day.txt").is_file()  # the name Qlib's D.calendar(freq="day") reads
    out = main(["--csv", str(_csv(tmp_path, freq="h")), "--out", str(tmp_path / "h"), "--freq", "60minute"])
    assert (out / "calendars" / "60min.txt").is_file()


def test_detect_frequency_ignores_gaps() -> None:
    day = pd.date_range("2024-01-01 09:30", periods=20, freq="5min")
    sessions = [np.concatenate([day.to_numpy(), (day + pd.Timedelta(days=1)).to_numpy()]).astype("datetime64[ns]")]
    assert detect_frequency(sessions) == "5min"
    assert detect_frequency([pd.bdate_range("2024-01-01", periods=30).to_numpy()]) == "day"


def test_provider_and_its_files_follow_the_umask(tmp_path: Path) -> None:
    """Regression (issue 11): providers were 0700 (mkdtemp) whatever the umask."""
    panel = SyntheticSource(n_instruments=2, n_steps=30, seed=0).load()
    old = os.umask(0o022)
    try:
        out = build_provider_from_panel(panel, tmp_path / "prov")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "calendars" / "day.txt").stat().st_mode) == 0o644


def test_init_qlib_is_the_only_qlib_init_and_kronos_never_imports_data_pipelines() -> None:
    calls, imports = [], []
    for path in sorted((REPO / "kronos").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "init" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "qlib":
                calls.append(str(path.relative_to(REPO)))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("data_pipelines"):
                imports.append(str(path.relative_to(REPO)))
            if isinstance(node, ast.Import) and any(a.name.startswith("data_pipelines") for a in node.names):
                imports.append(str(path.relative_to(REPO)))
    assert calls == ["kronos/data/qlib_provider.py"]
    assert imports == []


def test_init_qlib_reinitialises_only_when_pointed_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qlib

    panel = SyntheticSource(n_instruments=2, n_steps=30, seed=0).load()
    a = build_provider_from_panel(panel, tmp_path / "a")
    b = build_provider_from_panel(panel, tmp_path / "b")
    inits = []
    real = qlib.init
    monkeypatch.setattr(qlib, "init", lambda **kw: (inits.append(kw["provider_uri"]), real(**kw)))
    init_qlib(a)
    init_qlib(a)
    init_qlib(b)
    assert inits == [str(a), str(b)]


def test_hourly_provider_reads_back_through_pyqlib(tmp_path: Path) -> None:
    from kronos.data.qlib_source import QlibSource

    out = main(["--csv", str(_csv(tmp_path, freq="h")), "--out", str(tmp_path / "prov"), "--freq", "60min"])
    panel = QlibSource(out, market="all", freq="60min").load()
    assert panel.instruments == ["BARS"] and len(panel.timestamps[0]) == 48
    np.testing.assert_array_equal(panel.timestamps[0], pd.date_range("2024-01-01", periods=48, freq="h").to_numpy())


@pytest.mark.parametrize("market", ["../escape", "a/b", "", ".."])
def test_market_must_be_a_plain_name(tmp_path: Path, market: str) -> None:
    """Regression (hostile round): --market ../x wrote instruments/../x.txt outside the provider."""
    out = tmp_path / "provider"
    with pytest.raises(DataValidationError, match="--market .* is not a plain market name"):
        main(["--csv", str(_csv(tmp_path)), "--out", str(out), "--market", market])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv"]


def test_missing_symbol_is_refused_not_a_series_named_nan(tmp_path: Path) -> None:
    """A long file whose symbol cell is empty must not become an instrument called ''/'NAN'."""
    frame = pd.DataFrame({"open": [1.0, 1.0], "high": [1.1, 1.1], "low": [0.9, 0.9], "close": [1.0, 1.0]},
                         index=pd.date_range("2024-01-01", periods=2))
    with pytest.raises(DataValidationError, match="not a usable instrument name"):
        build_provider({"": frame}, tmp_path / "p")
    assert not (tmp_path / "p").exists()

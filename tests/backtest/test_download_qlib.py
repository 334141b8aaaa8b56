"""download_qlib: the offline failure is one clear message (no network touched)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from data_pipelines import download_qlib


def test_offline_download_names_the_failure_and_the_alternative(monkeypatch, tmp_path: Path, capsys) -> None:
    calls = {}

    def offline(self, **kwargs):
        calls.update(kwargs)
        raise requests.exceptions.ConnectionError("Failed to resolve 'github.com'")

    monkeypatch.setattr("qlib.tests.data.GetData.qlib_data", offline)
    target = tmp_path / "cn_data"
    assert download_qlib.main(["--target", str(target), "--region", "cn"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ConnectionError" in err and str(target) in err
    assert "python -m data_pipelines.csv_to_qlib --csv PATH --out" in err
    assert calls["target_dir"] == str(target) and calls["region"] == "cn" and calls["delete_old"] is False


def test_successful_download_returns_the_target(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("qlib.tests.data.GetData.qlib_data", lambda self, **kwargs: None)
    assert download_qlib.download(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(SystemExit):
        download_qlib.main(["--region", "eu"])


def test_target_with_other_files_is_refused_before_downloading(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr("qlib.tests.data.GetData.qlib_data", lambda self, **kwargs: pytest.fail("must not download"))
    (tmp_path / "thesis.tex").write_text("years of work")
    assert download_qlib.main(["--target", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a Qlib provider" in err and str(tmp_path) in err
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


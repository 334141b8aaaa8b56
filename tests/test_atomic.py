"""kronos.atomic: the one crash-safe writer; outputs get the umask's permissions, links are written through."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from kronos.atomic import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


@pytest.fixture()
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_and_directories_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    """Regression (issue 11): mkstemp/mkdtemp made every output 0600/0700."""
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == 0o640
    assert _mode(atomic_write_json(tmp_path / "a.json", {"k": 1})) == 0o640
    assert _mode(atomic_write_bytes(tmp_path / "a.png", b"\x89PNG")) == 0o640
    with atomic_directory(tmp_path / "export") as tmp:
        (tmp / "config.json").write_text("{}")
    assert _mode(tmp_path / "export") == 0o750 and _mode(tmp_path / "export" / "config.json") == 0o640


def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("old")
    os.chmod(path, 0o604)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o604


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "data" / "real.csv"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_failed_write_leaves_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]

    target = tmp_path / "provider"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "provider"]


def test_directory_swap_failure_restores_the_old_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "export"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.startswith(".export.tmp-"):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_symlinked_directory_is_replaced_behind_its_link(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "provider"
    real.mkdir(parents=True)
    (real / "old").write_text("1")
    link = tmp_path / "provider"
    link.symlink_to(real, target_is_directory=True)
    with atomic_directory(link) as tmp:
        (tmp / "new").write_text("2")
    assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == ["new"]

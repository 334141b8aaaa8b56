"""What the page can choose from: exported experiments, hub checkpoints and data-directory files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

CSV_SUFFIXES = (".csv", ".csv.gz")
MAX_LISTED_FILES = 1000


@dataclass(frozen=True)
class ModelChoice:
    """A predictor/tokenizer pair the page can load: ``kind`` is experiment, hub or local."""

    kind: str
    name: str
    predictor: str
    tokenizer: str

    def as_dict(self) -> dict[str, str]:
        """JSON form for the page."""
        return asdict(self)


HUB_CHOICES: tuple[ModelChoice, ...] = (
    ModelChoice("hub", "Kronos-mini (hub)", "NeoQuasar/Kronos-mini", "NeoQuasar/Kronos-Tokenizer-2k"),
    ModelChoice("hub", "Kronos-small (hub)", "NeoQuasar/Kronos-small", "NeoQuasar/Kronos-Tokenizer-base"),
    ModelChoice("hub", "Kronos-base (hub)", "NeoQuasar/Kronos-base", "NeoQuasar/Kronos-Tokenizer-base"),
)


class OutsideDataDirError(ValueError):
    """A requested data file that resolves outside the configured data directory."""


def list_experiments(outputs_dir: Path) -> list[ModelChoice]:
    """Experiments under ``outputs_dir`` whose ``tokenizer/`` and ``predictor/`` both hold a config.json."""
    if not outputs_dir.is_dir():
        return []
    found = []
    for exp in sorted(p for p in outputs_dir.iterdir() if p.is_dir()):
        tok, pred = exp / "tokenizer", exp / "predictor"
        if (tok / "config.json").is_file() and (pred / "config.json").is_file():
            found.append(ModelChoice("experiment", exp.name, str(pred.resolve()), str(tok.resolve())))
    return found


def list_data_files(data_dir: Path) -> list[str]:
    """CSV files under ``data_dir`` (recursively, hidden entries skipped) as POSIX paths relative to it."""
    if not data_dir.is_dir():
        return []
    root = data_dir.resolve()
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.name.lower().endswith(CSV_SUFFIXES):
            files.append(rel.as_posix())
            if len(files) >= MAX_LISTED_FILES:
                break
    return files


def resolve_data_file(data_dir: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``data_dir``; anything resolving outside it is refused.

    Raises:
        OutsideDataDirError: absolute paths, ``..`` escapes and symlinks leading out of the directory.
        FileNotFoundError: no such file inside the directory.
    """
    root = data_dir.resolve()
    candidate = (root / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(root):
        raise OutsideDataDirError(
            f"data path {relative!r} is outside the data directory {root}: pick a file from the list "
            f"or start the server with --data-dir pointing at the folder that holds it"
        )
    if not candidate.is_file():
        raise FileNotFoundError(f"no file {relative!r} in the data directory {root}: pick one from the list")
    return candidate

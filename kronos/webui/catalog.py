"""What the page can choose from, and the only model locations the server loads.

Models come from three places, nothing else: experiments (and any checkpoint directory) inside the
outputs directory, checkpoint directories inside the configured models directory, and Hugging Face
hub ids. A value naming anything else gets the same message whether or not it exists, so the API is
no "does this directory exist" oracle.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from kronos.data.errors import quoted
from kronos.experiment import Experiment
from kronos.inference.loading import context_limit, load_predictor
from kronos.inference.predictor import KronosPredictor
from kronos.inference.validation import ForecastInputError
from kronos.models import registry
from kronos.models.hub import fetch_hub_checkpoint
from kronos.errors import KronosUserError

CSV_SUFFIXES = (".csv", ".csv.gz")
MAX_LISTED_FILES = 1000
MAX_MODEL_VALUE_CHARS = 1024
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")  # owner/name, each at most 96 characters on the hub


@dataclass(frozen=True)
class ModelChoice:
    """A predictor/tokenizer pair the page can load: ``kind`` is experiment, models or hub.

    ``context``: the longest max_context the predictor was trained for (see ``context_limit``).
    """

    kind: str
    name: str
    predictor: str
    tokenizer: str
    context: int

    def as_dict(self) -> dict[str, object]:
        """JSON form for the page."""
        return asdict(self)


# The published pairs, from the registry of published models (kronos/models/registry.py).
HUB_CHOICES: tuple[ModelChoice, ...] = tuple(
    ModelChoice("hub", f"{m.name} (hub)", m.predictor, m.tokenizer, m.context) for m in registry.PUBLISHED)


class OutsideDataDirError(KronosUserError, ValueError):
    """A requested data file that resolves outside the configured data directory."""


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (through symlinks) inside the resolved ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def list_experiments(outputs_dir: Path) -> list[ModelChoice]:
    """Experiments under ``outputs_dir`` that hold both exports (``Experiment.list``), only those whose exports
    resolve inside it: a symlink pointing outside would be listed and then refused (``ModelLocations``)."""
    found = []
    for exp in Experiment.list(outputs_dir):
        if not (_inside(exp.predictor_dir, outputs_dir) and _inside(exp.tokenizer_dir, outputs_dir)):
            continue
        predictor = str(exp.predictor_dir.resolve())
        found.append(ModelChoice("experiment", exp.name, predictor, str(exp.tokenizer_dir.resolve()),
                                 context_limit(predictor)[0]))
    return found


def list_model_dirs(models_dir: Path | None) -> list[ModelChoice]:
    """Pairs in the models directory laid out like experiments (``<name>/tokenizer``, ``<name>/predictor``)."""
    if models_dir is None:
        return []
    return [ModelChoice("models", c.name, c.predictor, c.tokenizer, c.context) for c in list_experiments(models_dir)]


class ModelLocations:
    """Resolves a page's predictor/tokenizer value to a location the server may load.

    Args:
        outputs_dir: the outputs directory (any checkpoint directory inside it is allowed).
        models_dir: an extra directory of checkpoints (``--models-dir``), or None.
    """

    def __init__(self, outputs_dir: Path, models_dir: Path | None = None) -> None:
        self.roots = [Path(outputs_dir).resolve()] + ([Path(models_dir).resolve()] if models_dir else [])

    def _refusal(self, kind: str, value: str) -> ForecastInputError:
        shown = value if len(value) <= 120 else value[:117] + "..."
        places = " or ".join(str(r) for r in self.roots)
        return ForecastInputError(
            f"{kind} {shown!r} is not a checkpoint this server offers: choose a model from the list, or give a "
            f"checkpoint directory inside {places}, or a Hugging Face hub id such as NeoQuasar/Kronos-small"
        )

    def resolve(self, value: str, kind: str) -> str:
        """The absolute checkpoint directory (inside an allowed root) or the hub id ``value`` names.

        A hub-shaped value (``owner/name``) not found inside a root is a hub id, whatever exists under that
        name elsewhere; load it with ``load_located_pair``.

        Raises:
            ForecastInputError: one message for forbidden, missing and malformed values alike.
        """
        text = value.strip()
        if not text or len(text) > MAX_MODEL_VALUE_CHARS or "\x00" in text or not text.isprintable():
            raise self._refusal(kind, text)
        path = Path(text)  # no ~ expansion: the server user's home is not a place the page may name
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        for candidate in candidates:
            try:
                real = candidate.resolve()  # follows symlinks: a link out of the roots is outside
                if any(real.is_relative_to(root) for root in self.roots) and Experiment.is_export(real):
                    return str(real)
            except (OSError, RuntimeError):  # e.g. a name too long for the file system: not offered either
                continue
        if HUB_ID.match(text):
            # Only ever a hub id from here on (load_located_pair, located_context_limit): nothing relative
            # to the working directory is looked at, so an existing, a forbidden and a missing directory
            # of that name all get the hub's answer.
            return text
        raise self._refusal(kind, text)


def is_hub_location(location: str) -> bool:
    """True for a hub id from ``ModelLocations.resolve`` (its other answers are absolute directories)."""
    return HUB_ID.match(location) is not None


def located_context_limit(location: str) -> tuple[int, str]:
    """``context_limit`` of a resolved location; a hub id is never read as a local directory."""
    if is_hub_location(location) and registry.by_predictor(location) is None:
        return registry.LONGEST_CONTEXT, f"{location} has no published context: the longest published Kronos context"
    return context_limit(location)


def load_located_pair(tokenizer: str, predictor: str, device: str | None, max_context: int) -> KronosPredictor:
    """``load_predictor`` over two resolved locations, fetching hub ids strictly from the hub (``fetch_hub_checkpoint``)."""
    tokenizer_dir = str(fetch_hub_checkpoint(tokenizer, "tokenizer")) if is_hub_location(tokenizer) else tokenizer
    predictor_dir = str(fetch_hub_checkpoint(predictor, "predictor")) if is_hub_location(predictor) else predictor
    return load_predictor(tokenizer_dir, predictor_dir, device=device, max_context=max_context)


def list_data_files(data_dir: Path) -> list[str]:
    """CSV files under ``data_dir`` (recursively, hidden entries skipped) as POSIX paths relative to it; a symlink
    resolving outside the directory is not listed (``resolve_data_file`` would refuse it)."""
    if not data_dir.is_dir():
        return []
    root = data_dir.resolve()
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.name.lower().endswith(CSV_SUFFIXES) and _inside(path, root):
            files.append(rel.as_posix())
            if len(files) >= MAX_LISTED_FILES:
                break
    return files


def resolve_data_file(data_dir: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``data_dir``; anything resolving outside it is refused.

    Raises:
        OutsideDataDirError: absolute paths, ``..`` escapes, NUL bytes and symlinks leading out of the directory.
        FileNotFoundError: no such file inside the directory.
    """
    root = data_dir.resolve()
    outside = OutsideDataDirError(
        f"data path {quoted(relative)} is outside the data directory {root}: pick a file from the list "
        f"or start the server with --data-dir pointing at the folder that holds it"
    )
    if "\x00" in relative:
        raise outside
    missing = FileNotFoundError(f"no file {quoted(relative)} in the data directory {root}: pick one from the list")
    try:
        candidate = (root / relative).resolve()
        if Path(relative).is_absolute() or not candidate.is_relative_to(root):
            raise outside
        if not candidate.is_file():
            raise missing
    except (OSError, RuntimeError) as err:  # a name too long for the file system, a symlink loop
        if isinstance(err, FileNotFoundError):
            raise
        raise missing from None
    return candidate

"""Loading and saving checkpoints in the published format (config.json + model.safetensors).

Both Kronos models inherit :class:`HubModel`, which keeps huggingface_hub's
``PyTorchModelHubMixin`` behaviour (hub ids, ``save_pretrained``, ``push_to_hub``) and turns every
way a checkpoint can fail to load into one :class:`CheckpointError` that says what to do.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
from safetensors import safe_open
from torch import nn

from kronos.atomic import atomic_path
from kronos.errors import KronosUserError
from kronos.training_info import TrainingInfo

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

M = TypeVar("M", bound="HubModel")


class CheckpointError(KronosUserError, RuntimeError):
    """A checkpoint could not be found, fetched or matched to its config."""


class HubModel(nn.Module, PyTorchModelHubMixin):
    """nn.Module base with strict, well-explained ``from_pretrained`` and a ``config`` dict."""

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (what config.json holds)."""
        return dict(self._hub_mixin_config)

    @classmethod
    def from_pretrained(cls: type[M], pretrained_model_name_or_path: str | Path, **kwargs: Any) -> M:
        """Load from a local checkpoint directory or a Hugging Face hub id (e.g. ``NeoQuasar/Kronos-small``).

        A local export's ``training_info.json`` normalisation is kept as ``input_normalization``
        (``level`` without one), so a predictor built on it forecasts in the mode it trained in.
        """
        source = str(pretrained_model_name_or_path)
        path = Path(source).expanduser()
        if path.exists() or not _HUB_ID.match(source):
            _check_local_dir(path)
            model = super().from_pretrained(str(path), **kwargs)
            info = TrainingInfo.read(path)
            # the inputs this export trained on travel with it (KronosPredictor reads it); published: level
            model.input_normalization = info.input_normalization() if info is not None else "level"
            return model
        try:
            return super().from_pretrained(source, **kwargs)
        except CheckpointError:
            raise
        except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as exc:
            raise CheckpointError(
                f"{_fetch_failure(cls.__name__, source, exc)} Without network access, download it on a connected "
                f"machine (`huggingface-cli download {source} --local-dir DIR`) and pass the local directory, "
                f"e.g. {cls.__name__}.from_pretrained('DIR'); no local directory named {source!r} exists."
            ) from exc

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors`` into ``save_directory`` with the umask's permissions.

        safetensors (>= 0.7) writes through a private temporary file and renames it, so its file is
        0600 whatever the umask; kronos.atomic gives it the mode an ordinary ``open()`` would.
        """
        from safetensors.torch import save_model

        with atomic_path(Path(save_directory) / WEIGHTS_NAME) as tmp:
            save_model(self, str(tmp))

    @classmethod
    def _from_pretrained(
        cls: type[M],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> M:
        """Build the model from config.json's kwargs, then load model.safetensors (local or downloaded)."""
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        missing = sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                         if p.name != "self" and p.default is inspect.Parameter.empty and p.name not in model_kwargs)
        unknown = sorted(set(model_kwargs) - accepted)
        if missing or unknown:
            other = "KronosTokenizer" if cls.__name__ == "Kronos" else "Kronos predictor"
            raise CheckpointError(
                f"{model_id}: config.json does not describe a {cls.__name__} (missing keys {missing[:6]}, unexpected "
                f"keys {unknown[:6]}). Is it a {other} checkpoint? Check that the tokenizer and predictor "
                f"locations are not swapped."
            )
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, WEIGHTS_NAME)
        else:
            model_file = hf_hub_download(
                repo_id=model_id, filename=WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                force_download=force_download, token=token, local_files_only=local_files_only,
            )
        return cls._load_as_safetensor(model, model_file, map_location, strict)

    @classmethod
    def _load_as_safetensor(cls, model: M, model_file: str, map_location: str, strict: bool) -> M:
        """Load ``model_file`` into ``model`` after checking every key and shape against the model built from config.json."""
        expected = model.state_dict()
        with safe_open(model_file, framework="pt", device=str(map_location)) as handle:
            found = {key: handle.get_slice(key).get_shape() for key in handle.keys()}
            missing = sorted(set(expected) - set(found))
            unexpected = sorted(set(found) - set(expected))
            if missing or unexpected:
                raise CheckpointError(
                    f"{model_file} does not match {cls.__name__}({model.config}): missing keys {missing[:5]}"
                    f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                    f"{'...' if len(unexpected) > 5 else ''}. Is this a {cls.__name__} checkpoint?"
                )
            for key, shape in found.items():
                if tuple(shape) != tuple(expected[key].shape):
                    raise CheckpointError(
                        f"{model_file}: tensor {key!r} has shape {tuple(shape)} but config.json implies "
                        f"{tuple(expected[key].shape)}; the weights and config.json come from different models"
                    )
            state = {key: handle.get_tensor(key) for key in found}
        model.load_state_dict(state, strict=True)
        model.eval()
        return model


def fetch_hub_checkpoint(repo_id: str, what: str = "checkpoint") -> Path:
    """The local (Hugging Face cache) directory of hub checkpoint ``repo_id``, downloading what is missing.

    Unlike ``from_pretrained``, ``repo_id`` is only ever a hub id: a same-named directory relative to the
    working directory is never looked at, so the answer does not depend on (and reveals nothing about)
    the local file system. Pass the returned directory to ``from_pretrained``.

    Args:
        repo_id: ``owner/name`` on the Hugging Face Hub.
        what: what the checkpoint is for (``"predictor"``, ``"tokenizer"``), used in the error message.

    Raises:
        CheckpointError: an invalid id, or config.json/model.safetensors that cannot be fetched (or found in
            the cache when offline).
    """
    try:
        config = Path(hf_hub_download(repo_id=repo_id, filename=CONFIG_NAME))
        # The weights of the same revision as the config (the snapshot folder is named by its commit).
        revision = config.parent.name if config.parent.parent.name == "snapshots" else None
        weights = Path(hf_hub_download(repo_id=repo_id, filename=WEIGHTS_NAME, revision=revision))
    except HFValidationError as exc:
        raise CheckpointError(f"{what} {repo_id!r} is not a valid Hugging Face hub id: {exc}") from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as exc:
        raise CheckpointError(
            f"{_fetch_failure(what, repo_id, exc)} Without network access, fill the Hugging Face cache on a "
            f"connected machine (`huggingface-cli download {repo_id}`) and copy it here, or use a local directory "
            f"holding {CONFIG_NAME} and {WEIGHTS_NAME} instead."
        ) from exc
    # Both files sit in one snapshot folder; from_pretrained(folder) checks that and loads them.
    return weights.parent


def _fetch_failure(what: str, source: str, exc: Exception) -> str:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (f"could not fetch {what} checkpoint {source!r} from the Hugging Face Hub{offline}: "
            f"{type(exc).__name__}: {exc}.")


def _check_local_dir(path: Path) -> None:
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint directory {str(path)!r} does not exist; pass a directory holding "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}, or a hub id such as 'NeoQuasar/Kronos-small'"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint directory {str(path)!r} has no {name}; it needs {CONFIG_NAME} and {WEIGHTS_NAME}")

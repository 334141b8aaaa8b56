"""Checks of a checkpoint a training stage resumes from, before ``trainer.fit`` touches it.

A truncated, empty or foreign file, a checkpoint of another model shape, or one written with other
window settings (``data.lookback`` changed between runs) is refused with one line naming ``ckpt_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from kronos.stages.common import StageInputError

DATAMODULE_KEY = "KronosDataModule"  # Lightning stores a datamodule's state_dict under its class name
MAX_LISTED = 3


def _load(path: Path) -> Mapping[str, Any]:
    if path.stat().st_size == 0:
        raise StageInputError(f"ckpt_path={path} is an empty file: pass another checkpoint, 'last', or null to start fresh")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            ckpt = torch.load(path, map_location="cpu", weights_only=False)  # an old (non-zip) checkpoint
    except Exception as err:  # truncated zip, pickle garbage, not a torch file at all
        detail = " ".join(str(err).split())[:160]
        raise StageInputError(f"ckpt_path={path} is not a readable checkpoint (truncated or corrupt? {detail}): "
                              f"pass another checkpoint, 'last', or null to start fresh") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise StageInputError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict): pass a .ckpt "
                              f"written by this framework, 'last', or null")
    return ckpt


def check_resume(path: str | Path, module: torch.nn.Module, window_settings: Mapping[str, Any]) -> None:
    """Refuse a checkpoint that cannot be resumed into ``module`` with ``window_settings``.

    Args:
        path: the checkpoint (``ckpt_path`` resolved).
        module: the LightningModule about to be fitted (its state_dict keys and shapes).
        window_settings: ``KronosDataModule.window_settings()`` of this run.

    Raises:
        StageInputError: unreadable/empty/foreign file, other parameter shapes, other window settings.
    """
    path = Path(path)
    ckpt = _load(path)
    saved = ckpt["state_dict"]
    mine = module.state_dict()
    shapes = [(k, tuple(saved[k].shape), tuple(v.shape)) for k, v in mine.items()
              if k in saved and hasattr(saved[k], "shape") and tuple(saved[k].shape) != tuple(v.shape)]
    missing = [k for k in mine if k not in saved]
    if shapes or (missing and not any("_orig_mod" in k for k in [*saved, *mine])):
        what = ("; ".join(f"{k}: checkpoint {list(a)}, this run {list(b)}" for k, a, b in shapes[:MAX_LISTED])
                if shapes else f"missing {missing[:MAX_LISTED]}")
        raise StageInputError(f"ckpt_path={path} holds a model of another shape ({what}): resume with the model "
                              f"config it was trained with, or ckpt_path=null to start fresh")
    recorded = (ckpt.get(DATAMODULE_KEY) or {}).get("window_settings")
    if isinstance(recorded, Mapping):
        changed = {k: (recorded[k], window_settings[k]) for k in window_settings
                   if k in recorded and recorded[k] != window_settings[k]}
        if changed:
            diff = ", ".join(f"data.{k}: {a} in the checkpoint, {b} now" for k, (a, b) in changed.items())
            raise StageInputError(f"ckpt_path={path} was trained with other data settings ({diff}): put them back, "
                                  f"or start fresh with ckpt_path=null (or another name=...)")

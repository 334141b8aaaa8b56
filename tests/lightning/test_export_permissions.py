"""Every file of an export follows the user's umask (issue 20: model.safetensors was written 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from kronos.lightning.export import ExportCallback
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

TOKENIZER = dict(d_in=6, d_model=16, n_heads=2, ff_dim=32, n_enc_layers=1, n_dec_layers=1, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
                 zeta=0.05, group_size=4)
PREDICTOR = dict(s1_bits=4, s2_bits=4, n_layers=1, d_model=16, n_heads=2, ff_dim=32, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


def _export(model: torch.nn.Module, stage: str, export_dir: Path) -> None:
    """Run the export callback's end-of-fit path (what training runs) on ``model``."""
    trainer = SimpleNamespace(is_global_zero=True, checkpoint_callbacks=[], global_step=1, current_epoch=0,
                              world_size=1, num_nodes=1, precision="32-true", strategy=object())
    module = SimpleNamespace(model=model, stage=stage, finetune=None)
    ExportCallback(str(export_dir)).on_fit_end(trainer, module)  # type: ignore[arg-type]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_every_export_file_follows_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    old = os.umask(umask)
    try:
        torch.manual_seed(0)
        _export(KronosTokenizer(**TOKENIZER), "tokenizer", tmp_path / "tokenizer")
        _export(Kronos(**PREDICTOR), "predictor", tmp_path / "predictor")
    finally:
        os.umask(old)
    for kind in ("tokenizer", "predictor"):
        folder = tmp_path / kind
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "training_info.json"} <= names, names
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
        modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()}
        assert modes == {name: oct(file_mode) for name in names}
    # The weights still load after the write path changed.
    assert isinstance(Kronos.from_pretrained(tmp_path / "predictor"), Kronos)

"""A run that trained no step never replaces a trained export."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from kronos.lightning.export import ExportCallback


def test_no_step_trained_keeps_the_existing_export(tmp_path: Path) -> None:
    """Regression (hostile round): trainer.max_steps=0 exported untrained weights over a trained export."""
    export = tmp_path / "tokenizer"
    export.mkdir()
    (export / "config.json").write_text('{"trained": true}')
    (export / "model.safetensors").write_bytes(b"trained weights")
    callback = ExportCallback(str(export))
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, checkpoint_callbacks=[])
    callback.on_fit_end(trainer, SimpleNamespace(model=None))  # type: ignore[arg-type]
    assert (export / "model.safetensors").read_bytes() == b"trained weights"
    assert callback.exported is None

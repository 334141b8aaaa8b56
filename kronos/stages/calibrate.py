"""The calibration step at the end of the predictor stage: the sampling temperature chosen on validation.

Runs on rank zero after the export is written, when ``calibration.enabled``; see :mod:`kronos.calibration`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from kronos.calibration import CalibrationSettings, calibrate_export
from kronos.experiment import Experiment
from kronos.inference.settings import SamplingSettings, calibration_of, unset_keys, with_calibration
from kronos.stages.common import weight_source


def calibration_settings(cfg: DictConfig) -> CalibrationSettings:
    """``calibration.*`` as settings (checked before any training when the predictor stage runs)."""
    node = cfg.get("calibration")
    return CalibrationSettings.from_config(OmegaConf.to_container(node, resolve=True) if node is not None else None)


def calibrate_stage(cfg: DictConfig, datamodule: Any, experiment: Experiment, produced: Mapping[str, Path]
                    ) -> dict[str, Any] | None:
    """Choose the temperature for the predictor this command exported; the record written (None: disabled)."""
    from kronos.inference.loading import load_predictor

    settings = calibration_settings(cfg)
    if not settings.enabled or "predictor" not in produced:
        return None
    tokenizer = weight_source(cfg, "tokenizer", experiment, produced)
    predictor = load_predictor(tokenizer.location, str(produced["predictor"]), clip=float(cfg.data.clip))
    return calibrate_export(predictor, datamodule, produced["predictor"], settings).as_dict()


def calibrated_sampling(sampling: SamplingSettings, block: Any, predictor: str | None
                        ) -> tuple[SamplingSettings, dict[str, Any]]:
    """A stage's sampling with its null T / top_p / spread taken from ``predictor``'s recorded calibration.

    Args:
        sampling: the stage's validated settings (null keys already hold the stage's default).
        block: the config's ``<stage>.sampling`` node (which keys the user left null).
        predictor: the predictor weights the stage loads (directory or hub id).
    Returns:
        (settings, the ``sampling_source`` record for metrics.json: ``{T, top_p, spread}`` used and where each came
        from, plus the validation coverage before/after when a calibration was used).
    """
    plain = OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else dict(block or {})
    record = calibration_of(predictor)
    used, source = with_calibration(sampling, unset_keys(plain), record, where=str(predictor or ""))
    out: dict[str, Any] = {"T": used.T, "top_p": used.top_p, "spread": used.spread, "from": source}
    if record is not None and any(v.startswith("calibration") for v in source.values()):
        out["validation"] = {"before": record.before, "after": record.after, "windows": record.windows}
    return used, out

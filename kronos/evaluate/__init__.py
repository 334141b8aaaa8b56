"""Forecast evaluation (``stage=evaluate``): models and baselines scored on the same rolling origins.

Modules: ``settings`` (the ``evaluate`` config), ``origins`` (which windows are scored), ``baselines``
(naive, drift, hist_vol), ``metrics`` (pure score functions), ``scoring`` (per-element scores and
summaries), ``tasks`` (the paper's price, return, volatility and generation tasks on the same origins),
``runner`` (``run_evaluate``) and ``report`` (metrics.json, origins.csv, plots, report.html).
"""

from kronos.evaluate.runner import ModelForecaster, run_evaluate
from kronos.evaluate.settings import EvaluateConfigError, EvaluateSettings, ModelSpec

__all__ = ["EvaluateConfigError", "EvaluateSettings", "ModelForecaster", "ModelSpec", "run_evaluate"]

"""Forecast evaluation (``stage=evaluate``): models and baselines scored on the same rolling origins.

Modules: ``settings`` (the ``evaluate`` config), ``origins`` (which windows are scored, and the training
closes the ``garch`` baseline is estimated on), ``baselines`` (the path baselines naive, drift, hist_vol),
``scoring`` (per-element accuracy scores and summaries over :mod:`kronos.scores`), ``task_table`` (one
record per task: name, when it applies, headline metric, columns, definition, runner), ``tasks`` (the
paper's price, return, volatility and generation tasks on the same origins), ``runner`` (``run_evaluate``)
and ``report`` (metrics.json, origins.csv, plots, report.html).
"""

from kronos.evaluate.runner import ModelForecaster, run_evaluate
from kronos.evaluate.settings import EvaluateConfigError, EvaluateSettings, ModelSpec

__all__ = ["EvaluateConfigError", "EvaluateSettings", "ModelForecaster", "ModelSpec", "run_evaluate"]

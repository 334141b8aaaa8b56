"""Forecasting with Kronos: KronosPredictor, exact KV-cached generation and sampling."""

from kronos.inference.predictor import KronosPredictor
from kronos.inference.samples import ForecastSamples
from kronos.inference.settings import SamplingSettings
from kronos.inference.token_sampling import sample_from_logits
from kronos.inference.validation import ForecastInputError

__all__ = ["ForecastInputError", "ForecastSamples", "KronosPredictor", "SamplingSettings", "sample_from_logits"]

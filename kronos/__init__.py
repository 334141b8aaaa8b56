"""Kronos: tokenizer, autoregressive predictor and fast inference for K-line (OHLCV) data."""

from kronos.inference.predictor import KronosPredictor
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

__all__ = ["Kronos", "KronosTokenizer", "KronosPredictor"]
__version__ = "0.1.0"

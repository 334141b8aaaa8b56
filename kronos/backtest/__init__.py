"""Backtest stage: forecasts on the test split, signals, IC/RankIC, Qlib top-k dropout portfolio, report."""

from kronos.backtest.runner import run_backtest

__all__ = ["run_backtest"]

"""Backtest stage: forecasts on the test split, signals, IC/RankIC with t-statistics beside naive baselines,
Qlib top-k dropout portfolios under the market's rules, report."""

from kronos.backtest.runner import run_backtest
from kronos.backtest.settings import BacktestSettings

__all__ = ["BacktestSettings", "run_backtest"]

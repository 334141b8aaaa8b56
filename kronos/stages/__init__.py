"""Stage runners of ``python -m kronos.train``: one module per stage (fit, backtest, evaluate)."""

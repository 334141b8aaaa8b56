"""Stage runners of ``python -m kronos.train``: one module per stage, helpers they share in ``common``.

``fit`` trains the tokenizer and predictor (Lightning), ``backtest`` and ``evaluate`` consume the
experiment's exports. They sit above ``kronos.lightning`` / ``kronos.backtest`` / ``kronos.inference``;
nothing below imports them.
"""

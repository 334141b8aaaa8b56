"""The paper's downstream tasks, scored in ``stage=evaluate`` on the accuracy task's rolling origins.

One module per task, each pure (arrays in, dicts out): ``price`` (IC/RankIC of the predicted path),
``returns`` (cross-sectional IC/RankIC of the predicted H-step return, beside the rules of
:mod:`kronos.rules`), ``volatility`` (realised variance against ``hist_vol``, ``ewma`` and a GARCH(1,1)
estimated on the training split), ``generation`` (discriminative and predictive scores and stylised facts
against ``bootstrap``, ``garch_sim`` and ``random_walk``). ``comparison`` holds what they share (valid
forecasts, per-date losses, Diebold–Mariano tests, verdicts); ``suite`` runs the records of
:data:`kronos.evaluate.task_table.TASK_TABLE` from the forecasts of the evaluate stage.
"""

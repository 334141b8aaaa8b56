"""The paper's downstream tasks, scored in ``stage=evaluate`` on the accuracy task's rolling origins.

One module per task, each pure (arrays in, dicts out): ``price`` (IC/RankIC of the predicted path),
``returns`` (cross-sectional IC/RankIC of the predicted H-step return), ``volatility`` (realised
variance against ``hist_vol``, ``ewma`` and a BIC-chosen ARCH/GARCH), ``generation`` (discriminative
and predictive scores and stylised facts against ``bootstrap``, ``garch_sim`` and ``random_walk``).
``comparison`` holds the per-date losses, Diebold–Mariano tests and verdict sentences they share;
``suite`` runs them from the forecasts of the evaluate stage.
"""

TASKS: tuple[str, ...] = ("price", "return", "volatility", "generation")

__all__ = ["TASKS"]

"""The backtest's words (kronos.backtest.verdict): comparisons through kronos.verdicts, labelled money lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.backtest.verdict import comparisons, headline_lines, money_verdict


def _row(rank_ic: float, t: float, p: float, *, spread: float = 0.01, spread_t: float = 3.0, spread_p: float = 0.003,
         alpha: float = 0.2, alpha_t: float = 2.5, alpha_p: float = 0.01, after: float = 0.1,
         after_p: float = 0.2) -> dict:
    return {"ic": {"trade_return": {"rank_ic": rank_ic, "rank_ic_t": t, "rank_ic_p": p}},
            "factor": {"quantiles": 5, "spread": {"mean": spread, "t": spread_t, "p": spread_p}},
            "portfolio": {"alpha": {"annualized": alpha, "t": alpha_t, "p": alpha_p, "beta": 1.0},
                          "alpha_after_cost": {"annualized": after, "t": 1.2, "p": after_p, "beta": 1.0},
                          "excess_return_without_cost": {"annualized_return": 0.25, "t": 2.2},
                          "excess_return_with_cost": {"annualized_return": 0.05, "t": 0.4},
                          "break_even_cost_bps": 12.5}}


def _metrics(**model: float) -> dict:
    return {"headline_label": "trade_return", "signal": "trade", "baselines": ["momentum"],
            "model": _row(0.05, 4.0, 0.0001, **model), "momentum": _row(0.01, 0.8, 0.4),
            "statistics": {"rank_ic_ci": [0.03, 0.07], "rank_ic_permutation_p": 1 / 201, "n_perm": 200},
            "significance": {"momentum": {"verdict": "model is not significantly different from momentum on X."}}}


def test_p_at_the_permutation_floor_reads_as_a_bound_in_the_headline_and_verdict() -> None:
    metrics = _metrics()
    assert "permutation p < 1/201 (0.005)" in headline_lines(metrics)[1]
    assert "permutation p < 1/201 (0.005)" in money_verdict(metrics)
    assert "p = 0.005" not in money_verdict(metrics)


def test_money_lines_say_what_they_measure_and_break_even_sits_with_excess_return() -> None:
    lines = headline_lines(_metrics() | {"verdict": "V"})
    titles = [line.split(":")[0] for line in lines]
    excess = [i for i, t in enumerate(titles) if t.startswith("Top-k excess return")]
    alpha = [i for i, t in enumerate(titles) if t.startswith("Top-k alpha")]
    even = next(i for i, t in enumerate(titles) if "break-even" in t)
    assert len(excess) == 2 and len(alpha) == 2 and excess[-1] < even < alpha[0]
    assert "excess return" in titles[even]
    for i in excess + alpha:
        assert "annualised by summing daily returns" in titles[i]
    assert lines[-1] == "V"


def test_money_needs_significance_not_a_positive_point_estimate() -> None:
    """A positive alpha with p = 0.3 is not "makes money"; the best-baseline sentence is the comparison's."""
    text = money_verdict(_metrics(alpha_t=1.0, alpha_p=0.3))
    assert "no significantly positive top-k alpha" in text and "makes money" not in text
    assert text.endswith("Against the best baseline by RankIC (momentum): model is not significantly different "
                         "from momentum on X.")
    paid = money_verdict(_metrics())
    assert "makes money before cost" in paid and "After cost the top-k alpha is not significantly positive" in paid
    assert "excess return breaks even at 12.5 bps" in paid


def test_model_against_a_baseline_uses_paired_tests_on_common_dates() -> None:
    days = pd.bdate_range("2024-01-01", periods=60)
    rng = np.random.default_rng(0)
    spreads = {"model": pd.Series(rng.normal(0.001, 0.01, 60), days),
               "momentum": pd.Series(rng.normal(0.0, 0.01, 60), days)}
    report = pd.DataFrame({"return": rng.normal(0, 0.01, 60), "bench": 0.0, "cost": 0.0}, index=days)
    found = comparisons("model", "momentum", _metrics(), rank_ic={"t": 1.5, "p": 0.14}, spreads=spreads, overlap=1,
                        portfolios={"model": report, "momentum": report.assign(
                            **{"return": report["return"] - 0.005 + rng.normal(0, 0.001, 60)})})
    assert [c.outcome for c in found] == ["is not significantly different from", found[1].outcome, "beats"]
    assert found[0].sentence().startswith("model is not significantly different from momentum on mean daily RankIC")
    diff = spreads["model"] - spreads["momentum"]
    assert found[1].t == pytest.approx(diff.mean() / (diff.std() / np.sqrt(60)))
    assert "top-k excess return over the benchmark before cost" in found[2].metric
    assert found[2].t > 10 and found[2].model_value == 0.25

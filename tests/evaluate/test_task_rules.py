"""The evaluate tasks' rules: baselines worth beating, one point forecast, invalid forecasts as failures, one
task table, and verdict words that follow the test."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos import scores
from kronos.evaluate.tasks import generation as gen
from kronos.evaluate.tasks import price, returns
from kronos.evaluate.tasks.comparison import comparisons, verdict

FEATURES = ("open", "high", "low", "close", "volume", "amount")
ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * 10**9


def _volume_market(n_dates: int, n_series: int, L: int, H: int, rng: np.random.Generator):
    """Lookbacks [N, L, F] whose last-row abnormal volume announces the next H rows' drift, and the realised closes."""
    n = n_dates * n_series
    log_ret = rng.normal(0, 0.01, size=(n, L))
    vol = np.exp(rng.normal(10, 0.3, size=(n, L)))
    close = 20 * np.exp(np.cumsum(log_ret, axis=1))
    rows = np.stack([close, close * 1.01, close * 0.99, close, vol, vol * close], axis=-1)
    surprise = np.log(vol[:, -1]) - np.log(vol[:, -21:-1]).mean(axis=1)
    future = close[:, -1:] * np.exp(np.cumsum(0.01 * surprise[:, None] + rng.normal(0, 0.005, size=(n, H)), axis=1))
    dates = np.repeat(np.arange(n_dates, dtype=np.int64) * DAY, n_series)
    return rows, future, dates


def test_the_return_task_carries_the_abnormal_volume_rule_defined_once_with_the_backtest() -> None:
    from kronos.backtest.exposures import wide_features

    rng = np.random.default_rng(0)
    hist, future, dates = _volume_market(30, 12, 40, 5, rng)
    signal = returns.rule_signal("volume", hist, FEATURES, 5)
    # The backtest's feature on the same rows (one series as a wide frame) is the same number.
    one = pd.DataFrame(hist[0, :, 4][:, None])
    wide = wide_features(pd.DataFrame(hist[0, :, 3][:, None]), one)
    assert signal[0] == pytest.approx(wide["abnormal_volume"].to_numpy()[-1, 0])
    assert returns.rule_signal("low_vol", hist, FEATURES, 5)[0] == pytest.approx(-wide["volatility"].to_numpy()[-1, 0])
    realised, _ = returns.realised_return(hist[:, -1, 3], future)
    instruments = np.tile(np.arange(12).astype(str), 30)
    rows = {rule: returns.score_returns(returns.rule_signal(rule, hist, FEATURES, 5), realised, dates, instruments, 1)
            for rule in returns.RETURN_RULES}
    assert rows["volume"]["rank_ic"] > 0.6                                   # the planted signal, found
    assert max(abs(rows[r]["rank_ic"]) for r in ("momentum", "reversal", "low_vol")) < 0.2
    # A model that ranks at random is compared with the volume rule, not with a random-path baseline.
    rows["kronos"] = returns.score_returns(rng.normal(size=len(dates)), realised, dates, instruments, 1)
    found, dm = comparisons(rows, ["kronos"], list(returns.RETURN_RULES), "rank_ic", "RankIC", True, 1)
    assert dm["kronos"]["against"] == "volume" and found[0].outcome == "loses to"


def test_every_task_reads_the_one_point_forecast_the_median() -> None:
    """Paths whose mean and median rank the series in opposite orders: the task follows the median."""
    rng = np.random.default_rng(1)
    n_series, S, H = 10, 5, 4
    last = np.full(n_series, 100.0)
    median_end = 100 + np.arange(n_series, dtype=float)                     # median ranks up
    paths = np.repeat(median_end[:, None, None], S, axis=1).repeat(H, axis=2).copy()
    paths[:, 0, :] -= 1000 * np.arange(n_series)[:, None] / 10 + 5          # one low path drags the mean down
    paths[:, 0, :] = np.maximum(paths[:, 0, :], 1.0)
    mean_end = paths[:, :, -1].mean(axis=1)
    assert np.corrcoef(mean_end, median_end)[0, 1] < 0
    point = scores.point_forecast(paths[:, :, -1], axis=1) / last - 1.0
    realised = median_end / last - 1.0 + rng.normal(0, 1e-4, n_series)
    row = returns.score_returns(point, realised, np.zeros(n_series, np.int64), np.arange(n_series).astype(str), 1)
    assert row["rank_ic"] == pytest.approx(1.0)
    from kronos.evaluate.task_table import POINT_FORECAST, TASK_TABLE

    assert POINT_FORECAST == "median" and scores.POINT_FORECAST_NAME.startswith("median")
    assert all("median" in t.definition for t in TASK_TABLE if t.name in ("accuracy", "price", "return"))


def test_an_invalid_return_forecast_is_ranked_at_the_wrong_end_of_its_date() -> None:
    rng = np.random.default_rng(2)
    n = 20
    realised = rng.normal(0, 0.02, n)
    dates = np.zeros(n, np.int64)
    perfect = returns.score_returns(realised, realised, dates, np.arange(n).astype(str), 1)
    invalid = np.zeros(n, bool)
    invalid[np.argmax(realised)] = True                                      # its best origin, made impossible
    failed = returns.score_returns(realised, realised, dates, np.arange(n).astype(str), 1, invalid=invalid)
    assert perfect["rank_ic"] == pytest.approx(1.0) and failed["invalid"] == 1
    ranks = pd.Series(realised).rank().to_numpy()
    moved = ranks.copy()
    moved[invalid] = 0                                                       # ranked below every other
    assert failed["rank_ic"] == pytest.approx(np.corrcoef(pd.Series(moved).rank(), ranks)[0, 1])


def test_an_invalid_price_forecast_scores_minus_one_at_its_origin() -> None:
    rng = np.random.default_rng(3)
    real = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(8, 6, 4)), axis=1))
    invalid = np.zeros(8, bool)
    invalid[:2] = True
    row = price.score_price(real, real, np.repeat(np.arange(4, dtype=np.int64), 2), 1, invalid=invalid)
    assert row["invalid"] == 2 and row["origins"] == 8
    assert row["rank_ic"] == pytest.approx((6 * 1.0 - 2) / 8)


def test_generation_floors_nothing_and_scores_an_impossible_window_as_told_apart() -> None:
    """The old code floored a negative close at 1e-12 (a log return of about -27) and kept the window."""
    rng = np.random.default_rng(4)
    n, L, G = 80, 30, 6
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(n, L + G)), axis=1))
    vol = np.exp(rng.normal(10, 0.2, size=(n, L + G)))
    rows = np.stack([close, close * 1.005, close * 0.995, close, vol, vol * close], axis=-1)
    hist, real = rows[:, :L], rows[:, L:]
    donor = rng.permutation(n)                                              # real windows of other origins
    generated = real[donor] * (hist[:, -1, 3] / hist[donor, -1, 3])[:, None, None]
    generated[..., 4:] = real[donor][..., 4:]
    generated[:5, 3, 3] = -0.5                                               # five impossible closes
    ok = gen.valid_windows(generated, FEATURES)
    assert (~ok).sum() == 5 and gen.valid_windows(real, FEATURES).all()
    anchors = gen.Anchors.from_lookback(hist, FEATURES)
    feats = gen.window_features(generated, anchors, FEATURES)
    assert np.isnan(feats[:5]).any() and not np.isfinite(feats[:5]).all()   # no floor: no -27 log return
    facts = gen.stylized_facts(generated[ok], anchors.take(ok), FEATURES)
    real_facts = gen.stylized_facts(real, anchors, FEATURES)
    assert abs(facts["return_kurtosis"] - real_facts["return_kurtosis"]) < 1
    r_std, g_std = gen.standardise(gen.window_features(real, anchors, FEATURES), feats)
    dates = np.repeat(np.arange(n // 4, dtype=np.int64), 4)
    row = gen.discriminative(r_std, g_std, dates, seed=0, epochs=5, valid=ok)
    assert row["invalid_windows"] == 5
    all_bad = gen.discriminative(r_std, g_std, dates, seed=0, epochs=5, valid=np.arange(n) >= 10)
    assert all_bad["discriminative_score"] <= row["discriminative_score"] + 0.1


def test_the_accuracy_task_scores_an_invalid_forecast_as_the_worst_of_that_origin() -> None:
    from kronos.evaluate.scoring import fail_invalid, score_paths, summarise

    rng = np.random.default_rng(5)
    n, S, H, L = 12, 8, 3, 10
    hist = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(n, L)), axis=1))
    future = hist[:, -1:] * np.exp(np.cumsum(rng.normal(0, 0.02, size=(n, H)), axis=1))
    good = future[:, None, :] * np.exp(rng.normal(0, 0.01, size=(n, S, H)))
    bad = good.copy()
    bad[0, 0, 1] = -3.0                                                      # one negative close at origin 0
    kw = dict(coverage_levels=(0.5, 0.8, 0.9), quantile_levels=(0.5,), rng=np.random.default_rng(0))
    table = {"kronos": score_paths(bad, hist, future, **kw), "naive": score_paths(
        scores.naive_paths(hist[:, -1], H), hist, future, **kw)}
    assert table["kronos"].invalid.tolist() == [True] + [False] * (n - 1)
    fail_invalid(table, future, hist[:, -1])
    worst = np.maximum(np.abs(good[0].mean(axis=0) * 0 + table["naive"].abs_err[0]), 0)
    assert table["kronos"].abs_err[0] == pytest.approx(worst)               # naive is the only valid one there
    assert all(c[0].sum() == 0 for c in table["kronos"].covered.values())
    summary = summarise(table["kronos"], future, slice(None), coverage_levels=(0.5, 0.8, 0.9), quantile_levels=(0.5,),
                        pit_bins=5)
    assert summary["invalid"] == 1


def test_the_words_follow_the_diebold_mariano_test() -> None:
    """Today's main job said "kronos beats hist_vol ... DM t = 1.39" (p 0.17)."""
    days = np.arange(60)
    rng = np.random.default_rng(6)
    base = rng.normal(0, 1, 60)
    rows = {"kronos": {"rank_ic": 0.05, "_loss": dict(zip(days.tolist(), (base - 0.1).tolist()))},
            "hist_vol": {"rank_ic": 0.01, "_loss": dict(zip(days.tolist(), (base + rng.normal(0, 1.5, 60)).tolist()))}}
    found, dm = comparisons(rows, ["kronos"], ["hist_vol"], "rank_ic", "RankIC", True, 1)
    assert abs(dm["kronos"]["t"]) < 1.96
    assert "is not significantly different from hist_vol" in verdict(found)
    assert "kronos: 3 invalid forecasts scored as failures" in verdict(found, {"kronos": 3})


def test_the_suite_loops_over_one_task_table_and_settings_do_not_import_the_tasks() -> None:
    from kronos.evaluate import report, settings
    from kronos.evaluate.task_table import SUITE_TASKS, TASK_TABLE

    assert SUITE_TASKS == ("price", "return", "volatility", "generation")
    for spec in TASK_TABLE:
        assert spec.metric in spec.columns or spec.name == "accuracy"
        if spec.runner is not None:
            assert callable(spec.resolve("runner")) and callable(spec.resolve("applies"))
    assert report.TASK_COLUMNS == {t.name: t.columns for t in TASK_TABLE if t.runner is not None}
    tree = ast.parse(Path(settings.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m and m.startswith("kronos.evaluate.tasks")]
    # Source files hold the task names once: the table (and the YAML's sampling blocks, keyed by it).
    for path in ("kronos/evaluate/tasks/suite.py", "kronos/evaluate/settings.py"):
        text = (ROOT / path).read_text()
        assert '"generation"' not in text.replace('TASKS_BY_NAME["generation"]', ""), path


def test_the_package_docstring_names_modules_that_exist() -> None:
    import re

    import kronos.evaluate as ev

    modules = re.findall(r"``(\w+)`` \(", ev.__doc__.split("Modules:")[1])
    assert len(modules) >= 8
    for name in modules:
        importlib.import_module(f"kronos.evaluate.{name}")

"""The paper's tasks (kronos/evaluate/tasks): each one can fail, on markets built so the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from kronos.evaluate.tasks import generation as gen
from kronos.evaluate.tasks import price, returns, volatility as vol
from kronos.evaluate.tasks.comparison import comparisons, valid_forecasts, window_overlap

FEATURES = ("open", "high", "low", "close", "volume", "amount")


def _dates(n_dates: int, n_series: int) -> np.ndarray:
    return np.repeat(np.arange(n_dates, dtype=np.int64) * 86_400 * 10**9, n_series)


def test_a_forecaster_given_the_realised_path_scores_ic_one_on_price() -> None:
    rng = np.random.default_rng(0)
    real = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(40, 8, 4)), axis=1))
    real[5, 6:] = np.nan                                     # a suspension: the steps that exist are scored
    dates = _dates(10, 4)
    perfect = price.score_price(real, real, dates, overlap=1)
    assert perfect["ic"] == pytest.approx(1.0) and perfect["rank_ic"] == pytest.approx(1.0)
    assert perfect["origins"] == 40
    reversed_ = price.score_price(real[:, ::-1], real, dates, overlap=1)
    noise = price.score_price(real[rng.permutation(40)], real, dates, overlap=1)
    assert reversed_["rank_ic"] < 0 and abs(noise["rank_ic"]) < 0.3
    assert noise["rank_ic_t"] < perfect["rank_ic"] * 10  # finite, defined


def test_flat_predicted_paths_have_no_price_score() -> None:
    real = np.random.default_rng(1).normal(10, 1, size=(6, 5, 4))
    out = price.score_price(np.full_like(real, 10.0), real, _dates(3, 2), overlap=1)
    assert out["undefined"] == 6 and np.isnan(out["rank_ic"])


def test_return_task_ranks_series_per_date() -> None:
    rng = np.random.default_rng(2)
    n_dates, n_series, H = 30, 8, 5
    last = rng.uniform(5, 50, size=n_dates * n_series)
    future = last[:, None] * np.exp(np.cumsum(rng.normal(0, 0.02, size=(len(last), H)), axis=1))
    future[3, -1] = np.nan                                    # stops trading before step H: scored to step H-1
    future[4, :] = np.nan                                     # no future close at all: no label
    realised, partial = returns.realised_return(last, future)
    assert partial[3] and np.isfinite(realised[3]) and np.isnan(realised[4])
    assert realised[3] == pytest.approx(future[3, -2] / last[3] - 1)
    dates = _dates(n_dates, n_series)
    names = np.tile(np.arange(n_series).astype(str), n_dates)
    oracle = returns.score_returns(realised, realised, dates, names, overlap=1)
    assert oracle["rank_ic"] == pytest.approx(1.0) and oracle["dates"] == n_dates
    anti = returns.score_returns(-realised, realised, dates, names, overlap=1)
    assert anti["rank_ic"] == pytest.approx(-1.0)


def test_realised_variance_sums_squared_log_returns_over_the_steps_that_exist() -> None:
    last = np.array([100.0, 100.0])
    closes = np.array([[110.0, 99.0, 100.0], [110.0, np.nan, 121.0]])
    observed = np.isfinite(closes)
    rv = vol.realised_variance(last, closes, observed)
    assert rv[0] == pytest.approx(np.log(1.1) ** 2 + np.log(99 / 110) ** 2 + np.log(100 / 99) ** 2)
    assert rv[1] == pytest.approx(np.log(1.1) ** 2 + np.log(1.1) ** 2)   # the gap's return counted once
    paths = np.stack([closes, closes], axis=1)                              # [N, S, H]
    assert vol.realised_variance(last, paths, observed) == pytest.approx(np.stack([rv, rv], axis=1), nan_ok=True)
    step = np.full((2, 3), 0.01)
    assert vol.horizon_variance(step, np.array([[True, True, False], [False, False, False]]))[0] == pytest.approx(0.02)


def test_mincer_zarnowitz_recovers_alpha_and_beta_set_by_hand() -> None:
    rng = np.random.default_rng(3)
    forecast = rng.uniform(1e-4, 4e-3, size=4000)
    realised = 2e-4 + 0.7 * forecast + rng.normal(0, 5e-5, size=4000)
    row = vol.score_volatility(forecast, realised, _dates(400, 10))
    assert row["mz_alpha"] == pytest.approx(2e-4, abs=1e-5)
    assert row["mz_beta"] == pytest.approx(0.7, abs=0.01)
    assert row["mz_p"] < 1e-6                                                # alpha = 0, beta = 1 rejected
    honest = vol.score_volatility(forecast, forecast * np.exp(rng.normal(0, 0.05, 4000)), _dates(400, 10))
    assert honest["mz_p"] > 1e-3 and honest["qlike"] < row["qlike"]


def _garch_market(n_series: int, n_steps: int, rng: np.random.Generator, omega=2e-6, alpha=0.15, beta=0.8,
                  nu: float | None = None) -> np.ndarray:
    """Closes [n_series, n_steps] of GARCH(1,1) log returns (t errors with ``nu``, else Gaussian)."""
    r = np.empty((n_series, n_steps))
    var = np.full(n_series, omega / (1 - alpha - beta))
    for t in range(n_steps):
        z = rng.standard_normal(n_series) if nu is None else rng.standard_t(nu, n_series) * np.sqrt((nu - 2) / nu)
        r[:, t] = np.sqrt(var) * z
        var = omega + alpha * r[:, t] ** 2 + beta * var
    return 50 * np.exp(np.cumsum(r, axis=1))


def _vol_panel(closes: np.ndarray, start: int, L: int, H: int, stride: int):
    """Origins of every series every ``stride`` rows from ``start``: hist [N, L], future [N, H], names, dates."""
    n_series, n_steps = closes.shape
    starts = np.arange(start, n_steps - L - H, stride)
    hist = np.stack([closes[i, s:s + L] for s in starts for i in range(n_series)])
    future = np.stack([closes[i, s + L:s + L + H] for s in starts for i in range(n_series)])
    names = np.tile(np.arange(n_series).astype(str), len(starts))
    return hist, future, names, np.repeat(starts.astype(np.int64), n_series)


def test_on_a_garch_t_market_the_train_fitted_garch_beats_hist_vol_and_ewma_on_qlike() -> None:
    """GARCH(1,1)-t by construction, the evaluate window of the synthetic market (lookback 60, horizon 5): the
    baseline estimated on the training split and filtered through each lookback must win; fitted on the
    lookback alone (the old baseline) it did not."""
    rng = np.random.default_rng(4)
    L, H, stride, n_series, n_train = 60, 5, 5, 8, 1000
    closes = _garch_market(n_series, n_train + 1500, rng, omega=4e-6, alpha=0.08, beta=0.9, nu=6.0)
    train = {str(i): closes[i, :n_train] for i in range(n_series)}
    hist, future, names, dates = _vol_panel(closes, n_train - L, L, H, stride)
    observed = np.isfinite(future)
    realised = vol.realised_variance(hist[:, -1], future, observed)
    garch = vol.GarchBaseline.fit(train)
    assert garch.cost(names)["series"] == n_series and garch.failures == 0 and garch.fits == 1
    alpha, beta = garch.pooled
    assert 0.05 < alpha < 0.12 and 0.85 < beta < 0.95                       # near the true (0.08, 0.90)
    forecasts = {"garch": garch.variance(names, hist, H), "hist_vol": vol.hist_vol_variance(hist, H),
                 "ewma": vol.ewma_variance(hist, H)}
    rows = vol.score_volatility_table({k: vol.horizon_variance(v, observed) for k, v in forecasts.items()}, {},
                                      realised, dates)
    assert rows["garch"]["qlike"] < rows["ewma"]["qlike"] < rows["hist_vol"]["qlike"]
    found, _ = comparisons(rows, ["garch"], ["hist_vol"], "qlike", "QLIKE", False, window_overlap(H, stride))
    assert found[0].t > 1.96 and found[0].sentence().startswith("garch beats hist_vol on QLIKE")


def test_garch_levels_are_per_series_and_a_series_without_training_data_takes_its_lookback_level() -> None:
    rng = np.random.default_rng(5)
    closes = _garch_market(4, 1200, rng, omega=4e-6, alpha=0.08, beta=0.9, nu=6.0)
    closes[3] = 20 * np.exp(2 * np.log(closes[3] / closes[3, 0]))             # twice the volatility
    garch = vol.GarchBaseline.fit({"s0": closes[0], "s1": closes[1], "s3": closes[3], "short": closes[2, :10]})
    assert set(garch.params) == {"s0", "s1", "s3"} and garch.cost(np.array(["short"]))["series_without_parameters"] \
        == ["short"]
    alpha, beta = garch.pooled
    levels = {k: garch.params[k][0] / (1 - alpha - beta) for k in garch.params}
    r3 = np.diff(np.log(closes[3]))
    assert levels["s3"] == pytest.approx(np.mean(r3 ** 2))
    assert levels["s0"] == pytest.approx(np.mean(np.diff(np.log(closes[0])) ** 2))
    lookback = closes[2:3, 100:160]
    step = garch.variance(np.array(["short"]), lookback, 200)
    assert step[0, -1] == pytest.approx(np.mean(np.diff(np.log(lookback[0])) ** 2), rel=0.05)   # reverts to its level
    empty = vol.GarchBaseline.fit({})
    assert empty.pooled is None
    with pytest.raises(ValueError, match="not estimated on a training split"):
        empty.variance(np.array(["s0"]), lookback, 5)


def test_hist_vol_is_one_estimator_in_every_registry() -> None:
    from kronos.evaluate.baselines import hist_vol_paths, hist_vol_sigma

    rng = np.random.default_rng(1)
    hist = 50 * np.exp(np.cumsum(rng.normal(0.002, 0.02, size=(30, 40)), axis=1))
    sigma = np.diff(np.log(hist), axis=1).std(axis=1, ddof=1)
    assert hist_vol_sigma(hist) == pytest.approx(sigma)
    assert vol.hist_vol_variance(hist, 3) == pytest.approx(np.repeat(sigma[:, None] ** 2, 3, axis=1))
    paths = hist_vol_paths(hist, 200, 400, rng)
    steps = np.diff(np.log(paths), axis=2).std(axis=(1, 2))
    assert np.median(steps / sigma) == pytest.approx(1.0, abs=0.02)


def test_an_invalid_volatility_forecast_is_scored_as_a_failure_on_the_same_origins() -> None:
    """A path with a negative close: the origin stays, counted, with the worst QLIKE of that origin (the old code
    took the log of the negative price and dropped the origin for the model only)."""
    rng = np.random.default_rng(2)
    n, H = 60, 5
    last = np.full(n, 10.0)
    future = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(n, H)), axis=1))
    observed = np.isfinite(future)
    paths = np.repeat(future[:, None], 3, axis=1).copy()
    paths[:3, 1, 2] = -1.0                                              # three impossible forecasts
    realised = vol.realised_variance(last, future, observed)
    invalid = ~valid_forecasts(paths, observed)
    assert invalid.sum() == 3
    model = vol.realised_variance(last, paths, observed).mean(axis=1)
    flat = np.full(n, 0.02 ** 2 * H)
    rows = vol.score_volatility_table({"kronos": model, "flat": flat}, {"kronos": invalid}, realised, _dates(12, 5))
    assert rows["kronos"]["origins"] == rows["flat"]["origins"] == n
    assert rows["kronos"]["invalid"] == 3 and rows["kronos"]["mz_origins"] == n - 3
    per_origin_flat = vol.qlike(flat, realised)
    assert rows["kronos"]["qlike"] == pytest.approx(per_origin_flat[:3].sum() / n)   # exact elsewhere, worst there


def _candle_market(n: int, L: int, G: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fat-tailed clustered candles: lookbacks [n, L, F] and their real continuations [n, G, F]."""
    closes = _garch_market(n, L + G, rng, omega=5e-6, alpha=0.2, beta=0.75, nu=2.5)
    prev = np.concatenate([closes[:, :1], closes[:, :-1]], axis=1)
    wick = np.exp(np.abs(rng.normal(0, 0.004, size=(2, n, L + G))))
    high = np.maximum(prev, closes) * wick[0]
    low = np.minimum(prev, closes) / wick[1]
    volume = 1e6 * np.exp(rng.normal(0, 0.3, size=(n, L + G)) + 20 * np.abs(np.log(closes / prev)))
    rows = np.stack([prev, high, low, closes, volume, volume * closes], axis=-1)
    return rows[:, :L], rows[:, L:]


def test_block_bootstrap_looks_real_and_a_gaussian_walk_does_not() -> None:
    rng = np.random.default_rng(5)
    hist, real = _candle_market(1200, 120, 20, rng)
    anchors = gen.Anchors.from_lookback(hist, FEATURES)
    dates = np.arange(len(hist), dtype=np.int64) // 8
    real_feats = gen.window_features(real, anchors, FEATURES)
    scores = {}
    for name, windows in (("bootstrap", gen.bootstrap_windows(hist, 20, FEATURES, rng)),
                          ("random_walk", gen.random_walk_windows(hist, 20, FEATURES, rng))):
        r_std, g_std = gen.standardise(real_feats, gen.window_features(windows, anchors, FEATURES))
        scores[name] = gen.discriminative(r_std, g_std, dates, seed=0, epochs=30)["discriminative_score"]
    assert scores["bootstrap"] > 0.42                        # near 0.5: hard to tell from real windows
    assert scores["random_walk"] < scores["bootstrap"] - 0.1  # Gaussian returns against fat tails: found out
    facts = gen.compare_facts(gen.stylized_facts(real, anchors, FEATURES),
                              gen.stylized_facts(gen.random_walk_windows(hist, 20, FEATURES, rng), anchors, FEATURES))
    assert facts["return_kurtosis"]["real"] > facts["return_kurtosis"]["generated"] + 1


def test_predictive_score_rewards_a_generator_with_the_real_dynamics() -> None:
    rng = np.random.default_rng(6)
    n, G = 800, 6
    real = rng.normal(size=(n, G, 5)).astype(np.float32)
    real[:, -1, 3] = real[:, -2, 3] * 0.8 + rng.normal(0, 0.3, n)  # the last close return follows the one before
    faithful = rng.normal(size=(n, G, 5)).astype(np.float32)
    faithful[:, -1, 3] = faithful[:, -2, 3] * 0.8 + rng.normal(0, 0.3, n)
    wrong = faithful.copy()
    wrong[:, -1, 3] = -wrong[:, -2, 3] * 0.8 + rng.normal(0, 0.3, n)  # reversal where the market continues
    assert gen.predictive(real, faithful, seed=0, epochs=20) > 0.8
    assert gen.predictive(real, wrong, seed=0, epochs=20) < -0.5


def _origins(n_dates: int = 40, n_series: int = 5, L: int = 30, H: int = 6):
    from kronos.evaluate.origins import Origins

    rng = np.random.default_rng(7)
    hist, real = _candle_market(n_dates * n_series, L, H, rng)
    n = len(hist)
    future_close = real[..., 3].copy()
    real[2, 3:] = np.nan                                      # a delisting: kept, its missing steps counted
    future_close[2, 3:] = np.nan
    return Origins(
        x_hist=np.zeros((n, L, 6), np.float32), x_stamp=np.zeros((n, L, 5), np.int64),
        y_stamp=np.zeros((n, H, 5), np.int64), mean=np.zeros((n, 6), np.float32), std=np.ones((n, 6), np.float32),
        hist_close=hist[..., 3], future_close=future_close,
        instrument=np.tile(np.array([f"S{i}" for i in range(n_series)], dtype=object), n_dates),
        datetime=np.repeat(np.arange(n_dates, dtype=np.int64) * 86_400 * 10**9, n_series),
        hist_raw=hist, future_raw=real, features=FEATURES, missing={"origins_with_missing_future": 1})


def test_the_suite_scores_an_oracle_as_perfect_and_shares_forecast_passes() -> None:
    from kronos.evaluate.settings import EvaluateSettings
    from kronos.evaluate.tasks.suite import run_tasks

    origins = _origins()
    calls = []

    def oracle(name, sampling):
        calls.append((name, sampling))
        paths = np.repeat(origins.future_raw[:, None], sampling.sample_count, axis=1)
        return np.where(np.isfinite(paths), paths, 1.0)      # missing steps: any value, they are not scored

    sampling = {t: {"T": 0.6, "top_k": 0, "top_p": 0.9, "sample_count": 3, "seed": 0} for t in ("price", "return")}
    sampling["volatility"] = {"T": 0.9, "top_k": 0, "top_p": 0.9, "sample_count": 2, "seed": 0}
    sampling["generation"] = {"T": 1.0, "top_k": 0, "top_p": 0.95, "sample_count": 1, "seed": 0}
    settings = EvaluateSettings.from_config(dict(
        split="test", stride=6, baselines=["naive", "drift", "hist_vol"], models=[], kronos_data_end=None,
        sampling=dict(sample_count=4, T=1.0, top_k=0, top_p=1.0, seed=0), batch_size=64, max_context=512,
        device="cpu",
        coverage_levels=[0.5, 0.8, 0.9], quantile_levels=[0.5], pit_bins=5, group_by=None, tasks=None,
        task_sampling=sampling, task_options={"garch_refit_every": 10, "classifier_epochs": 5, "max_windows": 4000}))
    result = run_tasks(["kronos"], oracle, origins, settings, stride=6)
    tasks = result.tasks
    assert len(calls) == 3                                    # price and return share one pass
    assert tasks["price"]["models"]["kronos"]["rank_ic"] == pytest.approx(1.0)
    assert tasks["return"]["models"]["kronos"]["rank_ic"] == pytest.approx(1.0)
    assert tasks["volatility"]["models"]["kronos"]["qlike"] == pytest.approx(0.0, abs=1e-12)
    assert tasks["volatility"]["models"]["kronos"]["mz_beta"] == pytest.approx(1.0)
    for task in ("price", "return", "volatility"):
        assert tasks[task]["verdict"].startswith("kronos beats "), tasks[task]["verdict"]
        assert tasks[task]["dm"]["kronos"]["t"] > 2
    # The real continuations themselves are indistinguishable from the real windows: error 0.5 exactly.
    assert tasks["generation"]["models"]["kronos"]["discriminative_score"] == pytest.approx(0.5)
    assert set(tasks["generation"]["models"]) == {"kronos", "bootstrap", "garch_sim", "random_walk"}
    facts = tasks["generation"]["models"]["kronos"]["stylized_facts"]
    assert facts["return_kurtosis"]["distance"] == pytest.approx(0.0)
    assert result.summary["missing"] == {"origins_with_missing_future": 1}


def test_one_task_named_as_a_string_is_that_task_and_unknown_names_are_refused() -> None:
    """``evaluate.tasks=price`` on the command line is one task, not the letters p, r, i, c, e."""
    from kronos.evaluate.settings import EvaluateConfigError, EvaluateSettings

    base = dict(split="test", stride=6, baselines=["naive"], models=[], kronos_data_end=None,
                sampling=dict(sample_count=2, T=1.0, top_k=0, top_p=1.0, seed=0), batch_size=8, max_context=512,
                device="cpu", coverage_levels=[0.5, 0.8, 0.9], quantile_levels=[0.5], pit_bins=5, group_by=None,
                task_sampling={t: {"T": 1.0, "top_k": 0, "top_p": 0.9, "sample_count": 2, "seed": 0}
                               for t in ("price", "return", "volatility", "generation")},
                task_options={"garch_refit_every": 10, "classifier_epochs": 5, "max_windows": 4000})
    assert EvaluateSettings.from_config({**base, "tasks": "price"}).tasks == ("price",)
    with pytest.raises(EvaluateConfigError, match=r"unknown \['prices'\]"):
        EvaluateSettings.from_config({**base, "tasks": "prices"})

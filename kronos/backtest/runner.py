"""``run_backtest``: forecasts -> signals -> labels -> IC with t-statistics and top-k portfolios -> report.

What each number means (the report says the same in words):

- Signals: the model's predicted return from the anchor (``settings.anchor``), and each naive baseline
  (``settings.baselines``) on exactly the same (date, instrument) rows.
- Labels (kronos.backtest.labels): the headline ``trade_return`` is what Qlib's next-day execution
  earns; ``next_return`` and ``horizon_return`` are secondary rows.
- Significance: every IC row has a t-statistic and the number of days; the model's daily RankIC minus
  each baseline's gets a t-statistic and a sentence.
- Warnings: survivorship bias (no membership data), capped topk/n_drop, a price-index benchmark, and
  flagged price rows.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from lightning.pytorch.loggers import MLFlowLogger

from kronos.backtest import labels as label_defs
from kronos.backtest.analysis_cache import FIGURE_MODULES, AnalysisCache
from kronos.backtest.exposures import lookback_features, neutralize
from kronos.backtest.factor import factor_report, spread_series
from kronos.backtest.forecast import fill_split, forecast_split, read_split
from kronos.backtest.guards import drop_empty_baselines, guard_backtest
from kronos.backtest.markets import resolve_region
from kronos.backtest.metrics import headline_statistics, ic_report
from kronos.backtest.performance import ANNUALISATION, bars_per_year, long_short
from kronos.backtest.report import write_report
from kronos.backtest.settings import PATH_SIGNALS, SIMULATE_ALL, BacktestSettings
from kronos.backtest.signals import anchor_gap_signal, baseline_signal, model_signal, oracle_signal
from kronos.backtest.verdict import baseline_significance, headline_lines, money_verdict
from kronos.data.qlib_provider import build_provider_from_panel, qlib_symbol
from kronos.data.synthetic import SyntheticSource
from kronos.inference.candles import repairs_of_table
from kronos.inference.ranks import Ranks
from kronos.inference.store import (ForecastKey, ForecastStore, cache_mode, data_fingerprint, forecast_key,
                                    predictor_fingerprint)

log = logging.getLogger(__name__)
HEADLINE_LABEL = label_defs.HEADLINE_LABEL


def is_daily(panel: Any) -> bool:
    """True when no instrument has two rows on one calendar date (Qlib's day frequency applies)."""
    return not any(pd.DatetimeIndex(ts).normalize().has_duplicates for ts in panel.timestamps)


def resolve_provider(datamodule: Any, provider_uri: str | None, provider_dir: Path) -> Path:
    """The Qlib provider holding the datamodule's instruments.

    ``provider_uri`` wins; a Qlib-sourced datamodule reuses its own provider; any other source
    (CSV, synthetic) is written to ``provider_dir`` with ``build_provider_from_panel``.
    """
    if provider_uri:
        return Path(provider_uri).expanduser()
    if datamodule.source.provider_uri is not None:
        return Path(datamodule.source.provider_uri).expanduser()
    return build_provider_from_panel(datamodule.panel, provider_dir, overwrite=True)


def cap_portfolio(topk: int, n_drop: int, universe: int) -> tuple[int, int, str | None]:
    """(topk, n_drop, note): a topk of the whole universe (or more) holds the benchmark, so it is capped
    to half the universe, and n_drop scales by the same ratio so the share of the book replaced each day
    stays what was configured: ``round(n_drop * new_topk / topk)`` (halves up), at least 1 (unless n_drop
    is 0), at most the new topk; e.g. 50 -> 12 with n_drop 5 gives 1. The note says what changed (None:
    nothing)."""
    if topk < universe:
        return topk, n_drop, None
    new_topk = max(1, universe // 2)
    scaled = math.floor(n_drop * new_topk / topk + 0.5)
    new_drop = 0 if n_drop == 0 else min(max(1, scaled), new_topk)
    return new_topk, new_drop, (f"backtest.topk={topk} is not smaller than the universe ({universe} instruments a "
                                f"day): capped to topk={new_topk}, and n_drop={n_drop} scaled with it to "
                                f"n_drop={new_drop} (about {new_drop / new_topk:.0%} of the book replaced a day, "
                                f"{n_drop / topk:.0%} configured; holding everything would simply be the "
                                "equal-weighted universe). Set backtest.topk below the universe size.")


def _headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers for experiment loggers: IC family (headline label) and, when run, the portfolio, the
    quantile spread and the top-k alpha."""
    flat: dict[str, float] = {}
    label = metrics["headline_label"]
    for name in [*metrics.get("model_signals", ["model"]), *metrics["baselines"]]:
        ic = metrics[name]["ic"][label]
        flat.update({f"backtest/{name}_ic": ic["ic"], f"backtest/{name}_icir": ic["icir"],
                     f"backtest/{name}_rank_ic": ic["rank_ic"], f"backtest/{name}_rank_icir": ic["rank_icir"],
                     f"backtest/{name}_rank_ic_t": ic["rank_ic_t"]})
        pf = metrics[name].get("portfolio")
        if not pf:  # intraday data: no portfolio was simulated
            continue
        flat.update({
            f"backtest/{name}_annualized_return": pf["return_with_cost"]["annualized_return"],
            f"backtest/{name}_excess_return_without_cost": pf["excess_return_without_cost"]["annualized_return"],
            f"backtest/{name}_excess_return_with_cost": pf["excess_return_with_cost"]["annualized_return"],
            f"backtest/{name}_information_ratio": pf["excess_return_with_cost"]["information_ratio"],
            f"backtest/{name}_max_drawdown": pf["excess_return_with_cost"]["max_drawdown"],
            f"backtest/{name}_turnover": pf["turnover"],
            f"backtest/{name}_spread": metrics[name]["factor"]["spread"]["mean"],
            f"backtest/{name}_spread_t": metrics[name]["factor"]["spread"]["t"],
            f"backtest/{name}_alpha": pf["alpha"]["annualized"],
            f"backtest/{name}_alpha_after_cost": pf["alpha_after_cost"]["annualized"],
        })
    return {k: float(v) for k, v in flat.items() if v is not None}  # None: not computed (kronos.backtest.guards)


def log_to(logger: Any, metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> None:
    """Send headline numbers to a Lightning logger and the plots to its experiment when it takes images
    (TensorBoard ``add_image``, Comet ``log_image``)."""
    logger.log_metrics(_headline(metrics))
    experiment = getattr(logger, "experiment", None)
    if hasattr(experiment, "add_image"):
        import matplotlib.image

        for name, path in figures.items():
            experiment.add_image(f"backtest/{name}", matplotlib.image.imread(path)[..., :3], dataformats="HWC")
    elif hasattr(experiment, "log_image") and not isinstance(logger, MLFlowLogger):
        # (MLflow's log_image takes other arguments; it gets the whole report via log_report_artifacts.)
        for name, path in figures.items():
            experiment.log_image(str(path), name=f"backtest_{name}")


def _benchmark_note(benchmark: str | None, total_return: bool) -> str | None:
    """The price-index caveat, unless the benchmark is the equal-weighted universe or flagged total-return."""
    if benchmark in (None, "", "equal_weight") or total_return:
        return None
    return (f"The benchmark {benchmark} is treated as a price index (dividends excluded) while the portfolio "
            "earns dividends through adjusted prices, so excess returns are overstated by about the index's "
            "dividend yield (~2 %/year for CSI300). Use a total-return index (e.g. a CSV of its closes) and set "
            "backtest.benchmark_total_return=true.")


def run_backtest(predictor: Any, datamodule: Any, settings: BacktestSettings, out_dir: str | Path, *,
                 logger: Any = None, weights: Mapping[str, Any] | None = None,
                 provider_dir: Path | None = None, store_dir: Path | None = None,
                 ranks: Ranks | None = None, sampling_source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Forecast the test split, score the model's signals and the baselines, analyse and trade each, report.

    Args:
        predictor: ``KronosPredictor`` (``forecast_normalized``).
        datamodule: ``KronosDataModule`` (``eval_dataloader``, ``panel``, ``horizon``, ``source``, ``benchmark``).
        settings: the backtest settings (``BacktestSettings.from_config(cfg.backtest)``).
        out_dir: report directory (``outputs/<name>/backtest``), replaced atomically.
        logger: optional Lightning logger for the headline numbers and plots.
        weights: what was loaded, ``{tokenizer: ..., predictor: ...}`` (recorded in metrics.json; their
            locations enter the forecast store's key).
        provider_dir: where a Qlib provider built from CSV/synthetic data goes (default: beside
            ``out_dir``, ``<out_dir>/../qlib_provider``).
        store_dir: the experiment's forecast stores (``Experiment.forecasts_dir``): forecasts are read from
            and written to the store of their key there (None: forecast in memory, nothing kept).
        ranks: the processes sharing the forecasts (default: one); every rank fills its share of the store,
            rank zero alone analyses and reports (the others return ``{"rank": r, "forecast_store": ...}``).
        sampling_source: which T / top_p were used and where they came from (metrics.json ``sampling_source``).

    Returns:
        The metrics written to ``metrics.json`` plus ``figures`` ({name: PNG path}).
    """
    if not isinstance(settings, BacktestSettings):
        raise TypeError("run_backtest takes BacktestSettings: use BacktestSettings.from_config(cfg.backtest)")
    ranks = ranks or Ranks()
    sampling = settings.sampling if settings.sampling.seed is not None else \
        dataclasses.replace(settings.sampling, seed=0)  # reproducible without an experiment seed too
    used = dataclasses.replace(settings, sampling=sampling)
    clock = time.perf_counter()
    forecasts, store_info = forecast_step(predictor, datamodule, used, weights, store_dir, ranks)
    if forecasts is None:
        return {"rank": ranks.rank, "forecast_store": store_info}
    store_info["seconds_forecasting"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    out_dir = Path(out_dir)
    analysis_dir = Path(store_info["path"]) / "analysis" if store_info.get("path") else None
    cache = AnalysisCache(analysis_dir)
    rows = prepare_rows(forecasts, datamodule, used,
                        Path(provider_dir) if provider_dir is not None else out_dir.parent / "qlib_provider")
    signals, descriptions, diagnostics = signal_step(rows, used)
    used, skipped = drop_empty_baselines(signals, used)  # e.g. volume on data without volume
    rows.warnings += skipped
    metrics = base_metrics(rows, used, out_dir.parent.name, weights, signals, descriptions, sampling_source)
    daily_ics = ic_step(metrics, rows, {**signals, **diagnostics}, cache)
    factor_daily, long_short_daily = factor_step(metrics, rows, signals, used, cache)
    portfolios, topk, n_drop = portfolio_step(metrics, rows, signals, used, datamodule, cache)
    verdict_step(metrics, rows, signals, daily_ics, factor_daily, portfolios, used)
    store_info["seconds_analysis"] = round(time.perf_counter() - clock, 3)
    store_info["analysis_results"] = cache.record()
    finish_metrics(metrics, rows, used, topk, n_drop, store_info)
    table = signal_table(rows, {**signals, **diagnostics})
    metrics, figures = write_report(out_dir, metrics, table, portfolios,
                                    {name: d[HEADLINE_LABEL] for name, d in daily_ics.items() if name in signals},
                                    factors=factor_daily, long_short=long_short_daily,
                                    figure_cache=AnalysisCache(analysis_dir, FIGURE_MODULES) if analysis_dir else None)
    log.info("backtest report written to %s (benchmark %s)", out_dir, metrics["benchmark"])
    if logger is not None:
        log_to(logger, metrics, figures)
    return metrics | {"figures": {k: str(v) for k, v in figures.items()}}


@dataclass
class Rows:
    """The backtest's (datetime, instrument) rows and what is known about each.

    Attributes:
        forecasts: the reduced forecasts (kronos.backtest.forecast), one row per window, instruments as
            Qlib symbols; labels / features: realised labels and lookback exposures on ``index``.
        index: (datetime, instrument) MultiIndex of those rows; drift: the planted drift (synthetic) or None.
        daily, region, provider, lookback, horizon, bars, overlaps: the market facts the analysis needs;
            membership: whether the data has point-in-time universe membership.
        warnings, notes: report lines found so far; masked: labels masked at limit-up; bad: the price check.
    """

    forecasts: pd.DataFrame
    labels: pd.DataFrame
    features: pd.DataFrame
    index: pd.MultiIndex
    drift: pd.DataFrame | None
    daily: bool
    region: str
    provider: Path | None
    lookback: int
    horizon: int
    bars: float
    overlaps: dict[str, int]
    masked: int
    bad: dict[str, Any] | None
    membership: bool = True
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def backtest_key(predictor: Any, datamodule: Any, settings: BacktestSettings,
                 weights: Mapping[str, Any] | None) -> ForecastKey:
    """The forecast store key of a backtest: weights, data, the test split's windows, sampling, context, cache."""
    return forecast_key(weights=predictor_fingerprint(predictor, weights), data=data_fingerprint(datamodule),
                        windows={"split": settings.split, "stride": 1}, sampling=settings.sampling,
                        max_context=settings.max_context, cache=cache_mode(predictor),
                        precision=getattr(predictor, "precision", "fp32"))


def forecast_step(predictor: Any, datamodule: Any, settings: BacktestSettings, weights: Mapping[str, Any] | None,
                  store_dir: Path | None, ranks: Ranks) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The reduced forecasts of the test split (None on ranks other than zero) and the store's record.

    Without ``store_dir`` the split is forecast in memory; with it, the windows the key's store lacks are
    forecast (shared among ``ranks``) and written there, and rank zero reads the whole split back.
    """
    kwargs = dict(sampling=settings.sampling, batch_size=settings.batch_size, split=settings.split, start=settings.start,
                  end=settings.end, anchor=settings.anchor, deal_price=settings.deal_price)
    if store_dir is None:
        frame = forecast_split(predictor, datamodule, **kwargs)
        return frame, {"key": None, "computed": int(len(frame)), "reused": 0}
    key = backtest_key(predictor, datamodule, settings, weights)
    store = ForecastStore.open(store_dir, key)
    counts = fill_split(predictor, datamodule, store, ranks=ranks, **kwargs)
    info = {"key": key.digest, "path": str(store.root), **counts.as_dict()}
    if not ranks.is_zero:
        return None, info
    store.write_manifest(counts)
    log.info("backtest: forecasts from store %s: %d reused, %d computed", key.digest, counts.reused, counts.computed)
    frame = read_split(predictor, datamodule, store, **kwargs)
    return frame, info | {"fields": dict(key.fields)}


def prepare_rows(forecasts: pd.DataFrame, datamodule: Any, settings: BacktestSettings, provider_dir: Path) -> Rows:
    """Labels, limit-up masks, exposures, the planted drift and the price check on the forecasts' rows."""
    panel, source, horizon = datamodule.panel, datamodule.source, int(datamodule.horizon)
    daily = is_daily(panel)
    region = resolve_region(settings.region, source.region)
    labels = label_defs.panel_labels(panel, forecasts, deal_price=settings.deal_price, horizon=horizon)
    limit_up = label_defs.entry_at_limit_up(panel, forecasts, deal_price=settings.deal_price, region=region,
                                            threshold=settings.limit_threshold)
    masked = int((limit_up & labels[HEADLINE_LABEL].notna()).sum())
    labels.loc[limit_up, HEADLINE_LABEL] = float("nan")
    features = lookback_features(panel, forecasts)
    drift = planted_drift(source, panel)
    forecasts["instrument"] = forecasts["instrument"].map(qlib_symbol)
    index = pd.MultiIndex.from_arrays([forecasts["datetime"], forecasts["instrument"]], names=["datetime", "instrument"])
    labels.index = index
    features.index = index
    if drift is not None:
        drift.columns = [qlib_symbol(c) for c in drift.columns]
    provider = resolve_provider(datamodule, settings.provider_uri, provider_dir) if daily else None
    rows = Rows(forecasts, labels, features, index, drift, daily, region, provider, int(datamodule.lookback), horizon,
                bars_per_year(pd.DatetimeIndex(panel.calendar), region), label_defs.overlaps(horizon), masked, None,
                membership=getattr(panel, "member", None) is not None)
    if daily:
        _price_step(rows, settings)
    return rows


def _price_step(rows: Rows, settings: BacktestSettings) -> None:
    """Flag bad price rows; with ``drop_bad_prices`` drop the decisions whose trade touches them."""
    bad = _check_prices(rows.provider, rows.region, settings, rows.forecasts)
    if bad["count"]:
        rows.warnings.append(
            f"{bad['count']} price row(s) look wrong (return disagrees with the provider's $change or exceeds the "
            "market's limit by a wide margin); see bad_prices in metrics.json"
            + ("; the decisions whose trade touches them were dropped." if settings.drop_bad_prices
               else ". Set backtest.drop_bad_prices=true to drop the decisions they touch."))
    if settings.drop_bad_prices and bad["dropped"]:
        keep = ~bad.pop("_mask")
        rows.forecasts = rows.forecasts[keep].reset_index(drop=True)
        rows.labels, rows.features, rows.index = rows.labels[keep], rows.features[keep], rows.index[keep]
    bad.pop("_mask", None)
    rows.bad = bad


def signal_step(rows: Rows, settings: BacktestSettings) -> tuple[dict[str, pd.Series], dict[str, str],
                                                                 dict[str, pd.Series]]:
    """(signals, their descriptions, diagnostics): every signal row, plus the anchor-gap rows when
    ``anchor=reconstructed``."""
    signals, descriptions = build_signals(rows.forecasts, rows.features, settings, rows.drift)
    diagnostics: dict[str, pd.Series] = {}
    if settings.anchor == "reconstructed":
        gap = anchor_gap_signal(rows.forecasts)
        diagnostics = {"anchor_gap": gap, "model_ex_gap": neutralize(signals["model"], gap.to_frame())}
        descriptions |= {"anchor_gap": "-(reconstructed anchor - last close) / last close",
                         "model_ex_gap": "model with anchor_gap regressed out per day"}
        rows.warnings.append("anchor=reconstructed: predicted returns are measured from the tokenizer's "
                             "reconstruction of the last close. The anchor gap alone (anchor_gap) and the model "
                             "with the gap regressed out per day (model_ex_gap) are reported: skill that vanishes "
                             "in model_ex_gap is an artefact.")
    return signals, descriptions, diagnostics


def base_metrics(rows: Rows, settings: BacktestSettings, name: str, weights: Mapping[str, Any] | None,
                 signals: Mapping[str, pd.Series], descriptions: Mapping[str, str],
                 sampling_source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The metrics' description of the run (before any statistic); warns when there is no membership data."""
    forecasts = rows.forecasts
    if not rows.membership:
        rows.warnings.append("The data has no universe membership: every instrument is taken as a member on every "
                             "day, including ones chosen because they survived to today. Results are "
                             "survivorship-biased (usually flattering); use data with point-in-time membership "
                             "(e.g. data=qlib_csi300).")
    return {
        "name": name,
        "headline_label": HEADLINE_LABEL,
        "signal": settings.signal,
        "labels": label_defs.describe(settings.deal_price, rows.horizon),
        "label_overlap": rows.overlaps,
        "baselines": list(settings.baselines),
        "model_signals": [n for n in signals if n == "model" or n.startswith("model_")],
        "signals": dict(descriptions),
        "weights": {"tokenizer": None, "predictor": None}
        | {kind: (dict(v) if isinstance(v, Mapping) else v) for kind, v in (weights or {}).items()},
        "n_forecasts": int(len(forecasts)),
        "candle_repairs": repairs_of_table(forecasts).report(),
        "sampling_source": dict(sampling_source) if sampling_source else None,
        "n_instruments": int(forecasts["instrument"].nunique()),
        "start": str(forecasts["datetime"].min().date()),
        "end": str(forecasts["datetime"].max().date()),
        "region": rows.region,
        "bars_per_year": rows.bars,
        "provider_uri": str(rows.provider) if rows.provider else None,
        "benchmark": None,
        "membership": rows.membership,
        "limit_up": {"labels_masked": rows.masked},
    }


def ic_step(metrics: dict[str, Any], rows: Rows, signals: Mapping[str, pd.Series],
            cache: AnalysisCache) -> dict[str, dict[str, pd.DataFrame]]:
    """IC rows of every signal into ``metrics``; returns the daily ICs per signal and label."""
    daily_ics: dict[str, dict[str, pd.DataFrame]] = {}
    for name, signal in signals.items():
        metrics[name] = {"ic": None, "portfolio": None}
        metrics[name]["ic"], daily_ics[name] = cache.get(
            "ic", [signal, rows.labels, rows.overlaps], lambda: ic_report(signal, rows.labels, rows.overlaps))
    return daily_ics


def factor_step(metrics: dict[str, Any], rows: Rows, signals: Mapping[str, pd.Series], settings: BacktestSettings,
                cache: AnalysisCache) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Factor analysis and the long-short quantile portfolio of every signal into ``metrics``."""
    factor_daily: dict[str, pd.DataFrame] = {}
    long_short_daily: dict[str, pd.Series] = {}
    one_way = (settings.costs.open_cost + settings.costs.close_cost) / 2.0
    label = rows.labels[HEADLINE_LABEL]
    factor_args = dict(quantiles=settings.quantiles, overlap=rows.overlaps[HEADLINE_LABEL], lags=rows.horizon)
    long_short_args = dict(quantiles=settings.quantiles, cost=one_way, bars=rows.bars)
    for name, signal in signals.items():
        metrics[name]["factor"], factor_daily[name] = cache.get(
            "factor", [signal, label, factor_args], lambda: factor_report(signal, label, **factor_args))
        metrics[name]["long_short"], long_short_daily[name] = cache.get(
            "long_short", [signal, label, long_short_args], lambda: long_short(signal, label, **long_short_args))
    return factor_daily, long_short_daily


def portfolio_step(metrics: dict[str, Any], rows: Rows, signals: Mapping[str, pd.Series],
                   settings: BacktestSettings, datamodule: Any, cache: AnalysisCache
                   ) -> tuple[dict[str, pd.DataFrame], int, int]:
    """The top-k dropout portfolio of each signal ``backtest.simulate`` names, through Qlib (daily data only),
    into ``metrics``.

    Returns:
        (each signal's daily portfolio report, the topk and n_drop used after capping).
    """
    topk, n_drop = settings.topk, settings.n_drop
    if not rows.daily:
        metrics["portfolio_skipped"] = (
            "intraday data: the top-k dropout portfolio runs on daily bars through Qlib; "
            "resample to daily candles to backtest a portfolio")
        log.warning("backtest: %s (IC metrics only)", metrics["portfolio_skipped"])
        rows.warnings.append(f"No portfolio: {metrics['portfolio_skipped']}.")
        return {}, topk, n_drop
    from kronos.backtest.portfolio import run_topk_dropout  # qlib's backtest engine: only when trading

    universe = int(rows.forecasts.groupby("datetime")["instrument"].nunique().median())
    topk, n_drop, note = cap_portfolio(topk, n_drop, universe)
    benchmark = settings.benchmark if settings.benchmark is not None else getattr(datamodule, "benchmark", None)
    bench_arg = None if benchmark == "equal_weight" else benchmark
    rows.notes.extend(n for n in (note, _benchmark_note(bench_arg, settings.benchmark_total_return)) if n)
    portfolios: dict[str, pd.DataFrame] = {}
    args = dict(topk=topk, n_drop=n_drop, hold_thresh=settings.hold_thresh, account=settings.account,
                costs=dataclasses.asdict(settings.costs), deal_price=settings.deal_price, benchmark=bench_arg,
                region=rows.region, limit_threshold=settings.limit_threshold, risk_degree=settings.risk_degree,
                max_participation=settings.max_participation, bars=rows.bars)
    traded = settings.simulated(list(signals))
    absent = [n for n in settings.simulate if n != SIMULATE_ALL and n not in signals]
    if absent:
        rows.warnings.append(f"backtest.simulate names {', '.join(absent)}, which this run has no signal for "
                             f"(its signals: {', '.join(signals)}); not simulated.")
    for name in traded:
        kept = signals[name].dropna()
        result = cache.get("portfolio", [kept, str(rows.provider), args],
                           lambda: run_topk_dropout(kept, rows.provider, **args))
        metrics[name]["portfolio"] = result.summary | {"long_short": metrics[name]["long_short"]}
        metrics["benchmark"] = result.benchmark
        portfolios[name] = result.report
    untraded = [n for n in signals if n not in traded]
    if untraded:
        metrics["portfolio_not_simulated"] = untraded
        rows.notes.append(f"Top-k portfolio simulated for {', '.join(traded)} only (backtest.simulate="
                          f"{list(settings.simulate)}); {', '.join(untraded)} keep their IC, factor analysis and "
                          "long-short portfolio. backtest.simulate=all trades every signal through Qlib.")
    metrics["limit_up"]["buys_blocked"] = {n: metrics[n]["portfolio"]["blocked_buys_limit_up"] for n in traded}
    return portfolios, topk, n_drop


def verdict_step(metrics: dict[str, Any], rows: Rows, signals: Mapping[str, pd.Series],
                 daily_ics: Mapping[str, Mapping[str, pd.DataFrame]], factor_daily: Mapping[str, pd.DataFrame],
                 portfolios: Mapping[str, pd.DataFrame], settings: BacktestSettings) -> None:
    """Headline statistics, the capture ratio (synthetic), model-vs-baseline tests and the verdict."""
    metrics["statistics"] = headline_statistics(signals["model"], rows.labels[HEADLINE_LABEL],
                                                daily_ics["model"][HEADLINE_LABEL]["rank_ic"],
                                                spread_series(factor_daily["model"]))
    if rows.drift is not None:
        oracle_ic = metrics["oracle"]["ic"][HEADLINE_LABEL]["rank_ic"]
        metrics["capture_ratio"] = (float(metrics["model"]["ic"][HEADLINE_LABEL]["rank_ic"] / oracle_ic)
                                    if oracle_ic else float("nan"))
    metrics["significance"] = baseline_significance(
        metrics, daily_ics, rows.overlaps, {n: spread_series(f) for n, f in factor_daily.items()}, portfolios)
    metrics["annualisation"] = ANNUALISATION
    rows.warnings += guard_backtest(metrics, signals, rows.labels[HEADLINE_LABEL], quantiles=settings.quantiles,
                                    portfolios=portfolios)  # null with a reason what cannot be computed
    metrics["verdict"] = money_verdict(metrics)
    metrics["headline"] = headline_lines(metrics)


def finish_metrics(metrics: dict[str, Any], rows: Rows, settings: BacktestSettings, topk: int, n_drop: int,
                   store_info: Mapping[str, Any]) -> None:
    """Warnings, notes, the settings used and the forecast store's record; logs the headline."""
    metrics["bad_prices"] = rows.bad
    metrics["forecast_store"] = dict(store_info)
    if store_info.get("key"):
        rows.notes.append(f"Forecasts: store {store_info['key']} ({store_info['path']}): {store_info['reused']} "
                          f"reused, {store_info['computed']} computed.")
    metrics["warnings"] = rows.warnings
    metrics["notes"] = rows.notes
    metrics["settings"] = settings.as_dict() | {"region_resolved": rows.region, "topk_used": topk,
                                                "n_drop_used": n_drop, "lookback": rows.lookback, "horizon": rows.horizon}
    for line in metrics["headline"]:
        log.info("backtest: %s", line)
    for text in rows.warnings + rows.notes:
        log.warning("backtest: %s", text)


def signal_table(rows: Rows, signals: Mapping[str, pd.Series]) -> pd.DataFrame:
    """``signals.csv``: one row per (datetime, instrument) with every signal, label and forecast column."""
    forecasts = rows.forecasts
    table = forecasts[["datetime", "instrument"]].copy()
    for name, signal in signals.items():
        table[name] = signal.to_numpy()
    for label in rows.labels.columns:
        table[label] = rows.labels[label].to_numpy()
    extra = [c for c in forecasts.columns if c not in ("datetime", "instrument")]
    table[extra] = forecasts[extra].to_numpy()
    return table


def planted_drift(source: Any, panel: Any) -> pd.DataFrame | None:
    """The synthetic market's planted drift, wide [calendar x panel names] (None for other data)."""
    if not isinstance(source, SyntheticSource):
        return None
    drift = source.paths().drift  # [n_instruments, n_steps], the panel's own order and calendar
    return pd.DataFrame(drift.T, index=pd.DatetimeIndex(panel.timestamps[0]), columns=list(panel.instruments))


def build_signals(forecasts: pd.DataFrame, features: pd.DataFrame, settings: BacktestSettings,
                  drift: pd.DataFrame | None) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Every signal row, on the forecasts' (datetime, instrument) rows, and what each one is.

    ``model`` is the headline (``settings.signal``); ``model_<signal>`` each other signal of
    :data:`PATH_SIGNALS`; then the baselines and, on synthetic data, ``oracle``. With
    ``settings.neutralize`` every model signal has those exposures regressed out per day.
    """
    kinds = [settings.signal] + [k for k in PATH_SIGNALS if k != settings.signal]
    signals: dict[str, pd.Series] = {}
    descriptions: dict[str, str] = {}
    exposure_cols = {"beta": "beta", "volatility": "volatility", "size": "size"}
    for i, kind in enumerate(kinds):
        name = "model" if i == 0 else f"model_{kind}"
        signal = model_signal(forecasts, kind).rename(name)
        text = _SIGNAL_TEXT[kind].format(anchor=settings.anchor)
        if settings.neutralize:
            signal = neutralize(signal, features[[exposure_cols[e] for e in settings.neutralize]]).rename(name)
            text += f", neutralised per day on {', '.join(settings.neutralize)}"
        signals[name], descriptions[name] = signal, text + (" (headline)" if i == 0 else "")
    for name in settings.baselines:
        signals[name] = baseline_signal(forecasts, name, features)
        descriptions[name] = _BASELINE_TEXT[name]
    if drift is not None:
        signals["oracle"] = oracle_signal(forecasts, drift, settings.deal_price)
        descriptions["oracle"] = ("the planted expected return of the traded interval (synthetic data only): "
                                  "the best any forecast can do")
    return signals, descriptions


_BASELINE_TEXT = {"momentum": "return over the last H rows (the recent trend continues)",
                  "reversal": "minus the return over the last H rows (it reverses)",
                  "volume": "today's log volume minus its trailing 20-day mean (abnormal volume)",
                  "low_vol": "minus the trailing 20-day volatility of daily log returns"}
_SIGNAL_TEXT = {
    "mean": "predicted close return from the {anchor} anchor, averaged over steps 1..H (mean of the paths)",
    "last": "predicted close return from the {anchor} anchor at step H (mean of the paths)",
    "max": "largest predicted close return from the {anchor} anchor over steps 1..H (mean of the paths)",
    "min": "smallest predicted close return from the {anchor} anchor over steps 1..H (mean of the paths)",
    "trade": "predicted return over the traded interval deal(t+1) -> deal(t+2), mean over the sample paths",
    "sharpe": "predicted return over the traded interval, mean over its std across the sample paths",
    "prob_up": "share of sample paths whose return over the traded interval is positive",
}


def _check_prices(provider: Path, region: str, settings: BacktestSettings, forecasts: pd.DataFrame) -> dict[str, Any]:
    """Flag bad price rows of the traded universe (kronos.backtest.price_checks) over the test period."""
    from kronos.backtest import price_checks
    from kronos.backtest.portfolio import provider_fields, use_provider

    from kronos.backtest.markets import REGION_QLIB

    use_provider(provider, REGION_QLIB[region])
    universe = sorted(set(forecasts["instrument"]))
    start, end = forecasts["datetime"].min(), forecasts["datetime"].max() + pd.Timedelta(days=7)
    wide = provider_fields(universe, start, end, {"close": "$close", "change": "$change"})
    change = wide["change"] if wide["change"].notna().any().any() else None
    flags = price_checks.flag_rows(wide["close"], change, region, settings.limit_threshold)
    out = price_checks.summary(flags)
    mask = price_checks.touched(flags, forecasts, wide["close"].index)
    out["dropped"] = int(mask.sum()) if settings.drop_bad_prices else 0
    out["_mask"] = mask
    return out

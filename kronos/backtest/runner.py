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
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from lightning.pytorch.loggers import MLFlowLogger

from kronos.backtest import labels as label_defs
from kronos.backtest.exposures import lookback_features, neutralize
from kronos.backtest.factor import factor_report, spread_series
from kronos.backtest.forecast import forecast_split
from kronos.backtest.markets import resolve_region
from kronos.backtest.metrics import compare, headline_statistics, ic_report, verdict
from kronos.backtest.performance import bars_per_year, long_short
from kronos.backtest.report import write_report
from kronos.backtest.settings import ALIAS_NOTE, BASELINE_ALIASES, PATH_SIGNALS, BacktestSettings
from kronos.backtest.signals import anchor_gap_signal, baseline_signal, model_signal, oracle_signal
from kronos.backtest.verdict import headline_lines, money_row, money_verdict
from kronos.data.qlib_provider import build_provider_from_panel, qlib_symbol
from kronos.data.synthetic import SyntheticSource

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
    to half the universe; n_drop to topk. The note says what changed (None: nothing)."""
    if topk < universe:
        return topk, n_drop, None
    new_topk = max(1, universe // 2)
    new_drop = min(n_drop, new_topk)
    return new_topk, new_drop, (f"backtest.topk={topk} is not smaller than the universe ({universe} instruments a "
                                f"day): capped to topk={new_topk}, n_drop={new_drop} (holding everything would "
                                "simply be the equal-weighted universe). Set backtest.topk below the universe size.")


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
    return {k: float(v) for k, v in flat.items()}


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
                 provider_dir: Path | None = None) -> dict[str, Any]:
    """Forecast the test split, score the model's signals and the baselines, analyse and trade each, report.

    Args:
        predictor: ``KronosPredictor`` (``forecast_normalized``).
        datamodule: ``KronosDataModule`` (``eval_dataloader``, ``panel``, ``horizon``, ``source``, ``benchmark``).
        settings: the backtest settings (``BacktestSettings.from_config(cfg.backtest)``).
        out_dir: report directory (``outputs/<name>/backtest``), replaced atomically.
        logger: optional Lightning logger for the headline numbers and plots.
        weights: what was loaded, ``{tokenizer: ..., predictor: ...}`` (recorded in metrics.json).
        provider_dir: where a Qlib provider built from CSV/synthetic data goes (default: beside
            ``out_dir``, ``<out_dir>/../qlib_provider``).

    Returns:
        The metrics written to ``metrics.json`` plus ``figures`` ({name: PNG path}).
    """
    if not isinstance(settings, BacktestSettings):
        raise TypeError("run_backtest takes BacktestSettings: use BacktestSettings.from_config(cfg.backtest)")
    out_dir = Path(out_dir)
    provider_dir = Path(provider_dir) if provider_dir is not None else out_dir.parent / "qlib_provider"
    sampling = settings.sampling
    if sampling.seed is None:  # reproducible without an experiment seed too
        sampling = dataclasses.replace(sampling, seed=0)
    horizon = int(datamodule.horizon)
    panel = datamodule.panel
    source = datamodule.source
    forecasts = forecast_split(predictor, datamodule, sampling=sampling, batch_size=settings.batch_size,
                               split=settings.split, start=settings.start, end=settings.end, anchor=settings.anchor,
                               deal_price=settings.deal_price)
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
    warnings: list[str] = []
    notes: list[str] = []
    provider = resolve_provider(datamodule, settings.provider_uri, provider_dir) if daily else None

    bad = None
    if daily:
        bad = _check_prices(provider, region, settings, forecasts)
        if bad["count"]:
            warnings.append(f"{bad['count']} price row(s) look wrong (return disagrees with the provider's $change "
                            "or exceeds the market's limit by a wide margin); see bad_prices in metrics.json"
                            + ("; the decisions whose trade touches them were dropped." if settings.drop_bad_prices
                               else ". Set backtest.drop_bad_prices=true to drop the decisions they touch."))
        if settings.drop_bad_prices and bad["dropped"]:
            keep = ~bad.pop("_mask")
            forecasts, labels, features = forecasts[keep].reset_index(drop=True), labels[keep], features[keep]
            index = index[keep]
        bad.pop("_mask", None)

    signals, descriptions = build_signals(forecasts, features, settings, drift)
    model_rows = [n for n in signals if n == "model" or n.startswith("model_")]
    diagnostics: dict[str, pd.Series] = {}
    if settings.anchor == "reconstructed":
        gap = anchor_gap_signal(forecasts)
        diagnostics = {"anchor_gap": gap, "model_ex_gap": neutralize(signals["model"], gap.to_frame())}
        descriptions |= {"anchor_gap": "-(reconstructed anchor - last close) / last close",
                         "model_ex_gap": "model with anchor_gap regressed out per day"}
        warnings.append("anchor=reconstructed: predicted returns are measured from the tokenizer's reconstruction "
                        "of the last close. The anchor gap alone (anchor_gap) and the model with the gap regressed "
                        "out per day (model_ex_gap) are reported: skill that vanishes in model_ex_gap is an artefact.")
    if getattr(panel, "member", None) is None:
        warnings.append("The data has no universe membership: every instrument is taken as a member on every day, "
                        "including ones chosen because they survived to today. Results are survivorship-biased "
                        "(usually flattering); use data with point-in-time membership (e.g. data=qlib_csi300).")

    overlaps = label_defs.overlaps(horizon)
    bars = bars_per_year(pd.DatetimeIndex(panel.calendar), region)
    metrics: dict[str, Any] = {
        "name": out_dir.parent.name,
        "headline_label": HEADLINE_LABEL,
        "signal": settings.signal,
        "labels": label_defs.describe(settings.deal_price, horizon),
        "label_overlap": overlaps,
        "baselines": list(settings.baselines),
        "model_signals": model_rows,
        "signals": descriptions,
        "weights": {"tokenizer": None, "predictor": None}
        | {kind: (dict(v) if isinstance(v, Mapping) else v) for kind, v in (weights or {}).items()},
        "n_forecasts": int(len(forecasts)),
        "n_instruments": int(forecasts["instrument"].nunique()),
        "start": str(forecasts["datetime"].min().date()),
        "end": str(forecasts["datetime"].max().date()),
        "region": region,
        "bars_per_year": bars,
        "provider_uri": str(provider) if provider else None,
        "benchmark": None,
        "membership": getattr(panel, "member", None) is not None,
        "limit_up": {"labels_masked": masked},
    }
    daily_ics: dict[str, dict[str, pd.DataFrame]] = {}
    for name, signal in {**signals, **diagnostics}.items():
        metrics[name] = {"ic": None, "portfolio": None}
        metrics[name]["ic"], daily_ics[name] = ic_report(signal, labels, overlaps)

    factor_daily: dict[str, pd.DataFrame] = {}
    long_short_daily: dict[str, pd.Series] = {}
    one_way = (settings.costs.open_cost + settings.costs.close_cost) / 2.0
    for name, signal in signals.items():
        metrics[name]["factor"], factor_daily[name] = factor_report(
            signal, labels[HEADLINE_LABEL], quantiles=settings.quantiles, overlap=overlaps[HEADLINE_LABEL],
            lags=horizon)
        metrics[name]["long_short"], long_short_daily[name] = long_short(
            signal, labels[HEADLINE_LABEL], quantiles=settings.quantiles, cost=one_way, bars=bars)

    portfolios: dict[str, pd.DataFrame] = {}
    topk, n_drop = settings.topk, settings.n_drop
    if not daily:
        metrics["portfolio_skipped"] = (
            "intraday data: the top-k dropout portfolio runs on daily bars through Qlib; "
            "resample to daily candles to backtest a portfolio")
        log.warning("backtest: %s (IC metrics only)", metrics["portfolio_skipped"])
        warnings.append(f"No portfolio: {metrics['portfolio_skipped']}.")
    else:
        from kronos.backtest.portfolio import run_topk_dropout  # qlib's backtest engine: only when trading

        universe = int(forecasts.groupby("datetime")["instrument"].nunique().median())
        topk, n_drop, note = cap_portfolio(topk, n_drop, universe)
        if note:
            notes.append(note)
        benchmark = settings.benchmark if settings.benchmark is not None else getattr(datamodule, "benchmark", None)
        bench_arg = None if benchmark == "equal_weight" else benchmark
        note = _benchmark_note(bench_arg, settings.benchmark_total_return)
        if note:
            notes.append(note)
        for name, signal in signals.items():
            result = run_topk_dropout(
                signal.dropna(), provider, topk=topk, n_drop=n_drop, hold_thresh=settings.hold_thresh,
                account=settings.account, costs=dataclasses.asdict(settings.costs), deal_price=settings.deal_price,
                benchmark=bench_arg, region=region, limit_threshold=settings.limit_threshold,
                risk_degree=settings.risk_degree, max_participation=settings.max_participation, bars=bars,
            )
            metrics[name]["portfolio"] = result.summary | {"long_short": metrics[name]["long_short"]}
            metrics["benchmark"] = result.benchmark
            portfolios[name] = result.report
        metrics["limit_up"]["buys_blocked"] = {n: metrics[n]["portfolio"]["blocked_buys_limit_up"] for n in signals}
    metrics["statistics"] = headline_statistics(signals["model"], labels[HEADLINE_LABEL],
                                                daily_ics["model"][HEADLINE_LABEL]["rank_ic"],
                                                spread_series(factor_daily["model"]))
    if drift is not None:
        oracle_ic = metrics["oracle"]["ic"][HEADLINE_LABEL]["rank_ic"]
        metrics["capture_ratio"] = (float(metrics["model"]["ic"][HEADLINE_LABEL]["rank_ic"] / oracle_ic)
                                    if oracle_ic else float("nan"))

    significance: dict[str, Any] = {}
    for name in settings.baselines:
        significance[name] = {label: compare(daily_ics["model"][label], daily_ics[name][label], overlaps[label])
                              for label in labels.columns}
        significance[name]["verdict"] = verdict("model", name, HEADLINE_LABEL, significance[name][HEADLINE_LABEL],
                                                money=(money_row(metrics["model"]), money_row(metrics[name])))
    metrics["significance"] = significance
    metrics["verdict"] = money_verdict(metrics)
    metrics["headline"] = headline_lines(metrics)
    metrics["bad_prices"] = bad
    _keep_old_names(metrics, notes)
    metrics["warnings"] = warnings
    metrics["notes"] = notes
    used = dataclasses.replace(settings, sampling=sampling)  # the seed the forecasts were drawn with
    metrics["settings"] = used.as_dict() | {"region_resolved": region, "topk_used": topk, "n_drop_used": n_drop,
                                            "lookback": int(datamodule.lookback), "horizon": horizon}
    for line in metrics["headline"]:
        log.warning("backtest: %s", line)
    for text in warnings + notes:
        log.warning("backtest: %s", text)

    table = forecasts[["datetime", "instrument"]].copy()
    for name, signal in {**signals, **diagnostics}.items():
        table[name] = signal.to_numpy()
    for label in labels.columns:
        table[label] = labels[label].to_numpy()
    extra = [c for c in forecasts.columns if c not in ("datetime", "instrument")]
    table[extra] = forecasts[extra].to_numpy()
    metrics, figures = write_report(out_dir, metrics, table, portfolios,
                                    {name: d[HEADLINE_LABEL] for name, d in daily_ics.items() if name in signals},
                                    factors=factor_daily, long_short=long_short_daily)
    log.info("backtest report written to %s (benchmark %s)", out_dir, metrics["benchmark"])
    if logger is not None:
        log_to(logger, metrics, figures)
    return metrics | {"figures": {k: str(v) for k, v in figures.items()}}


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


def _keep_old_names(metrics: dict[str, Any], notes: list[str]) -> None:
    """For one release: repeat each renamed baseline's entry under its old name (``persistence`` = a copy of
    ``momentum``'s IC, portfolio and significance), and say so in ``notes``."""
    import copy

    for old, new in BASELINE_ALIASES.items():
        if new in metrics:
            metrics[old] = copy.deepcopy(metrics[new])
            if new in metrics.get("significance", {}):
                metrics["significance"][old] = copy.deepcopy(metrics["significance"][new])
            notes.append(ALIAS_NOTE)


_BASELINE_TEXT = {"momentum": "return over the last H rows (the recent trend continues; formerly persistence)",
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

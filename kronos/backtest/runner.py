"""``run_backtest``: forecasts -> signals -> IC and top-k portfolio (model and baseline) -> report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from lightning.pytorch.loggers import MLFlowLogger

from data_pipelines.csv_to_qlib import build_provider_from_panel, qlib_symbol
from kronos.backtest.forecast import forecast_split
from kronos.backtest.metrics import ic_report
from kronos.backtest.portfolio import run_topk_dropout
from kronos.backtest.report import write_report
from kronos.backtest.signals import baseline_signal, model_signal

log = logging.getLogger(__name__)
HEADLINE_LABEL = "next_return"


def _plain(cfg: Any) -> dict[str, Any]:
    """The backtest settings as a plain dict (an OmegaConf node is resolved; a full config's
    ``backtest`` group is taken)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra, a core dependency
        pass
    cfg = dict(cfg)
    return dict(cfg["backtest"]) if "backtest" in cfg else cfg


def is_daily(panel: Any) -> bool:
    """True when no instrument has two rows on one calendar date (Qlib's day frequency applies)."""
    return not any(pd.DatetimeIndex(ts).normalize().has_duplicates for ts in panel.timestamps)


def resolve_provider(datamodule: Any, provider_uri: str | None, work_dir: Path) -> tuple[Path, str]:
    """The Qlib provider holding the datamodule's instruments, and its region.

    ``provider_uri`` wins; a Qlib-sourced datamodule reuses its own provider; any other source
    (CSV, synthetic) is written to ``work_dir/qlib_provider`` with ``build_provider_from_panel``.
    """
    source = getattr(datamodule, "source", None)
    region = str(getattr(source, "region", "cn"))
    if provider_uri:
        return Path(provider_uri).expanduser(), region
    if getattr(source, "provider_uri", None) is not None:
        return Path(source.provider_uri).expanduser(), region
    return build_provider_from_panel(datamodule.panel, work_dir / "qlib_provider"), region


def _headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers for experiment loggers: IC family (next-day label) and portfolio, per signal."""
    flat: dict[str, float] = {}
    for name in ("model", "baseline"):
        ic = metrics[name]["ic"][HEADLINE_LABEL]
        pf = metrics[name]["portfolio"]
        flat.update({
            f"backtest/{name}_ic": ic["ic"], f"backtest/{name}_icir": ic["icir"],
            f"backtest/{name}_rank_ic": ic["rank_ic"], f"backtest/{name}_rank_icir": ic["rank_icir"],
            f"backtest/{name}_annualized_return": pf["return_with_cost"]["annualized_return"],
            f"backtest/{name}_excess_return_without_cost": pf["excess_return_without_cost"]["annualized_return"],
            f"backtest/{name}_excess_return_with_cost": pf["excess_return_with_cost"]["annualized_return"],
            f"backtest/{name}_information_ratio": pf["excess_return_with_cost"]["information_ratio"],
            f"backtest/{name}_max_drawdown": pf["excess_return_with_cost"]["max_drawdown"],
            f"backtest/{name}_turnover": pf["turnover"],
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


def run_backtest(predictor: Any, datamodule: Any, cfg: Any, out_dir: str | Path, logger: Any = None) -> dict[str, Any]:
    """Forecast the test split, score the model and the baseline, backtest both through Qlib, report.

    Args:
        predictor: ``KronosPredictor`` (``forecast_normalized``).
        datamodule: ``KronosDataModule`` (``eval_dataloader``, ``panel``, ``horizon``, ``source``).
        cfg: the ``backtest`` config group (``conf/backtest/topk_dropout.yaml``), or a full config holding it.
        out_dir: report directory (``outputs/<name>/backtest``), replaced atomically; a provider built
            from the data goes beside it (``outputs/<name>/qlib_provider``).
        logger: optional Lightning logger for the headline numbers and plots.

    Returns:
        The metrics written to ``metrics.json`` plus ``figures`` ({name: PNG path}).
    """
    settings = _plain(cfg)
    out_dir = Path(out_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings.get("seed", 0)))
        forecasts = forecast_split(
            predictor, datamodule, sample_count=int(settings["sample_count"]), T=float(settings["T"]),
            top_k=int(settings["top_k"]), top_p=float(settings["top_p"]), batch_size=int(settings["batch_size"]),
            start=settings.get("start"), end=settings.get("end"), anchor=str(settings.get("anchor", "last_close")),
        )
    forecasts["instrument"] = forecasts["instrument"].map(qlib_symbol)
    signals = {"model": model_signal(forecasts, settings["signal"]),
               "baseline": baseline_signal(forecasts, settings["baseline"])}
    daily = is_daily(datamodule.panel)
    provider, region = (resolve_provider(datamodule, settings.get("provider_uri"), out_dir.parent)
                        if daily else (None, None))
    metrics: dict[str, Any] = {
        "name": out_dir.parent.name,
        "signals": {"model": f"{settings['signal']} predicted return vs {settings.get('anchor', 'last_close')} close",
                    "baseline": settings["baseline"]},
        "n_forecasts": int(len(forecasts)),
        "n_instruments": int(forecasts["instrument"].nunique()),
        "start": str(forecasts["datetime"].min().date()),
        "end": str(forecasts["datetime"].max().date()),
        "provider_uri": str(provider) if provider else None,
        "benchmark": None,
    }
    if not daily:
        metrics["portfolio_skipped"] = (
            "intraday data: the top-k dropout portfolio runs on daily bars through Qlib; "
            "resample to daily candles to backtest a portfolio")
        log.warning("backtest: %s (IC metrics only)", metrics["portfolio_skipped"])
    portfolios, daily_ics = {}, {}
    for name, signal in signals.items():
        ic, daily_ic = ic_report(signal, forecasts)
        daily_ics[name] = daily_ic[HEADLINE_LABEL]
        if not daily:
            metrics[name] = {"ic": ic, "portfolio": None}
            continue
        result = run_topk_dropout(
            signal, provider, topk=int(settings["topk"]), n_drop=int(settings["n_drop"]),
            hold_thresh=int(settings["hold_thresh"]), account=float(settings["account"]), costs=settings["costs"],
            limit_threshold=settings.get("limit_threshold"), deal_price=str(settings["deal_price"]),
            benchmark=settings.get("benchmark"), region=region,
        )
        metrics[name] = {"ic": ic, "portfolio": result.summary}
        metrics["benchmark"] = result.benchmark
        portfolios[name] = result.report
    metrics["settings"] = settings | {"lookback": int(datamodule.lookback), "horizon": int(datamodule.horizon)}
    table = forecasts.assign(model=signals["model"].to_numpy(), baseline=signals["baseline"].to_numpy())
    metrics, figures = write_report(out_dir, metrics, table, portfolios, daily_ics)
    log.info("backtest report written to %s (benchmark %s)", out_dir, metrics["benchmark"])
    if logger is not None:
        log_to(logger, metrics, figures)
    return metrics | {"figures": {k: str(v) for k, v in figures.items()}}

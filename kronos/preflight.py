"""Checks of the data against the settings of the stages that will run, before any training starts.

``python -m kronos.train`` calls :func:`preflight` once the datamodule is set up and before the first
stage: a setting or a data shape that the backtest or evaluate stage cannot handle is refused here, in one
line naming the key or the data's property and what to do, instead of as a traceback after training.

Refused: data mixing bar frequencies, e.g. hourly with daily series (splits and bars per year follow one calendar);
``data.horizon=1`` with the backtest (its traded interval needs two forecast steps); ``backtest.start`` /
``backtest.end`` that cannot be read, are reversed, or fall outside the test split; instrument names Qlib
cannot tell apart (``aapl`` and ``AAPL``: both are named); a volume cap or a size exposure on data without
volume; ``evaluate.tasks`` that this data cannot run; weights trained on windows shorter than the ones they
would be given (the rule of ``kronos-predict`` and the web UI: :func:`kronos.inference.loading.context_limit`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from kronos.data.errors import DataValidationError
from kronos.errors import KronosUserError

log = logging.getLogger(__name__)
MIN_TRADE_DAYS = 2  # Qlib's simulation needs two trading days (kronos.backtest.portfolio.run_topk_dropout)
TRADE_STEPS = 2  # the traded interval deal(t+1) -> deal(t+2) of the backtest's headline label


class PreflightError(DataValidationError, KronosUserError):
    """A setting or a property of the data that a stage of this run cannot handle (found before training)."""


def preflight(cfg: DictConfig, datamodule: Any, experiment: Any) -> list[str]:
    """Refuse what the stages of ``cfg.stage.run`` cannot do with ``datamodule``'s data; return warnings.

    Args:
        cfg: the composed run config (``stage.run``, ``data``, ``backtest``, ``evaluate``, ``weights``).
        datamodule: a set-up ``KronosDataModule`` (``panel``, ``lookback``, ``horizon``, splits resolved).
        experiment: the run's ``Experiment`` (where its exported weights are).

    Raises:
        PreflightError: one line naming the key or the data's property and what to do.
    """
    stages = list(cfg.stage.run)
    check_frequencies(datamodule)
    warnings = check_backtest(cfg, datamodule) if "backtest" in stages else []
    if "evaluate" in stages:
        check_tasks(cfg.evaluate, datamodule)
    from kronos.stages.table import STAGES

    for stage in stages:
        if not STAGES[stage].trains:  # every stage that forecasts with trained weights
            check_trained_context(cfg, stage, int(datamodule.lookback), stages, experiment)
    for text in warnings:
        log.warning("preflight: %s", text)
    return warnings


def check_backtest(cfg: DictConfig, datamodule: Any) -> list[str]:
    """The backtest's checks (horizon, test split and dates, symbols, benchmark CSV, volume); returns warnings."""
    from kronos.data.qlib_provider import check_qlib_symbols

    panel = datamodule.panel
    check_backtest_horizon(int(datamodule.horizon))
    split = str(cfg.backtest.get("split") or "test")  # the split the backtest scores (val: for choices)
    if split not in getattr(datamodule, "_windows", {split: None}):
        raise PreflightError(f"the backtest scores the {split} split (backtest.split), but data.splits has none: add "
                             f"data.splits.{split} (e.g. data.splits.{split}=0.15), or leave backtest out of stage.run")
    dates = decision_dates(datamodule, split)
    check_backtest_dates(cfg.backtest.get("start"), cfg.backtest.get("end"), dates,
                         pd.Timestamp(datamodule._split_span(split)[0]), split)
    check_qlib_symbols(list(panel.instruments), origin=str(panel.origin))
    bench_key = "backtest.benchmark" if cfg.backtest.get("benchmark") is not None else "data.benchmark"
    check_benchmark_csv(bench_key, cfg.backtest.get("benchmark") or cfg.data.get("benchmark"), (dates[0], dates[-1]))
    return check_volume_needs(cfg.backtest, panel)


def check_frequencies(datamodule: Any) -> None:
    """One bar frequency per group of series (the whole source, or each mixture component, which has its own
    calendar): see :func:`kronos.data.qlib_provider.check_one_frequency`."""
    from kronos.data.qlib_provider import check_one_frequency

    panel = datamodule.panel
    groups = getattr(datamodule.store, "groups", None) or []
    spans = [(g.start, g.stop, g.name) for g in groups] or [(0, len(panel.instruments), panel.origin)]
    for start, stop, name in spans:
        try:
            check_one_frequency(panel.instruments[start:stop], panel.timestamps[start:stop], origin=str(name))
        except DataValidationError as err:
            raise PreflightError(str(err)) from None


def check_backtest_horizon(horizon: int) -> None:
    """The backtest's headline label trades deal(t+1) -> deal(t+2): the forecast must reach t+2."""
    if horizon < TRADE_STEPS:
        raise PreflightError(
            f"data.horizon={horizon}: the backtest trades from the next bar's deal price to the one after "
            f"(deal(t+1) -> deal(t+2)), which needs a forecast of at least {TRADE_STEPS} steps: set "
            f"data.horizon={TRADE_STEPS} or more, or leave backtest out of stage.run")


def decision_dates(datamodule: Any, split: str) -> pd.DatetimeIndex:
    """The distinct decision dates of ``split``'s evaluation windows (the dates a backtest can trade), sorted."""
    store = datamodule.store
    inst, off = datamodule._eval_index(split)
    times = store.times[store.offsets[inst] + off + int(datamodule.lookback) - 1]
    return pd.DatetimeIndex(np.unique(np.asarray(times, dtype="datetime64[ns]")))


def _date(key: str, value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(str(value))
    except (ValueError, TypeError):
        raise PreflightError(f"{key}={value!r} is not a date: write e.g. {key}=2024-01-31, or null") from None


def check_backtest_dates(start: Any, end: Any, dates: pd.DatetimeIndex, split_start: pd.Timestamp,
                         split: str = "test") -> None:
    """Refuse ``backtest.start``/``end`` that select no decision date of the scored split (``split``, the test
    split unless ``backtest.split`` says otherwise), or reach outside it.

    A start before the test split (``split_start``) would otherwise be moved silently to the split's first
    date (train and validation dates are never traded): it is refused naming the dates that can be traded.
    ``dates``: the test split's decision dates; the portfolio needs at least ``MIN_TRADE_DAYS`` of them kept.
    """
    first, last = dates[0], dates[-1]
    lo, hi = _date("backtest.start", start), _date("backtest.end", end)
    where = f"the {split} split's decision dates run {first.date()} .. {last.date()}"
    if lo is not None and hi is not None and lo > hi:
        raise PreflightError(f"backtest.start={start} is after backtest.end={end}: swap them ({where})")
    if lo is not None and lo > last:
        raise PreflightError(f"backtest.start={start} is after the {split} split ({where}): set backtest.start "
                             f"to {last.date()} or earlier, or null")
    if hi is not None and hi < first:
        raise PreflightError(f"backtest.end={end} is before the {split} split ({where}): set backtest.end to "
                             f"{first.date()} or later, or null")
    if lo is not None and lo < split_start.normalize():
        raise PreflightError(f"backtest.start={start} is before the {split} split ({where}; earlier dates are the "
                             f"train/validation splits, never traded): set backtest.start={first.date()} or null, "
                             "or move data.splits")
    kept = dates[(dates >= (lo if lo is not None else first)) & (dates <= (_end_of_day(hi) if hi is not None else last))]
    if len(kept) < MIN_TRADE_DAYS:
        raise PreflightError(f"the backtest keeps {len(kept)} decision date(s) ({where}, backtest.start={start}, "
                             f"backtest.end={end}); a portfolio needs at least {MIN_TRADE_DAYS}: widen "
                             f"data.splits.{split} or backtest.start/end")


def check_benchmark_csv(key: str, benchmark: Any, span: tuple[pd.Timestamp, pd.Timestamp]) -> None:
    """Refuse a benchmark CSV whose dates do not reach over the test split's decision dates ``span``.

    An instrument code (read from the Qlib provider later) and ``equal_weight`` are not checked here.
    """
    from kronos.backtest.portfolio import _TIME_COLUMNS

    if benchmark is None or str(benchmark).strip() in ("", "equal_weight"):
        return
    path = Path(str(benchmark)).expanduser()
    if path.suffix.lower() != ".csv" or not path.is_file():
        return  # an instrument of the provider, or a missing file (refused by the backtest's own check)
    head = pd.read_csv(path, nrows=0).columns
    time_col = next((c for c in head if c.lower() in _TIME_COLUMNS), None)
    if time_col is None:
        return  # the backtest's reader names the missing column
    dates = pd.to_datetime(pd.read_csv(path, usecols=[time_col])[time_col], errors="coerce").dropna()
    first, last = span
    if dates.empty or dates.min().normalize() > first.normalize() or dates.max().normalize() < last.normalize():
        covers = f"{dates.min().date()} .. {dates.max().date()}" if len(dates) else "no date"
        raise PreflightError(f"{key}={benchmark}: the benchmark covers {covers} but the backtest trades "
                             f"{first.date()} .. {last.date()} (the test split): use a benchmark that covers it, or "
                             f"{key}=null for the equal-weighted universe")


def _end_of_day(value: pd.Timestamp) -> pd.Timestamp:
    """A bare date as an end covers its whole day (intraday decision times)."""
    return value + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if value == value.normalize() else value


def has_volume(panel: Any) -> bool:
    """Whether any instrument has a positive volume (a CSV without volume columns reads as all zero)."""
    col = list(panel.features).index("volume")
    return any(bool((np.nan_to_num(v[:, col]) > 0).any()) for v in panel.values)


def check_volume_needs(backtest: Mapping[str, Any], panel: Any) -> list[str]:
    """Refuse volume-based settings on data without volume; the ``volume`` baseline is skipped with a warning."""
    if has_volume(panel):
        return []
    what = f"{panel.origin}: the data has no volume (no volume column, or all zero)"
    if backtest.get("max_participation") is not None:
        raise PreflightError(f"{what}, so backtest.max_participation={backtest.get('max_participation')} (orders "
                             "capped by a share of the day's volume) would never trade: set "
                             "backtest.max_participation=null or use data with volume")
    if "size" in list(backtest.get("neutralize") or []):
        raise PreflightError(f"{what}, so backtest.neutralize cannot take 'size' (log dollar volume): remove it")
    if "volume" in list(backtest.get("baselines") or []):
        return [f"{what}: the 'volume' baseline (abnormal volume) cannot be computed and is skipped"]
    return []


def check_tasks(evaluate: Mapping[str, Any], datamodule: Any) -> None:
    """Refuse ``evaluate.tasks`` that name nothing, or a task this data's shape cannot run."""
    from kronos.evaluate.tasks.suite import task_requirements

    tasks = evaluate.get("tasks")
    if tasks is None:
        return
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise PreflightError("evaluate.tasks=[] runs no task: name some (e.g. evaluate.tasks=[price,return]) or set "
                             "evaluate.tasks=null for every task the data allows")
    split = str(evaluate.get("split") or "test")
    panel = datamodule.panel
    lo, hi = datamodule._split_span(split) if split in datamodule._windows else (None, None)
    stamps = np.concatenate([t[(t >= np.int64(lo)) & (t <= np.int64(hi))] if lo is not None else t
                             for t in (ts.astype(np.int64) for ts in panel.timestamps)])
    per_date = int(np.unique(stamps, return_counts=True)[1].max(initial=0))
    windows = len(datamodule.dataset(split)) if split in datamodule._windows else 0
    needs = task_requirements(candles=True, horizon=int(datamodule.horizon), lookback=int(datamodule.lookback),
                              series_per_date=per_date, complete_futures=windows)
    blocked = {t: needs[t] for t in tasks if needs.get(t)}
    if blocked:
        task, why = next(iter(blocked.items()))
        raise PreflightError(
            f"evaluate.tasks: {task} cannot run on this data (needs {why}; the data has lookback {datamodule.lookback}, "
            f"horizon {datamodule.horizon}, at most {per_date} series a date in split '{split}'): remove "
            f"{', '.join(blocked)} from evaluate.tasks, or change the data/window settings")


def check_trained_context(cfg: DictConfig, stage: str, lookback: int, stages: list[str], experiment: Any) -> None:
    """Refuse weights trained on shorter windows than the history ``stage`` would give them.

    The rule is :func:`kronos.inference.loading.context_limit`, the one ``kronos-predict`` and the web UI apply;
    weights the same command trains (``stage=all``) fit this config by construction.
    """
    if "predictor" in stages[: stages.index(stage)]:
        return
    from kronos.experiment import WeightsNotFoundError
    from kronos.inference.loading import context_limit
    from kronos.stages.common import weight_source

    try:
        location = weight_source(cfg, "predictor", experiment, {}).location
    except WeightsNotFoundError:
        return  # evaluate may score other models alone; the backtest's absence is refused by train()
    limit, why = context_limit(str(location))
    seen = min(lookback, int(cfg[stage].get("max_context") or lookback))
    if seen > limit:
        raise PreflightError(
            f"{stage}: the predictor {location} was {why.removeprefix(str(location) + ' ')}, but this run gives it "
            f"{seen} rows of history (data.lookback={lookback}, {stage}.max_context={cfg[stage].get('max_context')}): "
            f"set {stage}.max_context={limit} or less, or train the predictor on these windows")

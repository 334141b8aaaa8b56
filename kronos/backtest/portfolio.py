"""Top-k dropout portfolio through Qlib's own backtest engine, the reference users trust.

Qlib keeps its configuration in process-global state: :func:`use_provider` initialises it for a
provider directory and re-initialises only when Qlib currently points elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from kronos.backtest.markets import LOT_SIZE, REGION_QLIB, tradability
from kronos.backtest.settings import BacktestSettingsError

DAY = "day"
_TIME_COLUMNS = ("date", "datetime", "timestamps", "timestamp", "time")


def use_provider(provider_uri: str | Path, region: str = "us") -> None:
    """Point Qlib at ``provider_uri`` (initialising it, quietly, only when it is not already there).

    Qlib's live configuration is what is compared, not a memo of ours: other code (a Qlib data
    source) may have re-initialised Qlib on another provider in between.
    """
    from qlib.config import C
    from qlib.log import get_module_logger

    from kronos.data.qlib_provider import init_qlib

    uri = Path(provider_uri).expanduser().resolve()
    if not (uri / "calendars" / f"{DAY}.txt").is_file():
        raise FileNotFoundError(
            f"{uri} is not a Qlib provider (no calendars/{DAY}.txt): build one with "
            "`python -m data_pipelines.csv_to_qlib` or download one with `python -m data_pipelines.download_qlib`")
    if not (C.registered and C.get("region") == region and Path(C.dpm.get_data_uri(DAY)).resolve() == uri):
        # kernels=1: the expression engine's process pool costs more than it saves on backtest-sized reads.
        init_qlib(uri, region, logging_level=logging.ERROR)
    # Qlib logs every exchange and executor it builds; keep errors only, also when an earlier init
    # (a Qlib data source) chose a chattier level.
    C["logging_level"] = logging.ERROR  # the level of loggers Qlib creates from now on
    get_module_logger.setLevel(logging.ERROR)  # and of those it already has


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Qlib's per-step numpy warnings (means of empty slices on untraded days)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def limit_expressions(threshold: float | None) -> tuple[str, str] | float:
    """Limit-up/limit-down flags as Qlib expressions on the close-to-close change.

    Qlib's float ``limit_threshold`` compares ``$change``, whose unit differs between providers
    (the shared CSI300 provider stores percent, csv_to_qlib a fraction); deriving the change from
    ``$close`` means the same thing everywhere. None means no limit: Qlib would otherwise apply its
    region's default, so it gets an unreachable threshold instead.
    """
    if threshold is None:
        return float("inf")
    change = "($close / Ref($close, 1) - 1)"
    return f"Ge({change}, {float(threshold)})", f"Le({change}, {-float(threshold)})"


def provider_instruments() -> set[str]:
    """Names of every instrument in the current provider's ``all`` market."""
    from qlib.data import D

    return {str(s).upper() for s in D.list_instruments(D.instruments("all"), as_list=True)}


def trading_days(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The current provider's trading calendar between ``start`` and ``end`` (inclusive)."""
    from qlib.data import D

    return pd.DatetimeIndex(D.calendar(start_time=start, end_time=end, freq=DAY))


def backtest_days(signal_dates: pd.DatetimeIndex, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """Trading days to simulate for signals on ``signal_dates`` (explicit ``start``/``end`` win).

    Qlib trades on each day with the previous day's signal, so by default the simulation runs from
    the trading day after the first signal date to the day after the last one. Each simulated step
    needs the next calendar day, so the provider's final day is never simulated.
    """
    from qlib.data import D

    calendar = pd.DatetimeIndex(D.calendar(freq=DAY))[:-1]
    first = start if start is not None else calendar[calendar > signal_dates.min()].min()
    last = end if end is not None else calendar[calendar > signal_dates.max()].min()
    if pd.isna(last):
        last = calendar[-1]
    return calendar[(calendar >= first) & (calendar <= last)]


def equal_weight_returns(instruments: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Daily close-to-close return of the equal-weighted ``instruments``, indexed by trading date."""
    from qlib.data import D

    ret = D.features(instruments, ["$close / Ref($close, 1) - 1"], start, end, freq=DAY).iloc[:, 0]
    series = ret.groupby(level="datetime").mean()
    return series.reindex(trading_days(start, end)).fillna(0.0).rename("equal_weight")


def csv_benchmark_returns(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Daily close-to-close returns of a benchmark CSV (a date column and a ``close`` column)."""
    frame = pd.read_csv(path)
    columns = {c.lower(): c for c in frame.columns}
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    if time_col is None or "close" not in columns:
        raise BacktestSettingsError(f"benchmark CSV {path} needs a date column (one of {_TIME_COLUMNS}) and a "
                                    f"close column; it has {list(frame.columns)}")
    close = pd.Series(pd.to_numeric(frame[columns["close"]], errors="coerce").to_numpy(),
                      index=pd.to_datetime(frame[time_col])).sort_index()
    if close.isna().any():
        raise BacktestSettingsError(f"benchmark CSV {path}: column close has a non-numeric value at row "
                                    f"{int(np.flatnonzero(close.isna().to_numpy())[0])}; clean it first")
    days = trading_days(start, end)
    # Returns over the full file first, so the first backtest day has its change from the day before.
    returns = close.pct_change().reindex(days)
    if returns.isna().all():
        raise BacktestSettingsError(f"benchmark CSV {path} has no dates between {start.date()} and {end.date()} "
                                    "(the backtest period): use a benchmark that covers it, or backtest.benchmark=null "
                                    "(and data.benchmark=null) for the equal-weighted universe")
    return returns.fillna(0.0).rename(path.stem)


def resolve_benchmark(benchmark: str | None, universe: list[str], start: pd.Timestamp,
                      end: pd.Timestamp) -> tuple[str | pd.Series, str]:
    """Turn the ``backtest.benchmark`` setting into what Qlib's account takes, plus a display name.

    Args:
        benchmark: an instrument of the provider (e.g. ``SH000300``), a CSV path (date + close), or
            None for the equal-weighted universe.
        universe: the instruments the signal covers (the equal-weighted benchmark's members).

    Returns:
        (instrument code or daily-return Series, name for reports).
    """
    if benchmark is None or str(benchmark).strip() == "":
        return equal_weight_returns(universe, start, end), "equal-weighted universe"
    text = str(benchmark)
    if text.upper() in provider_instruments():
        return text.upper(), text.upper()
    path = Path(text).expanduser()
    if path.suffix.lower() == ".csv" or path.is_file():
        if not path.is_file():
            raise BacktestSettingsError(f"benchmark CSV {path} does not exist: set backtest.benchmark (or "
                                        "data.benchmark) to an existing file, an instrument of the provider, or "
                                        "null (equal-weighted universe)")
        return csv_benchmark_returns(path, start, end), path.stem
    raise BacktestSettingsError(f"benchmark {text!r} is neither an instrument of the Qlib provider nor a CSV file: "
                                "set backtest.benchmark (or data.benchmark) to one of those, or null for the "
                                "equal-weighted universe")


@dataclass
class PortfolioResult:
    """Qlib's daily portfolio report and its summary.

    Attributes:
        report: DataFrame indexed by trading date with Qlib's columns (account, return, cost, bench,
            turnover, value, cash, ...).
        summary: output of :func:`summarize`.
        benchmark: the benchmark's display name.
    """

    report: pd.DataFrame
    summary: dict[str, Any]
    benchmark: str


def _risk(returns: pd.Series) -> dict[str, float]:
    """Qlib's ``risk_analysis`` (additive accumulation, 238 trading days a year) as a plain dict."""
    from qlib.contrib.evaluate import risk_analysis

    table = risk_analysis(returns, freq=DAY)
    return {str(k): float(v) for k, v in table["risk"].items()}


def summarize(report: pd.DataFrame) -> dict[str, Any]:
    """Annualised returns, excess returns with/without cost, information ratio, max drawdown, turnover.

    Args:
        report: Qlib's daily portfolio report (columns ``return``, ``cost``, ``bench``, ``turnover``).
    """
    r, cost, bench = report["return"], report["cost"], report["bench"]
    return {
        "return_without_cost": _risk(r),
        "return_with_cost": _risk(r - cost),
        "benchmark": _risk(bench),
        "excess_return_without_cost": _risk(r - bench),
        "excess_return_with_cost": _risk(r - bench - cost),
        "turnover": float(report["turnover"].mean()),
        "days": int(len(report)),
    }


def provider_fields(universe: list[str], start: pd.Timestamp, end: pd.Timestamp,
                    fields: dict[str, str]) -> dict[str, pd.DataFrame]:
    """{name: wide [trading days x universe]} of Qlib ``fields`` ({name: expression}) from the current
    provider, from the trading day before ``start`` (so the first day's return is defined) to ``end``."""
    from qlib.data import D

    calendar = pd.DatetimeIndex(D.calendar(freq=DAY))
    before = calendar[calendar < start]
    first = before[-1] if len(before) else start
    raw = D.features(universe, list(fields.values()), first, end, freq=DAY)
    raw.columns = list(fields)
    days = calendar[(calendar >= first) & (calendar <= end)]
    return {name: raw[name].unstack(level="instrument").reindex(index=days, columns=universe) for name in fields}


def blocked_days(universe: list[str], start: pd.Timestamp, end: pd.Timestamp, region: str,
                 limit_threshold: float | str | None) -> tuple[pd.Series, pd.Series]:
    """(buy blocked, sell blocked) per (instrument, datetime) from the current provider's close and volume.

    See kronos.backtest.markets: suspensions (zero/missing volume, no price) block both directions; a
    limit-up close blocks buying, a limit-down close selling, with the region's board-aware limits.
    """
    wide = provider_fields(universe, start, end, {"close": "$close", "volume": "$volume"})
    buy, sell = tradability(wide["close"], wide["volume"], region, limit_threshold)

    def long(frame: pd.DataFrame) -> pd.Series:
        out = frame.loc[frame.index >= start].T.stack(future_stack=True)
        return out.rename_axis(["instrument", "datetime"])

    return long(buy), long(sell)


def rule_exchange(buy_blocked: pd.Series, sell_blocked: pd.Series, **kwargs: Any) -> Any:
    """A Qlib ``Exchange`` whose tradability is ours: its own ``$close``-NaN suspension OR ``buy_blocked``
    / ``sell_blocked`` (bool Series on (instrument, datetime)); Qlib's float/expression limits are off."""
    from qlib.backtest.exchange import Exchange

    class RuleExchange(Exchange):
        def _update_limit(self, limit_threshold: Any) -> None:
            super()._update_limit(float("inf"))  # Qlib's own rule off; it still marks NaN-close days
            idx = self.quote_df.index
            self.quote_df["limit_buy"] |= buy_blocked.reindex(idx, fill_value=False).to_numpy(dtype=bool)
            self.quote_df["limit_sell"] |= sell_blocked.reindex(idx, fill_value=False).to_numpy(dtype=bool)

    return RuleExchange(limit_threshold=float("inf"), **kwargs)


def run_topk_dropout(signal: pd.Series, provider_uri: str | Path, *, topk: int, n_drop: int, hold_thresh: int,
                     account: float, costs: Mapping[str, float], deal_price: str, benchmark: str | None,
                     region: str = "none", limit_threshold: float | str | None = "region",
                     start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                     ) -> PortfolioResult:
    """Backtest Qlib's ``TopkDropoutStrategy`` on ``signal`` with a daily ``SimulatorExecutor``.

    Qlib trades on day t+1 with the signal of day t, at ``deal_price``.

    Args:
        signal: float Series on (datetime, instrument); instruments named as in the provider.
        provider_uri: Qlib provider directory holding those instruments.
        topk, n_drop, hold_thresh: strategy settings (hold topk names, swap at most n_drop a day,
            hold each at least hold_thresh days).
        account: initial cash.
        costs: ``open_cost``, ``close_cost`` (fractions of the deal) and ``min_cost`` (absolute).
        deal_price: price field trades fill at (``close``, ``open``).
        benchmark: see :func:`resolve_benchmark`.
        region: ``cn``, ``us`` or ``none`` (resolved): lot size (kronos.backtest.markets.LOT_SIZE) and limits.
        limit_threshold: ``region`` (the region's board-aware rule), a uniform fraction, or None (no limits).
            Suspended days never trade, whatever this is.
        start, end: simulated dates (default: see :func:`backtest_days`).
    """
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.strategy import TopkDropoutStrategy

    if signal.empty:
        raise ValueError("the signal is empty: nothing to backtest")
    if region not in LOT_SIZE:
        raise ValueError(f"region {region!r} is not one of {sorted(LOT_SIZE)}")
    use_provider(provider_uri, REGION_QLIB[region])
    dates = pd.DatetimeIndex(signal.index.get_level_values("datetime"))
    days = backtest_days(dates, None if start is None else pd.Timestamp(start), None if end is None else pd.Timestamp(end))
    if len(days) < 2:
        raise ValueError(f"signals on {dates.min().date()}..{dates.max().date()} (start={start}, end={end}) leave "
                         f"{len(days)} trading day(s) of the provider {provider_uri} to simulate; it needs at least 2")
    universe = sorted(set(signal.index.get_level_values("instrument")))
    bench, bench_name = resolve_benchmark(benchmark, universe, days[0], days[-1])
    strategy = TopkDropoutStrategy(signal=signal.sort_index(), topk=topk, n_drop=n_drop, hold_thresh=hold_thresh)
    executor = SimulatorExecutor(time_per_step=DAY, generate_portfolio_metrics=True, verbose=False)
    with _quiet():
        buy, sell = blocked_days(universe, days[0], days[-1], region, limit_threshold)
        exchange = rule_exchange(
            buy, sell, freq=DAY, start_time=days[0], end_time=days[-1], codes=universe, deal_price=deal_price,
            open_cost=float(costs["open_cost"]), close_cost=float(costs["close_cost"]),
            min_cost=float(costs["min_cost"]), trade_unit=LOT_SIZE[region],
        )
        metrics, _ = backtest(start_time=days[0], end_time=days[-1], strategy=strategy, executor=executor,
                              benchmark=bench, account=float(account), exchange_kwargs={"exchange": exchange})
    report = metrics[f"1{DAY}"][0]
    return PortfolioResult(report=report, summary=summarize(report), benchmark=bench_name)

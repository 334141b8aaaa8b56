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
from kronos.backtest.performance import (COST_GRID_BPS, alpha_beta, annualized, bars_per_year, break_even_bps,
                                         cost_grid)
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


def equal_weight_returns(instruments: list[str], start: pd.Timestamp, end: pd.Timestamp,
                         members: pd.Series | None = None) -> pd.Series:
    """Daily close-to-close return of the equal-weighted ``instruments``, indexed by trading date.

    ``members``: any Series on (datetime, instrument) whose rows are the universe of each decision date
    (the signal); the return of trading day d then averages the names that were members on the trading
    day before d (the date whose signal the strategy trades on d), so the benchmark holds members only.
    """
    from qlib.data import D

    ret = D.features(instruments, ["$close / Ref($close, 1) - 1"], start, end, freq=DAY).iloc[:, 0]
    days = trading_days(start, end)
    if members is not None:
        wide = ret.unstack(level="instrument").reindex(days)
        calendar = pd.DatetimeIndex(D.calendar(freq=DAY))
        held = (members.notna().unstack(level="instrument").reindex(calendar).reindex(columns=wide.columns)
                .astype("boolean").fillna(False).astype(bool).shift(1, fill_value=False).reindex(days))
        return wide.where(held).mean(axis=1).fillna(0.0).rename("equal_weight")
    series = ret.groupby(level="datetime").mean()
    return series.reindex(days).fillna(0.0).rename("equal_weight")


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
                      end: pd.Timestamp, members: pd.Series | None = None) -> tuple[str | pd.Series, str]:
    """Turn the ``backtest.benchmark`` setting into what Qlib's account takes, plus a display name.

    Args:
        benchmark: an instrument of the provider (e.g. ``SH000300``), a CSV path (date + close), or
            None for the equal-weighted universe.
        universe: the instruments the signal covers (the equal-weighted benchmark's names).
        members: the signal (its rows are each date's members; see :func:`equal_weight_returns`).

    Returns:
        (instrument code or daily-return Series, name for reports).
    """
    if benchmark is None or str(benchmark).strip() == "":
        return equal_weight_returns(universe, start, end, members), "equal-weighted universe"
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
        summary: output of :func:`summarize`, plus ``blocked_buys_limit_up`` (buys the strategy wanted
            that limit-up blocked), ``clipped_orders`` (orders cut by ``max_participation``) and
            ``delisted_sales`` (names sold on their last trading day).
        benchmark: the benchmark's display name.
    """

    report: pd.DataFrame
    summary: dict[str, Any]
    benchmark: str


def summarize(report: pd.DataFrame, bars: float) -> dict[str, Any]:
    """Annualised returns, excess returns with/without cost, information ratio, max drawdown, turnover,
    alpha and beta on the benchmark (before and after cost), excess return on a grid of one-way costs
    and the break-even cost of the excess return, every one annualised by
    :func:`kronos.backtest.performance.annualized` (summed; the same numbers as Qlib's ``risk_analysis``).

    Args:
        report: Qlib's daily portfolio report (columns ``return``, ``cost``, ``bench``, ``turnover``).
        bars: trading days a year (kronos.backtest.performance.bars_per_year).
    """
    r, cost, bench, turnover = report["return"], report["cost"], report["bench"], report["turnover"]
    return {
        "return_without_cost": annualized(r, bars),
        "return_with_cost": annualized(r - cost, bars),
        "benchmark": annualized(bench, bars),
        "excess_return_without_cost": annualized(r - bench, bars),
        "excess_return_with_cost": annualized(r - bench - cost, bars),
        "alpha": alpha_beta(r, bench, bars),
        "alpha_after_cost": alpha_beta(r - cost, bench, bars),
        "excess_return_by_cost_bps": cost_grid(r - bench, turnover, bars, COST_GRID_BPS),
        "break_even_cost_bps": break_even_bps(r - bench, turnover),
        "turnover": float(turnover.mean()),
        "days": int(len(report)),
        "bars_per_year": float(bars),
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


@dataclass
class Rules:
    """What the market allows, per (instrument, datetime): bool Series ``buy_blocked`` (suspended or at
    limit-up), ``sell_blocked`` (suspended or at limit-down), ``limit_up`` (at limit-up, not suspended);
    ``last_day``: {instrument: its last trading day}, for names that stop trading before ``end``."""

    buy_blocked: pd.Series
    sell_blocked: pd.Series
    limit_up: pd.Series
    last_day: dict[str, pd.Timestamp]


def market_rules(universe: list[str], start: pd.Timestamp, end: pd.Timestamp, region: str,
                 limit_threshold: float | str | None, deal_price: str = "close") -> Rules:
    """The :class:`Rules` of ``universe`` from the current provider's close, volume and deal price.

    See kronos.backtest.markets: suspensions (zero/missing volume, no price) block both directions; a
    deal price at limit-up (against the previous close) blocks buying, at limit-down selling, with the
    region's board- and date-aware limits.
    """
    fields = {"close": "$close", "volume": "$volume"} | ({"deal": f"${deal_price}"} if deal_price != "close" else {})
    wide = provider_fields(universe, start, end, fields)
    blocks = tradability(wide["close"], wide["volume"], region, limit_threshold, wide.get("deal"))
    traded = wide["close"].where(~blocks.suspended)
    last = traded.apply(lambda col: col.last_valid_index())
    last_day = {str(k): pd.Timestamp(v) for k, v in last.items() if v is not None and pd.Timestamp(v) < end}

    def long(frame: pd.DataFrame) -> pd.Series:
        out = frame.loc[frame.index >= start].astype(bool).T.stack(future_stack=True)
        return out.rename_axis(["instrument", "datetime"])

    return Rules(long(blocks.buy_blocked), long(blocks.sell_blocked), long(blocks.limit_up), last_day)


def rule_exchange(rules: Rules, **kwargs: Any) -> Any:
    """A Qlib ``Exchange`` whose tradability is ours: its own ``$close``-NaN suspension OR ``rules``'
    blocks; Qlib's float/expression limits are off. It counts, in ``blocked_limit_up``, the (name, day)
    buys refused at limit-up for names not held (``holding``, set by the strategy before each decision),
    and in ``clipped`` the orders its volume cap (``volume_threshold``) cut."""
    from qlib.backtest.exchange import Exchange

    class RuleExchange(Exchange):
        holding: set[str] = set()

        def _update_limit(self, limit_threshold: Any) -> None:
            super()._update_limit(float("inf"))  # Qlib's own rule off; it still marks NaN-close days
            idx = self.quote_df.index
            self.quote_df["limit_buy"] |= rules.buy_blocked.reindex(idx, fill_value=False).to_numpy(dtype=bool)
            self.quote_df["limit_sell"] |= rules.sell_blocked.reindex(idx, fill_value=False).to_numpy(dtype=bool)
            self.blocked_limit_up: set[tuple[str, pd.Timestamp]] = set()
            self.clipped = 0

        def is_stock_tradable(self, stock_id: str, start_time: pd.Timestamp, end_time: pd.Timestamp,
                              direction: int | None = None) -> bool:
            ok = super().is_stock_tradable(stock_id, start_time, end_time, direction)
            key = (stock_id, pd.Timestamp(start_time).normalize())
            if not ok and stock_id not in self.holding and bool(rules.limit_up.get(key, False)):
                self.blocked_limit_up.add(key)
            return ok

        def _clip_amount_by_volume(self, order: Any, dealt_order_amount: dict) -> Any:
            before = order.deal_amount
            out = super()._clip_amount_by_volume(order, dealt_order_amount)
            if order.deal_amount < before - 1e-9:
                self.clipped += 1
            return out

    return RuleExchange(limit_threshold=float("inf"), **kwargs)


def rule_strategy(signal: pd.Series, exchange: Any, last_day: Mapping[str, pd.Timestamp], **kwargs: Any) -> Any:
    """Qlib's ``TopkDropoutStrategy`` (``kwargs``: topk, n_drop, hold_thresh, risk_degree) that also sells
    every held name on its last trading day (``last_day``), at that day's deal price, instead of holding it
    at its last price forever; ``delisted_sales`` counts them."""
    from qlib.backtest.decision import Order, TradeDecisionWO
    from qlib.contrib.strategy import TopkDropoutStrategy

    class RuleTopkDropout(TopkDropoutStrategy):
        delisted_sales = 0

        def generate_trade_decision(self, execute_result: Any = None) -> Any:
            exchange.holding = set(self.trade_position.get_stock_list())
            decision = super().generate_trade_decision(execute_result)
            start, end = self.trade_calendar.get_step_time(self.trade_calendar.get_trade_step())
            selling = {o.stock_id for o in decision.order_list if o.direction == Order.SELL}
            extra = []
            for code in exchange.holding - selling:
                if code in last_day and last_day[code] == pd.Timestamp(start).normalize():
                    order = Order(stock_id=code, amount=self.trade_position.get_stock_amount(code),
                                  start_time=start, end_time=end, direction=Order.SELL)
                    if self.trade_exchange.check_order(order):
                        extra.append(order)
            if not extra:
                return decision
            self.delisted_sales += len(extra)
            return TradeDecisionWO(extra + list(decision.order_list), self)

    return RuleTopkDropout(signal=signal, **kwargs)


def run_topk_dropout(signal: pd.Series, provider_uri: str | Path, *, topk: int, n_drop: int, hold_thresh: int,
                     account: float, costs: Mapping[str, float], deal_price: str, benchmark: str | None,
                     region: str = "none", limit_threshold: float | str | None = "region",
                     start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                     risk_degree: float = 1.0, max_participation: float | None = None,
                     bars: float | None = None) -> PortfolioResult:
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
        risk_degree: share of the account invested (1.0: fully; Qlib's own default is 0.95).
        max_participation: cap on each order as a share of that day's volume (None: no cap).
        bars: trading days a year for annualisation (default: measured from the provider's calendar).
    """
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.data import D

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
    bench, bench_name = resolve_benchmark(benchmark, universe, days[0], days[-1], members=signal)
    bars = bars_per_year(pd.DatetimeIndex(D.calendar(freq=DAY)), region) if bars is None else float(bars)
    executor = SimulatorExecutor(time_per_step=DAY, generate_portfolio_metrics=True, verbose=False)
    volume_cap = None if max_participation is None else ("current", f"{float(max_participation)} * $volume")
    with _quiet():
        rules = market_rules(universe, days[0], days[-1], region, limit_threshold, deal_price)
        exchange = rule_exchange(
            rules, freq=DAY, start_time=days[0], end_time=days[-1], codes=universe, deal_price=deal_price,
            open_cost=float(costs["open_cost"]), close_cost=float(costs["close_cost"]),
            min_cost=float(costs["min_cost"]), trade_unit=LOT_SIZE[region], volume_threshold=volume_cap,
        )
        strategy = rule_strategy(signal.sort_index(), exchange, rules.last_day, topk=topk, n_drop=n_drop,
                                 hold_thresh=hold_thresh, risk_degree=float(risk_degree))
        metrics, _ = backtest(start_time=days[0], end_time=days[-1], strategy=strategy, executor=executor,
                              benchmark=bench, account=float(account), exchange_kwargs={"exchange": exchange})
    report = metrics[f"1{DAY}"][0]
    summary = summarize(report, bars) | {"blocked_buys_limit_up": len(exchange.blocked_limit_up),
                                         "clipped_orders": int(exchange.clipped),
                                         "delisted_sales": int(strategy.delisted_sales),
                                         "risk_degree": float(risk_degree)}
    return PortfolioResult(report=report, summary=summary, benchmark=bench_name)

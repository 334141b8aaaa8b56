"""``BacktestSettings``: the typed, validated ``backtest`` config group.

The dataclass defaults ARE ``conf/backtest/topk_dropout.yaml``'s defaults (a test checks that every
key agrees), so code run without Hydra behaves exactly like the CLI. ``from_config`` is the one place
the group is validated: a bad value stops the run with the key named and what to set instead.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from kronos.inference.settings import SamplingSettings, sampling_from_config
from kronos.inference.validation import ForecastInputError

ANCHORS = ("last_close", "reconstructed")
# Signals from the sample paths (every one gets its rows in the report; ``backtest.signal`` picks the
# headline): mean (predicted return averaged over steps 1..H), trade (predicted return over exactly the
# headline label's interval), sharpe (trade's mean over its std across paths), prob_up (share of paths
# in which trade is positive). last/max/min (the step-H / largest / smallest predicted return) may be
# the headline too.
PATH_SIGNALS = ("mean", "trade", "sharpe", "prob_up")
SIGNALS = (*PATH_SIGNALS, "last", "max", "min")
BASELINES = ("momentum", "reversal", "volume", "low_vol")
# Old baseline names still read for one release: {old: new}. ``persistence`` was the trend-following
# baseline; "naive"/"persistence" now mean the last value carried forward everywhere else.
BASELINE_ALIASES = {"persistence": "momentum"}
ALIAS_NOTE = ("backtest.baselines: 'persistence' is now called 'momentum' (the recent trend continues); "
              "'persistence' is read as 'momentum' and metrics.json repeats momentum's entry under "
              "'persistence' for this release only")
EXPOSURES = ("beta", "volatility", "size", "industry")
DEAL_PRICES = ("close", "open")
REGIONS = ("auto", "cn", "us", "none")
log = logging.getLogger(__name__)
LIMIT_RULES = ("region",)


class BacktestSettingsError(ValueError):
    """A ``backtest.<key>`` value is invalid (the message names the key and the accepted values)."""


@dataclass(frozen=True)
class Costs:
    """Trading costs (Qlib exchange): fractions of the deal value, and a minimum per trade in cash."""

    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0


@dataclass(frozen=True)
class BacktestSettings:
    """Every setting of the backtest stage (see conf/backtest/topk_dropout.yaml for the meaning of each).

    Attributes:
        topk, n_drop, hold_thresh: Qlib TopkDropoutStrategy (capped with a note when the universe is smaller).
        signal: the headline signal (:data:`SIGNALS`); every one of :data:`PATH_SIGNALS` gets its rows.
        anchor: what predicted returns are measured from: ``last_close`` (observed) or ``reconstructed``
            (the tokenizer's decode of the last candle; the report then adds the anchor-gap diagnostics).
        baselines: naive signals scored and traded beside the model (names in :data:`BASELINES`).
        neutralize: exposures (:data:`EXPOSURES`) regressed out of every model signal per day, from the
            lookback alone.
        quantiles: groups per day of the factor analysis and the long-short portfolio.
        risk_degree: share of the account the top-k portfolio invests (1.0: fully invested).
        max_participation: cap on each order as a share of that day's volume (None: no cap).
        sampling: the ``backtest.sampling`` block (T, top_k, top_p, sample_count, seed); its seed None = the
            experiment's ``seed`` (the stage fills it in; 0 without one).
        batch_size, max_context, device: forecasting.
        account, costs, deal_price: the simulated account and exchange.
        region: ``cn`` (lots of 100 shares, board-aware price limits), ``us`` (1 share, no limits),
            ``none`` (fractional, no limits: crypto/other) or ``auto`` (the data source's region,
            ``none`` for CSV/synthetic data).
        limit_threshold: ``region`` (the region's rule), a number (one uniform |close-to-close| limit)
            or None (no price limits at all).
        benchmark: provider instrument, CSV path, ``equal_weight`` (the equal-weighted universe) or None
            (the datamodule's ``benchmark``, i.e. ``data.benchmark``; equal-weighted when that is None too).
        benchmark_total_return: the benchmark includes dividends (no price-index note in the report).
        drop_bad_prices: drop decisions whose trade touches a flagged price row.
        start, end: decision dates kept (None: the whole split).
        split: the split forecast and scored: ``test`` (reports) or ``val`` (choosing a signal, a
            temperature or a number of paths without touching the test split).
        provider_uri: Qlib provider for the portfolio (None: the data's own, or one built from it).
    """

    topk: int = 50
    n_drop: int = 5
    hold_thresh: int = 1
    signal: str = "trade"
    anchor: str = "last_close"
    baselines: tuple[str, ...] = BASELINES
    neutralize: tuple[str, ...] = ()
    quantiles: int = 5
    risk_degree: float = 1.0
    max_participation: float | None = None
    sampling: SamplingSettings = SamplingSettings(T=0.6, top_k=0, top_p=0.9, sample_count=10, seed=None)
    batch_size: int = 256
    max_context: int = 512
    device: str | None = None
    account: float = 100000000.0
    costs: Costs = field(default_factory=Costs)
    deal_price: str = "close"
    region: str = "auto"
    limit_threshold: float | str | None = "region"
    benchmark: str | None = None
    benchmark_total_return: bool = False
    drop_bad_prices: bool = False
    start: str | None = None
    end: str | None = None
    split: str = "test"
    provider_uri: str | None = None

    def __post_init__(self) -> None:
        renamed = tuple(BASELINE_ALIASES.get(name, name) for name in self.baselines)
        if renamed != tuple(self.baselines):
            warnings.warn(ALIAS_NOTE, FutureWarning, stacklevel=3)
            log.warning("%s", ALIAS_NOTE)
            object.__setattr__(self, "baselines", renamed)
        _check(self)

    @classmethod
    def from_config(cls, node: Any) -> "BacktestSettings":
        """Settings from the ``backtest`` group: an OmegaConf node or a plain mapping (missing keys take
        the defaults; unknown keys are refused so a typo never silently does nothing)."""
        data = _plain(node)
        try:
            data["sampling"] = sampling_from_config("backtest", data, defaults=cls.sampling)
        except ForecastInputError as err:
            raise BacktestSettingsError(str(err)) from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BacktestSettingsError(f"unknown backtest setting(s) {unknown}: valid keys are {sorted(known)}")
        if "costs" in data:
            costs = data["costs"] or {}
            bad = sorted(set(costs) - {f.name for f in dataclasses.fields(Costs)})
            if bad:
                raise BacktestSettingsError(f"unknown backtest.costs key(s) {bad}: use open_cost, close_cost, min_cost")
            data["costs"] = Costs(**{k: float(v) for k, v in costs.items()})
        for key in ("baselines", "neutralize"):
            if key in data:
                value = data[key]
                data[key] = (value,) if isinstance(value, str) else tuple(value or ())
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings (for metrics.json)."""
        out = dataclasses.asdict(self)
        out["baselines"] = list(self.baselines)
        out["neutralize"] = list(self.neutralize)
        return out


def _plain(node: Any) -> dict[str, Any]:
    """A plain dict of the group (an OmegaConf node resolved; a full config's ``backtest`` taken)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra, a core dependency
        pass
    if isinstance(node, BacktestSettings):
        return node.as_dict()
    if not isinstance(node, Mapping):
        raise BacktestSettingsError(f"backtest settings must be a mapping, got {type(node).__name__}")
    data = dict(node)
    if isinstance(data.get("backtest"), Mapping):
        data = dict(data["backtest"])
    return data


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BacktestSettingsError(f"backtest.{key}={value!r} is not one of {list(allowed)}: set backtest.{key} to one of them")


def _check(s: BacktestSettings) -> None:
    """The one validation of the group (called on construction)."""
    _choice("signal", s.signal, SIGNALS)
    _choice("anchor", s.anchor, ANCHORS)
    _choice("deal_price", s.deal_price, DEAL_PRICES)
    _choice("region", s.region, REGIONS)
    _choice("split", s.split, ("train", "val", "test"))
    if not s.baselines:
        raise BacktestSettingsError(f"backtest.baselines is empty: list at least one of {list(BASELINES)}")
    for name in s.baselines:
        _choice("baselines", name, BASELINES)
    if len(set(s.baselines)) != len(s.baselines):
        raise BacktestSettingsError(f"backtest.baselines={list(s.baselines)} lists a baseline twice")
    for name in s.neutralize:
        _choice("neutralize", name, EXPOSURES)
    if "industry" in s.neutralize:  # refused here, so stage=all stops before training rather than after it
        raise BacktestSettingsError("backtest.neutralize lists industry, but no data source here carries an industry "
                                    "classification yet: remove industry from backtest.neutralize")
    if int(s.quantiles) < 2:
        raise BacktestSettingsError(f"backtest.quantiles={s.quantiles} must be at least 2 (top and bottom groups)")
    if not 0.0 < s.risk_degree <= 1.0:
        raise BacktestSettingsError(f"backtest.risk_degree={s.risk_degree} must be in (0, 1] (1.0: fully invested)")
    mp = s.max_participation
    if mp is not None and not (isinstance(mp, (int, float)) and 0.0 < float(mp) <= 1.0):
        raise BacktestSettingsError(f"backtest.max_participation={mp!r}: use a share of the day's volume in (0, 1] "
                                    "(e.g. 0.1) or null for no cap")
    if not isinstance(s.sampling, SamplingSettings):
        raise BacktestSettingsError(f"backtest.sampling must be SamplingSettings, got {type(s.sampling).__name__}")
    try:
        s.sampling.validate(prefix="backtest.sampling.")
    except ForecastInputError as err:
        raise BacktestSettingsError(str(err)) from None
    for key in ("topk", "n_drop", "batch_size", "max_context"):
        if int(getattr(s, key)) < 1:
            raise BacktestSettingsError(f"backtest.{key}={getattr(s, key)} must be a positive integer")
    if s.hold_thresh < 0:
        raise BacktestSettingsError("backtest.hold_thresh must be >= 0")
    if s.n_drop > s.topk:
        raise BacktestSettingsError(f"backtest.n_drop={s.n_drop} exceeds backtest.topk={s.topk}: "
                                    "at most topk names can be swapped a day")
    if s.account <= 0:
        raise BacktestSettingsError(f"backtest.account={s.account} must be positive cash")
    lt = s.limit_threshold
    if isinstance(lt, str):
        _choice("limit_threshold", lt, LIMIT_RULES)
    elif lt is not None and not (isinstance(lt, (int, float)) and 0 < float(lt) < 1):
        raise BacktestSettingsError(f"backtest.limit_threshold={lt!r}: use 'region', a fraction in (0, 1) "
                                    "(e.g. 0.095), or null for no price limits")
    for key, value in dataclasses.asdict(s.costs).items():
        if value < 0:
            raise BacktestSettingsError(f"backtest.costs.{key}={value} must be >= 0")

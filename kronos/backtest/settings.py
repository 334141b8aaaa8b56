"""``BacktestSettings``: the typed, validated ``backtest`` config group.

The dataclass defaults ARE ``conf/backtest/topk_dropout.yaml``'s defaults (a test checks that every
key agrees), so code run without Hydra behaves exactly like the CLI. ``from_config`` is the one place
the group is validated: a bad value stops the run with the key named and what to set instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from kronos.errors import ConfigError
from kronos.inference.settings import SamplingSettings, fill_unset, refuse_flat_sampling
from kronos.settings_io import boolean, choice, date_or_null, number, plain, require, settings_from_config, whole

ANCHORS = ("last_close", "reconstructed")
# Signals from the sample paths (every one gets its rows in the report; ``backtest.signal`` picks the
# headline): mean (predicted return averaged over steps 1..H), trade (predicted return over exactly the
# headline label's interval), sharpe (trade's mean over its std across paths), prob_up (share of paths
# in which trade is positive). last/max/min (the step-H / largest / smallest predicted return) may be
# the headline too.
PATH_SIGNALS = ("mean", "trade", "sharpe", "prob_up")
SIGNALS = (*PATH_SIGNALS, "last", "max", "min")
BASELINES = ("momentum", "reversal", "volume", "low_vol")
EXPOSURES = ("beta", "volatility", "size", "industry")
DEAL_PRICES = ("close", "open")
REGIONS = ("auto", "cn", "us", "none")
LIMIT_RULES = ("region",)
# Rows ``backtest.simulate`` may name: the headline (model), the other model signals, the baselines, the oracle
# (synthetic data only); ``all`` trades every row.
SIMULATE_ALL = "all"
SIMULATABLE = ("model", *(f"model_{s}" for s in PATH_SIGNALS), *BASELINES, "oracle")


BacktestSettingsError = ConfigError  # the name older code and tests import

@dataclass(frozen=True)
class Costs:
    """Trading costs (Qlib exchange): fractions of the deal value, and a minimum per trade in cash."""

    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0

    def __post_init__(self) -> None:
        _check_costs(self)


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
        batch_size, max_context, device: forecasting; precision: ``fp32`` (default), or ``bf16``/``fp16``
            autocast on CUDA (bf16 runs emulated on a CPU, fp16 is refused there; kronos.inference.predictor).
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
        simulate: the signal rows traded through Qlib's top-k dropout simulation (:data:`SIMULATABLE`
            names, or ``("all",)``); every row keeps its IC, factor analysis and long-short portfolio.
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
    precision: str = "fp32"
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
    simulate: tuple[str, ...] = ("model",)

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_config(cls, node: Any) -> "BacktestSettings":
        """Settings from the ``backtest`` group: an OmegaConf node, a plain mapping or a whole config holding one
        (missing keys take the defaults; unknown keys are refused, so a typo never silently does nothing)."""
        data = plain(node)
        if isinstance(data, Mapping) and isinstance(data.get("backtest"), Mapping):
            data = data["backtest"]
        if isinstance(data, Mapping):
            refuse_flat_sampling("backtest", data)
            if "sampling" in data:  # null T / top_p: the calibrated value, filled in by the stage
                data = {**data, "sampling": fill_unset(data["sampling"], cls.sampling)}
        return settings_from_config(cls, data, "backtest")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings (for metrics.json)."""
        out = dataclasses.asdict(self)
        out["baselines"] = list(self.baselines)
        out["neutralize"] = list(self.neutralize)
        out["simulate"] = list(self.simulate)
        return out

    def simulated(self, rows: "list[str] | tuple[str, ...]") -> list[str]:
        """The names among ``rows`` (the run's signal rows, in report order) that get a Qlib simulation."""
        return list(rows) if SIMULATE_ALL in self.simulate else [r for r in rows if r in self.simulate]


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BacktestSettingsError(f"backtest.{key}={value!r} is not one of {list(allowed)}: set backtest.{key} to one of them")


def _check(s: BacktestSettings) -> None:
    """The one validation of the group (called on construction)."""
    for key, check, example in _VALUES:
        require(f"backtest.{key}", getattr(s, key), check, example)
    _choice("signal", s.signal, SIGNALS)
    _choice("anchor", s.anchor, ANCHORS)
    _choice("region", s.region, REGIONS)
    _choice("precision", s.precision, ("fp32", "bf16", "fp16"))
    _choice("split", s.split, ("train", "val", "test"))
    if not s.baselines:
        raise BacktestSettingsError(f"backtest.baselines is empty: list at least one of {list(BASELINES)}")
    for name in s.baselines:
        _choice("baselines", name, BASELINES)
    if len(set(s.baselines)) != len(s.baselines):
        raise BacktestSettingsError(f"backtest.baselines={list(s.baselines)} lists a baseline twice")
    for name in s.neutralize:
        _choice("neutralize", name, EXPOSURES)
    _check_simulate(s)
    if "industry" in s.neutralize:  # refused here, so stage=all stops before training rather than after it
        raise BacktestSettingsError("backtest.neutralize lists industry, but no data source here carries an industry "
                                    "classification yet: remove industry from backtest.neutralize")
    if not 0.0 < s.risk_degree <= 1.0:
        raise BacktestSettingsError(f"backtest.risk_degree={s.risk_degree} must be in (0, 1] (1.0: fully invested)")
    mp = s.max_participation
    if mp is not None and not (isinstance(mp, (int, float)) and 0.0 < float(mp) <= 1.0):
        raise BacktestSettingsError(f"backtest.max_participation={mp!r}: use a share of the day's volume in (0, 1] "
                                    "(e.g. 0.1) or null for no cap")
    if not isinstance(s.sampling, SamplingSettings):
        raise BacktestSettingsError(f"backtest.sampling must be SamplingSettings, got {type(s.sampling).__name__}")
    s.sampling.validate(prefix="backtest.sampling.")
    if s.n_drop > s.topk:
        raise BacktestSettingsError(f"backtest.n_drop={s.n_drop} exceeds backtest.topk={s.topk}: "
                                    "at most topk names can be swapped a day")
    lt = s.limit_threshold
    if isinstance(lt, str):
        _choice("limit_threshold", lt, LIMIT_RULES)
    elif lt is not None and not (isinstance(lt, (int, float)) and 0 < float(lt) < 1):
        raise BacktestSettingsError(f"backtest.limit_threshold={lt!r}: use 'region', a fraction in (0, 1) "
                                    "(e.g. 0.095), or null for no price limits")


def _check_simulate(s: BacktestSettings) -> None:
    """``simulate``: known row names (or ``all`` alone), a baseline only when ``baselines`` lists it."""
    names = list(s.simulate)
    if not names:
        raise BacktestSettingsError("backtest.simulate is empty: list the signals to trade through Qlib, e.g. "
                                    "backtest.simulate=[model], or backtest.simulate=all")
    if SIMULATE_ALL in names:
        if len(names) > 1:
            raise BacktestSettingsError(f"backtest.simulate={names}: 'all' already names every signal; pass "
                                        "backtest.simulate=all alone")
        return
    for name in names:
        _choice("simulate", name, (SIMULATE_ALL, *SIMULATABLE))
        if name in BASELINES and name not in s.baselines:
            raise BacktestSettingsError(f"backtest.simulate names {name}, which backtest.baselines={list(s.baselines)} "
                                        f"does not compute: add it to backtest.baselines or drop it from "
                                        "backtest.simulate")
    if len(set(names)) != len(names):
        raise BacktestSettingsError(f"backtest.simulate={names} lists a signal twice")


def _check_costs(c: Costs) -> None:
    require("backtest.costs.open_cost", c.open_cost, number(0, 1), 0.0005)
    require("backtest.costs.close_cost", c.close_cost, number(0, 1), 0.0015)
    require("backtest.costs.min_cost", c.min_cost, number(0), 5)


# One-key rules: (key, check, a value that works). The cross-key rules follow in _check.
_VALUES = (
    ("topk", whole(1), 50), ("n_drop", whole(1), 5), ("hold_thresh", whole(0), 1), ("quantiles", whole(2), 5),
    ("batch_size", whole(1), 256), ("max_context", whole(1), 512), ("account", number(0, low_open=True), 100000000),
    ("deal_price", choice(*DEAL_PRICES), "close"), ("benchmark_total_return", boolean, "false"),
    ("drop_bad_prices", boolean, "false"), ("start", date_or_null, "2024-01-02"), ("end", date_or_null, "2024-12-31"),
)

"""One sampling settings object with one validation and one seeding mechanism, and the request checks.

Every front end (Python API, CLI, web UI, backtest and evaluate config) builds a :class:`SamplingSettings`
and calls :meth:`SamplingSettings.validate`; the limits below are the only place that says what a forecast
request may ask for, so a bad value gets the same one-line message everywhere (and never reaches the generation loop, where it would fail deep
inside torch: ``T=1e-300`` overflows the logits, a seed of 2**70 overflows the generator).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import torch

from kronos.errors import ConfigError
from kronos.inference.validation import ForecastInputError
from kronos.training_info import FILE_NAME, Calibration, TrainingInfo

T_MIN, T_MAX = 1e-2, 100.0
SPREAD_MIN, SPREAD_MAX = 0.25, 4.0  # the calibrated fan-out of the paths (kronos.inference.candles.scale_spread)
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit integer
SAMPLE_COUNT_MAX = 256
MIN_CONTEXT = 2
# Default cap on one request's work: (history rows the predictor sees) x pred_len x sample paths.
# Decoding cost grows with each factor; 2**20 is e.g. 256 rows x 64 steps x 64 paths or 512 x 128 x 16.
# Measured: a Kronos-small-shaped model on one CPU thread takes ~30 s per 2**20 (256 x 64 x 16: 6.9 s),
# where the unbounded requests of issue 11 ran for minutes (pred_len 512 x 32 paths: 512 s).
DEFAULT_WORK_BUDGET = 2**20


@dataclass(frozen=True)
class SamplingSettings:
    """How a forecast is drawn: the only sampling type (Python API, CLI, web UI, backtest, evaluate).

    Attributes:
        T: temperature in [T_MIN, T_MAX]; use ``top_k=1`` for greedy decoding.
        top_k: keep the k most likely tokens (0: off; 1: greedy).
        top_p: nucleus mass in (0, 1] (ignored when top_k > 0).
        sample_count: sample paths drawn, 1..SAMPLE_COUNT_MAX.
        seed: seed of the sampling generator (None: a different draw each time), 0..SEED_MAX.
        spread: in [SPREAD_MIN, SPREAD_MAX]: every sampled price's log distance from the last observed close
            is multiplied by it after decoding (:func:`kronos.inference.candles.scale_spread`; 1: the paths as
            decoded). The calibration chooses it on validation with T.
    """

    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sample_count: int = 1
    seed: int | None = None
    spread: float = 1.0

    def validate(self, flag: str = "", prefix: str = "") -> "SamplingSettings":
        """Check every field; return self or raise ForecastInputError.

        Args:
            flag: prefix of the names in messages: ``"--"`` for the CLI (``--top-p``), ``""`` for JSON keys.
            prefix: a config path put before each key (``"backtest.sampling."``).
        """
        name = _namer(flag, prefix)

        def number(value: object, key: str) -> float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ForecastInputError(f"{name(key)} must be a number, got {value!r}")
            return float(value)

        T = number(self.T, "T")
        if not T_MIN <= T <= T_MAX:  # also false for NaN
            raise ForecastInputError(
                f"{name('T')} must be between {T_MIN:g} and {T_MAX:g}, got {self.T!r}; for greedy decoding pass "
                f"{name('top_k')} 1 instead of a tiny temperature"
            )
        for key, value in (("top_k", self.top_k), ("sample_count", self.sample_count)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ForecastInputError(f"{name(key)} must be a whole number, got {value!r}")
        if self.top_k < 0:
            raise ForecastInputError(f"{name('top_k')} must be 0 (off) or positive, got {self.top_k}")
        top_p = number(self.top_p, "top_p")
        if not 0.0 < top_p <= 1.0:
            raise ForecastInputError(f"{name('top_p')} must be in (0, 1], got {self.top_p!r}")
        spread = number(self.spread, "spread")
        if not SPREAD_MIN <= spread <= SPREAD_MAX:  # also false for NaN
            raise ForecastInputError(f"{name('spread')} must be between {SPREAD_MIN:g} and {SPREAD_MAX:g} (1: the paths "
                                     f"as decoded), got {self.spread!r}")
        if not 1 <= self.sample_count <= SAMPLE_COUNT_MAX:
            raise ForecastInputError(
                f"{name('sample_count')} must be between 1 and {SAMPLE_COUNT_MAX}, got {self.sample_count}"
            )
        seed = self.seed
        if isinstance(seed, float) and seed.is_integer():  # JSON numbers from a browser arrive as floats
            seed = int(seed)
        elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            seed = int(seed)  # numpy integers: torch.Generator.manual_seed wants a Python int
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or not 0 <= seed <= SEED_MAX):
            raise ForecastInputError(
                f"{name('seed')} must be a whole number from 0 to 2**63-1 ({SEED_MAX}), got {self.seed!r}; "
                f"leave it empty for a different draw each time"
            )
        if seed is not self.seed:
            object.__setattr__(self, "seed", seed)  # frozen: normalise 7.0 to 7 in place, once validated
        return self

    def generator(self, device: torch.device | str) -> torch.Generator | None:
        """The one seeding mechanism: a generator seeded with ``seed`` on ``device`` (None when unseeded,
        i.e. torch's global generator draws)."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


def _namer(flag: str, prefix: str = "") -> Callable[[str], str]:
    """How a key is named in messages: ``--top-p`` (CLI flag), ``backtest.sampling.top_p`` or ``top_p``."""
    if flag:
        return lambda key: flag + key.replace("_", "-")
    return lambda key: prefix + key


def check_context(
    max_context: int, pred_len: int, context_limit: int | None = None, flag: str = "", reason: str | None = None
) -> None:
    """Check a request's ``max_context`` (the predictor's token window) and ``pred_len`` against it.

    Args:
        max_context: longest token window the predictor sees (history rows beyond it are dropped).
        pred_len: rows to forecast.
        context_limit: the longest context the model was trained for (None: not known).
        flag: see :meth:`SamplingSettings.validate`.
        reason: where ``context_limit`` comes from, added to its message.
    Raises:
        ForecastInputError: naming the key and the largest value that works.
    """
    name = _namer(flag)
    if isinstance(max_context, bool) or not isinstance(max_context, numbers.Integral):
        raise ForecastInputError(f"{name('max_context')} must be a whole number, got {max_context!r}")
    if max_context < MIN_CONTEXT:
        raise ForecastInputError(f"{name('max_context')} must be at least {MIN_CONTEXT}, got {max_context}")
    if context_limit is not None and max_context > context_limit:
        raise ForecastInputError(
            f"{name('max_context')} {max_context} is longer than the {context_limit} rows this model was "
            f"trained for: lower {name('max_context')} to {context_limit} or less"
            + (f" ({reason})" if reason else "")
        )
    if pred_len > max_context:
        raise ForecastInputError(
            f"{name('pred_len')} {pred_len} is longer than {name('max_context')} {max_context}: the predictor "
            f"decodes at most max_context rows, so lower {name('pred_len')} to {max_context} or less"
        )


def check_work_budget(rows: int, pred_len: int, sample_count: int, budget: int | None, flag: str = "") -> int:
    """Refuse a request whose work, rows x pred_len x sample_count, exceeds ``budget`` (None: no cap).

    Args:
        rows: history rows the predictor sees (lookback, capped at max_context).
    Returns:
        The work of the request.
    Raises:
        ForecastInputError: saying which of the three factors to lower and to what.
    """
    work = rows * pred_len * sample_count
    if budget is None or work <= budget:
        return work
    key = (lambda k: flag + k.replace("_", "-")) if flag else (lambda k: k)
    hints = []
    for label, factor, others in (
        (key("sample_count"), sample_count, rows * pred_len),
        (key("pred_len"), pred_len, rows * sample_count),
        (f"{key('lookback')} (or {key('max_context')})", rows, pred_len * sample_count),
    ):
        fits = budget // others
        if 1 <= fits < factor:
            hints.append(f"{label} to {fits}")
    advice = "lower " + " or ".join(hints) if hints else f"lower {key('pred_len')} and {key('sample_count')}"
    raise ForecastInputError(
        f"this forecast is too much work for one request: {rows} history rows x {pred_len} steps x {sample_count} "
        f"samples = {work:,} exceeds the budget of {budget:,}; {advice}"
    )


SAMPLING_KEYS = ("T", "top_k", "top_p", "sample_count", "seed")


def moved_sampling_message(stage: str, keys: Sequence[str]) -> str:
    """What to write instead of the old flat keys ``<stage>.<key>`` (``keys`` in SAMPLING_KEYS)."""
    moved = ", ".join(f"{stage}.{k} -> {stage}.sampling.{k}" for k in keys)
    return f"{stage}.{keys[0]} moved into the {stage}.sampling block: write {moved}"


def refuse_flat_sampling(stage: str, data: Mapping[str, Any]) -> None:
    """Refuse the old flat keys of a config group (``<stage>.T``, ...) with the new key named.

    Raises:
        ConfigError: ``<stage>.T moved into the <stage>.sampling block: write <stage>.T -> <stage>.sampling.T``.
    """
    flat = [k for k in SAMPLING_KEYS if k in data]
    if flat:
        raise ConfigError(moved_sampling_message(stage, flat))


CALIBRATED_KEYS = ("T", "top_p", "spread")
UNCALIBRATED = {"T": 1.0, "top_p": 1.0, "spread": 1.0}  # the model's own distribution, where no other default is named


def fill_unset(block: Any, defaults: SamplingSettings | None = None) -> Any:
    """A config's sampling block with its null T / top_p / spread replaced by ``defaults``' values (else
    UNCALIBRATED).

    Null means "the calibrated value": the settings are built with the stage's default there, and the stage
    later swaps in the predictor's recorded calibration (:func:`with_calibration`, on :func:`unset_keys`).
    Anything that is not a mapping is returned as it is (the settings type refuses it with its own message).
    """
    if not isinstance(block, Mapping):
        return block
    out = dict(block)
    for key in unset_keys(block):
        out[key] = getattr(defaults, key) if defaults is not None else UNCALIBRATED[key]
    return out


def unset_keys(block: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The calibrated keys a config's sampling block leaves null (present as null: absent means "default")."""
    return tuple(k for k in CALIBRATED_KEYS if block is not None and k in block and block[k] is None)


def calibration_of(predictor: str | Path | None) -> Calibration | None:
    """The calibration recorded in a predictor directory's ``training_info.json`` (None: none, or a hub id)."""
    info = TrainingInfo.read(predictor) if predictor else None
    return info.calibrated() if info is not None else None


def with_calibration(sampling: SamplingSettings, unset: Collection[str], calibration: Calibration | None,
                     where: str = "") -> tuple[SamplingSettings, dict[str, str]]:
    """``sampling`` with the keys in ``unset`` (T, top_p, spread left unset by the user) taken from ``calibration``.

    An explicit value always wins; an unset one takes the calibrated value when one was recorded, else keeps
    the value already in ``sampling`` (the caller's default).

    Returns:
        (the settings, ``{T: source, top_p: source, spread: source}``), each source ``config`` (set explicitly,
        or absent from a config block: its default),
        ``calibration (<where>/training_info.json)`` or ``default (no calibration recorded)``.
    """
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key in CALIBRATED_KEYS:
        if key not in unset:
            source[key] = "config"
        elif calibration is not None:
            values[key] = float(getattr(calibration, key))
            source[key] = f"calibration ({Path(where) / FILE_NAME if where else FILE_NAME}, chosen on the " \
                          f"{calibration.split} split by {calibration.criterion})"
        else:
            source[key] = "default (no calibration recorded)"
    return dataclasses.replace(sampling, **values), source

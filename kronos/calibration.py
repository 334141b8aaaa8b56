"""Calibration: the sampling temperature and the paths' spread, chosen on the validation split after training.

A model trained for a few CPU minutes rarely samples paths as wide as the future turns out to be: its
intervals under-cover. The temperature of token sampling widens (T > 1) or narrows (T < 1) the paths, but only
as far as the decoder's range allows: on a returns-input model of the synthetic market, T 0.5 -> 3 moved the
5-day spread of the sampled closes only from 4.2 to 5.1 %, and T 0.8 -> 2 the validation 90 % coverage from 0.86
to 0.88. The second
knob is the ``spread`` (:func:`kronos.inference.candles.scale_spread`): every sampled price's log distance from
the last observed close multiplied by one factor, which keeps each candle possible. After the predictor stage
exports, :func:`calibrate_export` forecasts a budget of validation decision windows at every temperature of a
small grid (one seed, so every T sees the same random numbers), scores the sampled closes at every spread of
its grid (no new forecast: the spread acts on the decoded paths), keeps, of the (T, spread) whose 50/80/90 %
central intervals all cover within ``calibration.coverage_tolerance`` of their nominal levels, the one with the
lowest mean scaled CRPS (``calibration.criterion=coverage``, the default: what the intervals promise first, then
the sharpest; the closest coverage when none is within; ``scaled_crps`` keeps the lowest mean scaled CRPS, a
proper score that also rewards sharpness, whatever the coverage) and records the grid, the choice and the coverage and PIT histogram before (T 1, top-p 1, spread 1,
the model's own distribution) and after in the export's ``training_info.json``
(:class:`kronos.training_info.Calibration`). Evaluate, ``KronosPredictor`` and ``kronos-predict`` then use
it wherever their own T / top_p / spread is left unset (the backtest too when ``backtest.sampling.T`` / ``top_p``
are null; its default stays T 0.6 / top-p 0.9, which its mean-of-paths signals need); an explicit value always
wins. Only the validation split is read: nothing is tuned on test.

Settings: ``calibration.*`` (conf/calibration/default.yaml), read by :meth:`CalibrationSettings.from_config`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kronos import scores as m
from kronos.errors import KronosUserError
from kronos.evaluate.origins import Origins, collect_origins
from kronos.inference.decisions import iter_decision_forecasts
from kronos.inference.candles import scale_spread
from kronos.inference.settings import SPREAD_MAX, SPREAD_MIN, T_MAX, T_MIN, UNCALIBRATED, SamplingSettings
from kronos.training_info import Calibration, TrainingInfo

log = logging.getLogger(__name__)

SPLIT = "val"
COVERAGE_LEVELS = (0.5, 0.8, 0.9)
PIT_BINS = 10
CRITERIA = ("coverage", "scaled_crps")


class CalibrationConfigError(KronosUserError, ValueError):
    """An invalid ``calibration.*`` setting."""


@dataclass(frozen=True)
class CalibrationSettings:
    """How the temperature is searched (see conf/calibration/default.yaml).

    Attributes:
        enabled: run the search after the predictor stage exports.
        grid: candidate temperatures (T 1, the uncalibrated default, is always scored too).
        spreads: candidate spreads scored at every temperature (1, the paths as decoded, always too).
        top_p: nucleus mass every candidate samples with (1: the whole distribution).
        sample_count: sample paths per window; windows: at most this many validation windows (whole dates,
            every ``stride``-th date so that the budget holds); batch_size: windows per predictor call.
        seed: the sampling seed shared by every candidate.
        criterion: what chooses (T, spread): ``coverage`` (the lowest scaled CRPS among the candidates whose
            50/80/90 % central intervals all cover within ``coverage_tolerance`` of nominal; when none does, the
            smallest largest distance) or ``scaled_crps`` (the lowest scaled CRPS).
        coverage_tolerance: the largest |coverage - nominal| that counts as calibrated for ``coverage``.
    """

    enabled: bool = True
    grid: tuple[float, ...] = (0.8, 1.0, 1.25, 1.5, 2.0)
    spreads: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5)
    top_p: float = 1.0
    sample_count: int = 12
    windows: int = 960
    batch_size: int = 256
    seed: int = 0
    criterion: str = "coverage"
    coverage_tolerance: float = 0.02

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise CalibrationConfigError(f"calibration.criterion={self.criterion!r} is not one of {list(CRITERIA)}")
        if not self.grid or any(not (T_MIN <= float(t) <= T_MAX) for t in self.grid):
            raise CalibrationConfigError(f"calibration.grid={list(self.grid)}: give temperatures in [{T_MIN}, {T_MAX}]")
        if not self.spreads or any(not (SPREAD_MIN <= float(k) <= SPREAD_MAX) for k in self.spreads):
            raise CalibrationConfigError(f"calibration.spreads={list(self.spreads)}: give spreads in [{SPREAD_MIN}, "
                                         f"{SPREAD_MAX}] (1: the paths as decoded)")
        if not 0.0 <= float(self.coverage_tolerance) < 0.5:
            raise CalibrationConfigError(f"calibration.coverage_tolerance={self.coverage_tolerance!r}: give a distance "
                                         "in [0, 0.5), e.g. 0.02")
        if self.sample_count < 2 or self.windows < 1 or self.batch_size < 1:
            raise CalibrationConfigError("calibration.sample_count must be >= 2 (intervals need paths), calibration."
                                         "windows and calibration.batch_size >= 1")
        SamplingSettings(T=1.0, top_p=self.top_p, sample_count=self.sample_count, seed=self.seed).validate(
            prefix="calibration.")

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> "CalibrationSettings":
        """From the ``calibration`` group (None: the defaults); unknown keys are refused by name."""
        data = dict(node or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CalibrationConfigError(f"unknown calibration setting(s) {unknown}: valid keys are {sorted(known)}")
        for key in ("grid", "spreads"):
            if key in data:
                data[key] = tuple(float(t) for t in data[key])
        return cls(**data)


def budget_origins(datamodule: Any, windows: int, batch_size: int) -> Origins:
    """Validation origins on every ``stride``-th date (whole cross-sections), the smallest stride that keeps
    them within ``windows`` (at least the first date's, should one date alone exceed the budget)."""
    every = collect_origins(datamodule, SPLIT, 1, batch_size)
    dates, per_date = np.unique(every.datetime, return_counts=True)
    stride = next((k for k in range(1, len(dates) + 1) if per_date[::k].sum() <= windows), len(dates))
    keep = np.isin(every.datetime, dates[::stride])
    arrays = {f.name: getattr(every, f.name)[keep] for f in dataclasses.fields(Origins)
              if isinstance(getattr(every, f.name), np.ndarray)}
    return dataclasses.replace(every, **arrays)


def score_temperature(predictor: Any, origins: Origins, T: float, settings: CalibrationSettings
                      ) -> list[dict[str, Any]]:
    """The closes sampled at temperature ``T``, scored at every spread of ``settings.spreads`` (and 1): one row
    ``{T, spread, scaled_crps, coverage, pit_histogram}`` per spread, in the order of :func:`spread_grid`."""
    sampling = SamplingSettings(T=T, top_k=0, top_p=settings.top_p, sample_count=settings.sample_count,
                                seed=settings.seed)
    close = list(origins.features).index("close")
    parts = [fc.paths[..., close] for fc in iter_decision_forecasts(predictor, origins.batches(settings.batch_size),
                                                                   sampling, origins.features)]
    samples = np.moveaxis(np.concatenate(parts).astype(np.float64), 1, -1)           # [N, H, S]
    last = np.asarray(origins.hist_close, dtype=np.float64)[:, -1]                    # [N]
    rows = []
    for spread in spread_grid(settings):
        # closes only: [N, H, S, 1] read as paths of S steps with one ``close`` column, anchored per [N, H]
        widened = scale_spread(samples[..., None], last[:, None], spread, ("close",))[..., 0]
        rows.append({"T": float(T), "spread": float(spread), **score_closes(origins, widened, settings.seed)})
    return rows


def spread_grid(settings: CalibrationSettings) -> list[float]:
    """The spreads scored at every temperature: ``settings.spreads`` and 1, ascending."""
    return sorted({float(k) for k in settings.spreads} | {UNCALIBRATED["spread"]})


def score_closes(origins: Origins, samples: np.ndarray, seed: int) -> dict[str, Any]:
    """Scaled CRPS, central-interval coverage and PIT histogram of sampled closes float [N, H, S]."""
    realised = origins.future_close
    seen = np.isfinite(realised)
    filled = np.where(seen, realised, 0.0)
    crps = m.crps_samples(samples, filled) / m.mase_scale(origins.hist_close)[:, None]
    pit = np.where(seen, m.pit_values(samples, filled, np.random.default_rng(seed)), np.nan)
    return {
        "scaled_crps": m.nanmean(np.where(seen, crps, np.nan)),
        "coverage": {f"{lv:g}": m.interval_coverage(pit, *m.central_bounds(lv)) for lv in COVERAGE_LEVELS},
        "pit_histogram": m.pit_histogram(pit, PIT_BINS),
    }


def coverage_error(row: Mapping[str, Any]) -> float:
    """The largest |coverage - nominal| over :data:`COVERAGE_LEVELS` of a :func:`score_temperature` row
    (inf when a level has no coverage)."""
    gaps = [abs(float(row["coverage"][f"{lv:g}"]) - lv) if row["coverage"][f"{lv:g}"] is not None else np.inf
            for lv in COVERAGE_LEVELS]
    return float(max(gaps)) if all(np.isfinite(gaps)) else float("inf")


def calibrate(predictor: Any, datamodule: Any, settings: CalibrationSettings) -> Calibration:
    """Search ``settings.grid`` (plus T 1) x ``settings.spreads`` (plus 1) on validation windows; the (T, spread)
    that best meets ``settings.criterion`` (the sharpest of those covering within the tolerance, or the lowest
    scaled CRPS; ties go to the one nearest T 1, spread 1).

    Args:
        predictor: exposes ``forecast_normalized`` (a ``KronosPredictor``).
        datamodule: ``eval_dataloader("val")``, ``lookback``, ``horizon``, ``features``.
    """
    origins = budget_origins(datamodule, settings.windows, settings.batch_size)
    grid = sorted({float(t) for t in settings.grid} | {UNCALIBRATED["T"]})
    rows = [row for T in grid for row in score_temperature(predictor, origins, T, settings)]
    scored = [r for r in rows if np.isfinite(r["scaled_crps"])]
    if not scored:
        raise ValueError("calibration: no validation window has a realised future to score")

    def plain(r: Mapping[str, Any]) -> tuple[float, float]:
        return abs(r["T"] - UNCALIBRATED["T"]), abs(r["spread"] - UNCALIBRATED["spread"])

    if settings.criterion == "coverage":
        calibrated = [r for r in scored if coverage_error(r) <= settings.coverage_tolerance]
        best = (min(calibrated, key=lambda r: (r["scaled_crps"], *plain(r))) if calibrated
                else min(scored, key=lambda r: (coverage_error(r), r["scaled_crps"], *plain(r))))
    else:
        best = min(scored, key=lambda r: (r["scaled_crps"], *plain(r)))
    before = next(r for r in rows if r["T"] == UNCALIBRATED["T"] and r["spread"] == UNCALIBRATED["spread"])
    return Calibration(T=best["T"], top_p=float(settings.top_p), criterion=settings.criterion, split=SPLIT,
                       windows=len(origins), sample_count=settings.sample_count, seed=settings.seed,
                       grid=tuple(rows), before=before, after=best, spread=float(best["spread"]))


def calibrate_export(predictor: Any, datamodule: Any, export_dir: str | Path,
                     settings: CalibrationSettings) -> Calibration:
    """:func:`calibrate` and record the result in ``export_dir/training_info.json`` (rank zero only)."""
    result = calibrate(predictor, datamodule, settings)
    info = TrainingInfo.read(export_dir) or TrainingInfo(stage="predictor")
    info.calibration = result.as_dict()
    info.write(export_dir)
    log.info("calibration: T %g, spread %g chosen on %d validation windows (scaled CRPS %.4f vs %.4f at T 1, spread 1; "
             "coverage 50/80/90 %s vs %s)", result.T, result.spread, result.windows, result.after["scaled_crps"],
             result.before["scaled_crps"], _coverage_text(result.after), _coverage_text(result.before))
    for key, name, chosen in (("T", "grid", result.T), ("spread", "spreads", result.spread)):
        values = sorted({float(row[key]) for row in result.grid})
        if len(values) > 2 and chosen in (values[0], values[-1]):
            log.warning("calibration: %s %g is at the edge of calibration.%s %s: the best value may lie beyond it; "
                        "widen calibration.%s", key, chosen, name, values, name)
    return result


def _coverage_text(row: Mapping[str, Any]) -> str:
    return "/".join(f"{value:.2f}" for value in row["coverage"].values())

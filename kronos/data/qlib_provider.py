"""Qlib providers: the one place in ``kronos`` that calls ``qlib.init`` and writes provider directories.

Layout written (what pyqlib's file storage reads):
``calendars/<freq>.txt`` (one timestamp a line), ``instruments/all.txt`` and
``instruments/<market>.txt`` (``SYMBOL<TAB>start<TAB>end``; membership spans when a ``member``
column is given), ``features/<symbol lower>/<field>.<freq>.bin`` (little-endian float32; the first
value is the index into the calendar of the symbol's first row, then one value per calendar
step up to its last row, NaN where it has no row). Fields: open, high, low, close, volume,
amount, factor (1.0 when absent: Qlib's exchange needs $factor) and change (close-to-close
return: Qlib's exchange needs $change).

Writing never loses data: a provider is built in a temporary directory and renamed into place;
a non-empty directory that is not a provider is refused, and an existing provider is replaced
only when ``overwrite=True`` (it stays intact if the build fails). The calendar frequency must
match the data's (hourly bars under ``freq="day"`` would collapse to duplicated dates).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from kronos.atomic import atomic_directory
from kronos.data.errors import DataValidationError, clean_csv_hint, quoted
from kronos.data.features import PRICE_COLUMNS, fill_volume_amount
from kronos.data.panel import Panel

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount", "factor", "change")
# Written inside every provider this module builds: the digest of what went into it (see ``content_digest``),
# so a rebuild of identical content (a re-run backtest on CSV or synthetic data) keeps the provider as it is.
CONTENT_FILE = ".kronos_content"
CONTENT_VERSION = 1
PROVIDER_PARTS: tuple[str, ...] = ("calendars", "instruments", "features")
MINUTE_UNIT = "min"  # qlib.utils.time.Freq.NORM_FREQ_MINUTE (qlib is imported lazily here)


def init_qlib(provider_uri: str | Path, region: str = "cn", *, freq: str = "day",
              logging_level: int | None = None) -> Path:
    """Point Qlib's process-global configuration at ``provider_uri``; the only ``qlib.init`` in kronos.

    Re-initialises only when Qlib's *live* configuration points elsewhere (another provider or
    region), since other code may have re-initialised it in between; ``kernels=1`` because the
    expression engine's process pool costs more than it saves on the reads done here.

    Returns:
        The resolved provider directory.
    """
    import qlib
    from qlib.config import C

    uri = Path(provider_uri).expanduser().resolve()
    current = None
    if C.registered and C.get("region") == region:
        try:
            current = Path(C.dpm.get_data_uri(freq)).resolve()
        except (KeyError, AttributeError, TypeError):
            current = None
    if current != uri:
        kwargs = {} if logging_level is None else {"logging_level": logging_level}
        qlib.init(provider_uri=str(uri), region=region, kernels=1, **kwargs)
    return uri


def qlib_symbol(name: str) -> str:
    """A symbol Qlib accepts: upper case, letters/digits/underscore only.

    ASCII punctuation becomes '_' (``BRK/B`` -> ``BRK_B``); a non-ASCII letter or digit becomes ``U`` and its
    code point in hex (``日経225`` -> ``U65E5U7D4C225``), so such symbols stay usable and distinct.
    """
    text = str(name).strip()
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_")
                   else f"U{ord(ch):04X}" if ch.isalnum() else "_" for ch in text).upper()


def check_qlib_symbols(names: list[str], origin: str = "data") -> dict[str, str]:
    """Map every instrument name to its Qlib symbol, refusing names Qlib cannot tell apart.

    Returns:
        {name: Qlib symbol}.

    Raises:
        DataValidationError: a name with no letter or digit (naming it), or two names with one Qlib symbol
            (``aapl`` and ``AAPL``, ``BRK/B`` and ``BRK.B``), naming both and what to do.
    """
    seen: dict[str, str] = {}
    out: dict[str, str] = {}
    for name in names:
        if name is None or (isinstance(name, float) and np.isnan(name)) or not str(name).strip():
            raise DataValidationError(f"{origin}: symbol {quoted(name)} is not a usable instrument name (empty or "
                                      "missing): fill the symbol column for every row")
        sym = qlib_symbol(name)
        if not sym.strip("_"):
            raise DataValidationError(f"{origin}: symbol {quoted(name)} has no letter or digit, so it cannot name a "
                                      "Qlib instrument: rename it (letters, digits, underscores)")
        if sym in seen:
            raise DataValidationError(
                f"{origin}: symbols {quoted(seen[sym])} and {quoted(name)} are the same instrument for Qlib "
                f"({quoted(sym)}: symbols are case-insensitive and punctuation becomes '_'): rename or merge one")
        seen[sym] = str(name)
        out[str(name)] = sym
    return out


MARKET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def check_market(market: str) -> str:
    """A market name is a plain file stem (``instruments/<market>.txt``): letters, digits, underscore.

    Raises:
        DataValidationError: anything else (``../x``, ``a/b``, an empty name), before any work.
    """
    if not isinstance(market, str) or not MARKET_NAME.match(market):
        raise DataValidationError(f"--market {quoted(market)} is not a plain market name: use letters, digits and "
                                  "underscores only (e.g. --market csi300); it names instruments/<market>.txt")
    return market


def is_qlib_provider(path: str | Path) -> bool:
    """Whether ``path`` is a directory laid out as a Qlib provider (calendars/, instruments/, features/)."""
    path = Path(path)
    return all((path / part).is_dir() for part in PROVIDER_PARTS)


def check_output_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output directory whose content a provider build would destroy.

    Allowed: a missing or empty directory; an existing Qlib provider when ``overwrite``.

    Raises:
        DataValidationError: ``out_dir`` is a file, a non-empty directory that is not a Qlib
            provider, or a provider while ``overwrite`` is False.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise DataValidationError(f"{out}: exists and is not a directory. Give a new or empty directory as --out.")
    if out.is_dir() and any(out.iterdir()):
        if not is_qlib_provider(out):
            held = sorted(p.name for p in out.iterdir())[:5]
            raise DataValidationError(
                f"{out}: the directory is not empty and is not a Qlib provider (it holds {held}"
                f"{' ...' if len(list(out.iterdir())) > 5 else ''}); writing a provider there would replace "
                "all of it. Give a new or empty directory as --out."
            )
        if not overwrite:
            raise DataValidationError(
                f"{out}: already holds a Qlib provider. Pass --overwrite (overwrite=True) to replace it; "
                "the old provider stays intact until the new one is complete."
            )
    return out


def detect_frequency(stamps: list[np.ndarray]) -> str:
    """The Qlib frequency name of the data: "day" for date-only bars, else "<N>min".

    N is the most common positive step between consecutive bars of a series (gaps such as
    nights, weekends and lunch breaks are rarer than the bar step itself).

    Args:
        stamps: per series, datetime64[ns] [T_i] sorted timestamps.
    """
    all_stamps = np.concatenate([np.asarray(s, dtype="datetime64[ns]") for s in stamps]) if stamps else np.array([])
    intraday = bool(len(all_stamps)) and bool(
        (all_stamps.astype("datetime64[ns]") != all_stamps.astype("datetime64[D]").astype("datetime64[ns]")).any()
    )
    if not intraday:
        return "day"
    steps: Counter[int] = Counter()
    for s in stamps:
        d = np.diff(np.asarray(s, dtype="datetime64[ns]").astype(np.int64))
        d = d[d > 0]
        steps.update((d // 60_000_000_000).tolist())
    minutes = steps.most_common(1)[0][0] if steps else 1
    return f"{max(int(minutes), 1)}min"


def bar_frequency(stamps: np.ndarray) -> str:
    """One series' bar frequency: ``<N>min`` (times of day; N its most common step), else ``day``, ``week`` or
    ``month`` from its median step between dates (weekends and holidays leave daily bars daily).

    Args:
        stamps: datetime64[ns] [T], sorted.
    """
    ts = np.asarray(stamps, dtype="datetime64[ns]")
    if detect_frequency([ts]) != "day":
        return detect_frequency([ts])
    steps = np.diff(ts.astype("datetime64[D]").astype(np.int64))
    days = float(np.median(steps[steps > 0])) if (steps > 0).any() else 1.0
    return "day" if days < 4 else "week" if days < 15 else "month"


def check_one_frequency(names: list[str], stamps: list[np.ndarray], origin: str = "data") -> str:
    """The one bar frequency of a set of series, refusing a mix (hourly with daily, daily with weekly, ...).

    Splits by ratio, the calendar of a provider and bars per year are read off the union of the timestamps:
    hourly stamps would cut daily series as if they were hourly.

    Raises:
        DataValidationError: naming how many series have each frequency, an example of each, and what to do.
    """
    kinds: dict[str, list[str]] = {}
    for name, ts in zip(names, stamps):
        kinds.setdefault(bar_frequency(ts), []).append(str(name))
    if len(kinds) > 1:
        found = "; ".join(f"{len(v)} {k} series (e.g. {quoted(v[0])})" for k, v in kinds.items())
        raise DataValidationError(f"{origin}: mixes bar frequencies ({found}); one experiment or provider takes one "
                                  "frequency: put them in separate files and experiments, or resample to one")
    return next(iter(kinds), "day")


def check_frequency(freq: str, stamps: list[np.ndarray], origin: str = "data") -> tuple[str, str]:
    """Refuse a calendar frequency that does not match the data.

    Returns:
        (unit, name): Qlib's unit of ``freq`` ("day", "min", ...) and the name its files take:
        "day" for 1d/d/day, "<N>min" for minutes (what ``D.calendar(freq=...)`` looks up), else ``freq``.

    Raises:
        DataValidationError: ``freq`` is not a Qlib frequency, or the data's frequency differs
            (naming the ``--freq`` to use).
    """
    from qlib.utils.time import Freq

    try:
        count, unit = Freq.parse(freq)
    except ValueError as err:
        raise DataValidationError(
            f"--freq {freq!r} is not a Qlib frequency; use day, or <N>min (1min, 5min, 60min, ...)."
        ) from err
    found = detect_frequency(stamps)
    if unit == Freq.NORM_FREQ_MINUTE:
        ok = found != "day" and Freq.parse(found)[0] == count
    else:  # day, week, month: a date-only calendar
        ok = found == "day"
    if not ok:
        raise DataValidationError(
            f"{origin}: the data's bars are {'daily (dates without times)' if found == 'day' else found + ' apart'}, "
            f"but the calendar frequency is {freq!r}; that calendar would be corrupt. Use --freq {found}."
        )
    if unit == Freq.NORM_FREQ_MINUTE:
        name = f"{count}{unit}"
    else:
        name = "day" if unit == Freq.NORM_FREQ_DAY and count == 1 else freq
    return unit, name


def _format_stamps(stamps: pd.DatetimeIndex, freq_unit: str) -> list[str]:
    """Calendar text: with the time of day for minute frequencies (Qlib's unit "min"), dates otherwise."""
    fmt = "%Y-%m-%d %H:%M:%S" if freq_unit == MINUTE_UNIT else "%Y-%m-%d"
    return list(stamps.strftime(fmt))


def _member_spans(member: np.ndarray, stamps: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Contiguous runs of True in ``member`` [T] as (first, last) timestamps."""
    m = np.concatenate([[False], member.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(stamps[a], stamps[b - 1]) for a, b in zip(edges[::2], edges[1::2])]


def _prepare(name: str, df: pd.DataFrame) -> pd.DataFrame:
    if "timestamps" in df.columns:
        df = df.set_index("timestamps")
    df = df.copy()
    df.index = pd.DatetimeIndex(df.index)
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(f"symbol {quoted(name)}: missing column(s) {missing}; found {quoted(list(df.columns), 300)}.")
    if not df.index.is_monotonic_increasing or df.index.has_duplicates:
        raise DataValidationError(
            f"symbol {quoted(name)}: timestamps are unsorted or duplicated. {clean_csv_hint('<file>')}"
        )
    df = fill_volume_amount(df)
    if "factor" not in df.columns:
        df["factor"] = 1.0
    if "change" not in df.columns:
        df["change"] = df["close"] / df["close"].shift(1) - 1.0
    return df


def build_provider(
    frames: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    freq: str = "day",
    market: str = "all",
    *,
    overwrite: bool = False,
) -> Path:
    """Write a Qlib provider for ``frames`` ({symbol: DataFrame indexed by datetime}).

    Frames hold open/high/low/close (volume, amount, factor, change optional; a boolean ``member``
    column gives the ``<market>`` spans). The directory is built under a temporary name and
    renamed into place, so a crash never leaves a half-written provider.

    Args:
        frames: the series, each sorted by time without duplicates.
        out_dir: provider directory: missing, empty, or (with ``overwrite``) an existing provider.
        freq: Qlib calendar frequency; must match the data (``day`` for daily, ``60min`` for hourly).
        market: also write ``instruments/<market>.txt`` (membership spans) beside ``all.txt``.
        overwrite: replace an existing provider in ``out_dir``; one this function wrote from the same content
            (the :func:`content_digest` kept in its ``.kronos_content``) is left as it is.

    Returns:
        The provider directory (pass it to :func:`init_qlib`).

    Raises:
        DataValidationError: see :func:`check_output_dir` and :func:`check_frequency`; bad frames.
    """
    check_market(market)
    out_dir = check_output_dir(out_dir, overwrite)
    if not frames:
        raise DataValidationError(f"{out_dir}: no series to write.")
    symbols = check_qlib_symbols(list(frames), origin=f"provider {out_dir}")
    prepared = {symbols[str(name)]: _prepare(str(name), df) for name, df in frames.items()}
    check_one_frequency(list(frames), [d.index.to_numpy() for d in prepared.values()], origin=f"provider {out_dir}")
    unit, freq = check_frequency(freq, [d.index.to_numpy() for d in prepared.values()], origin=f"provider {out_dir}")
    digest = content_digest(prepared, freq, market)
    if overwrite and _held_digest(out_dir) == digest:  # the same content: keep the provider (and Qlib's view of it)
        return out_dir
    calendar = pd.DatetimeIndex(np.unique(np.concatenate([d.index.to_numpy() for d in prepared.values()])))
    pos = pd.Series(np.arange(len(calendar)), index=calendar)

    from qlib.utils import code_to_fname

    with atomic_directory(out_dir) as tmp:
        (tmp / CONTENT_FILE).write_text(digest + "\n")
        (tmp / "calendars").mkdir()
        (tmp / "instruments").mkdir()
        (tmp / "calendars" / f"{freq}.txt").write_text("\n".join(_format_stamps(calendar, unit)) + "\n")
        all_rows, market_rows = [], []
        for sym, df in prepared.items():
            start, end = int(pos[df.index[0]]), int(pos[df.index[-1]])
            span = _format_stamps(pd.DatetimeIndex([df.index[0], df.index[-1]]), unit)
            all_rows.append(f"{sym}\t{span[0]}\t{span[1]}")
            if "member" in df.columns:
                for a, b in _member_spans(df["member"].to_numpy(), df.index):
                    s = _format_stamps(pd.DatetimeIndex([a, b]), unit)
                    market_rows.append(f"{sym}\t{s[0]}\t{s[1]}")
            else:
                market_rows.append(all_rows[-1])
            feat_dir = tmp / "features" / code_to_fname(sym).lower()
            feat_dir.mkdir(parents=True)
            dense = df.reindex(calendar[start : end + 1])
            for field in FIELDS:
                body = dense[field].to_numpy(dtype=np.float32)
                np.concatenate([[np.float32(start)], body]).astype("<f4").tofile(feat_dir / f"{field}.{freq}.bin")
        (tmp / "instruments" / "all.txt").write_text("\n".join(all_rows) + "\n")
        if market.lower() != "all":
            (tmp / "instruments" / f"{market.lower()}.txt").write_text("\n".join(market_rows) + "\n")
    return out_dir


def content_digest(prepared: Mapping[str, pd.DataFrame], freq: str, market: str) -> str:
    """SHA-256 of everything a provider is written from: each symbol's prepared frame (values and index),
    the frequency, the market name and :data:`CONTENT_VERSION`."""
    import hashlib

    digest = hashlib.sha256(f"{CONTENT_VERSION}|{freq}|{market.lower()}|{','.join(FIELDS)}".encode())
    for sym in sorted(prepared):
        digest.update(sym.encode() + b"\0")
        digest.update(pd.util.hash_pandas_object(prepared[sym], index=True).to_numpy().tobytes())
        digest.update(",".join(map(str, prepared[sym].columns)).encode())
    return digest.hexdigest()


def _held_digest(out_dir: Path) -> str | None:
    """The content digest an existing provider in ``out_dir`` was written with (None: none, or not ours)."""
    try:
        return (out_dir / CONTENT_FILE).read_text().strip() or None
    except OSError:
        return None


def build_provider_from_panel(panel: Panel, out_dir: str | Path, market: str = "all", freq: str = "day",
                              *, overwrite: bool = False) -> Path:
    """Write a Qlib provider for a ``Panel`` (e.g. synthetic data) with :func:`build_provider`."""
    return build_provider({inst: panel.frame(inst) for inst in panel.instruments}, out_dir, freq=freq,
                          market=market, overwrite=overwrite)

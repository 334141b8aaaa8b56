"""Column resolution and validation of long-format OHLCV tables, shared by the CSV and Parquet readers.

One implementation, so a file is accepted or refused with the same message whatever its format
and whichever entry point (training, web UI, CLI) reads it. Functions here work on one pandas
chunk at a time; the callers own reading (``pd.read_csv``, pyarrow row groups) and the checks
that span chunks (order of timestamps, rows per series).

Rules (each refusal names the source, the column and the first bad row):
- column names are matched case-insensitively; two columns that differ only in case (``close``
  and ``Close``) are refused; aliases: date/datetime/time/trade_date, vol, amt/turnover;
- volume given per asset (crypto exports: ``Volume BTC``, ``Volume USDT``) is recognised: the base
  asset's volume becomes ``volume``, the quote asset's ``amount``;
- prices must be finite and > 0, ``high >= low``; volume/amount finite and >= 0; NaN is refused
  or its rows dropped (``on_nan``);
- timestamps: text or datetime values; 8-digit integers are read as YYYYMMDD (tushare's
  ``trade_date``); other numbers (unix epochs) are refused with the conversion to use, since
  seconds and milliseconds cannot be told apart safely; timestamps with UTC offsets are
  converted to UTC (naive UTC afterwards); a mix of offset and offset-less values is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError, quoted
from kronos.data.features import FEATURES, PRICE_COLUMNS, fill_volume_amount

TIME_ALIASES: tuple[str, ...] = ("timestamps", "timestamp", "datetime", "date", "time", "trade_date")
SYMBOL_ALIASES: tuple[str, ...] = ("symbol", "ticker", "instrument", "code", "ts_code")
COLUMN_ALIASES: dict[str, str] = {"vol": "volume", "amt": "amount", "turnover": "amount"}
# Currencies that are the quote side of a pair (what a crypto "Volume <asset>" column is priced in).
QUOTE_ASSETS: tuple[str, ...] = ("usdt", "usdc", "busd", "tusd", "fdusd", "dai", "usd", "eur", "gbp", "jpy",
                                 "krw", "try", "brl", "aud")
_ASSET_VOLUME = re.compile(r"^vol(?:ume)?[ _\-]+([a-z0-9]+)$")
_TZ_SUFFIX = r"(?:[zZ]|[+-]\d{2}:?\d{2})\s*$"

NanPolicy = Literal["raise", "drop"]
RowLabel = Callable[[int], str]


def csv_row(i: int) -> str:
    """A data row of a CSV file (0-based, header excluded) as the user finds it in an editor."""
    return f"row {i} (line {i + 2} of the file)"


def plain_row(i: int) -> str:
    """A data row of a table without line numbers (Parquet): its 0-based position."""
    return f"row {i}"


@dataclass(frozen=True)
class Columns:
    """The resolved (lower-case) column names of a table: time, symbol and member (None: absent)."""

    time: str
    symbol: str | None
    member: str | None


def normalize_names(df: pd.DataFrame, src: str) -> pd.DataFrame:
    """Lower-case and strip column names, refusing two that collide (``close`` and ``Close``)."""
    lowered = [str(c).strip().lower() for c in df.columns]
    seen: dict[str, str] = {}
    for orig, low in zip(df.columns, lowered):
        if low in seen:
            raise DataValidationError(
                f"{src}: columns {quoted(seen[low])} and {quoted(orig)} are the same column ('{low}') up to case; "
                "keep one of them (delete or rename the other)."
            )
        seen[low] = str(orig)
    df = df.copy(deep=False)
    df.columns = lowered
    return df.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if k in df.columns and v not in df.columns})


def _pick(columns: list[str], wanted: str | None, aliases: tuple[str, ...], what: str, src: str) -> str | None:
    if wanted is not None:
        key = wanted.strip().lower()
        if key not in columns:
            raise DataValidationError(
                f"{src}: the {what} column {quoted(wanted)} is missing; columns found: {quoted(columns, 300)}. "
                f"Pass the right name ({what}_column=...)."
            )
        return key
    return next((a for a in aliases if a in columns), None)


def check_delimiter(columns: list[str], src: str) -> None:
    """Refuse a table read as one column whose name holds another delimiter (a ';'-separated export).

    Raises:
        DataValidationError: naming the delimiter and the conversion to use.
    """
    if len(columns) != 1:
        return
    sep = next((c for c in (";", "\t", "|") if c in str(columns[0])), None)
    if sep is not None:
        raise DataValidationError(
            f"{src}: read as a single column {quoted(str(columns[0]))}: the file looks {quoted(sep)}-separated, but Kronos reads "
            f"comma-separated CSV. Convert it first, e.g. pandas: pd.read_csv(path, sep={quoted(sep)}) (add decimal=',' "
            "if numbers use a decimal comma), then .to_csv(new_path, index=False)."
        )


def resolve_columns(columns: list[str], src: str, time_column: str | None = None, symbol_column: str | None = None,
                    member_column: str | None = None) -> Columns:
    """Find the time, symbol and member columns among ``columns`` (already normalised).

    Raises:
        DataValidationError: a named column is missing, there is no timestamp column, or a price
            column is missing.
    """
    check_delimiter(columns, src)
    tcol = _pick(columns, time_column, TIME_ALIASES, "time", src)
    if tcol is None:
        raise DataValidationError(
            f"{src}: no timestamp column; expected one of {list(TIME_ALIASES)}, found {quoted(columns, 300)}. "
            "Rename it or pass time_column=..."
        )
    scol = _pick(columns, symbol_column, SYMBOL_ALIASES, "symbol", src)
    mcol = member_column.strip().lower() if member_column else None
    if mcol is None:
        candidates = [c for c in columns if c == "member" or c.startswith("in_")]
        mcol = candidates[0] if len(candidates) == 1 else None
    elif mcol not in columns:
        raise DataValidationError(f"{src}: the member column {quoted(member_column)} is missing; columns found: {quoted(columns, 300)}.")
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if missing:
        raise DataValidationError(
            f"{src}: missing column(s) {missing}; found {quoted(columns, 300)}. Kronos needs open, high, low, close "
            "(volume and amount are optional)."
        )
    return Columns(tcol, scol, mcol)


def per_asset_volume_columns(columns: list[str]) -> list[str]:
    """The normalised column names that give a volume per asset (``volume btc``, ``vol_usdt``)."""
    return [c for c in columns if _ASSET_VOLUME.match(c)]


def asset_volume_columns(df: pd.DataFrame, src: str, symbol_column: str | None) -> dict[str, str]:
    """Renames {``volume <asset>`` column: ``volume`` | ``amount``} for per-asset volume columns.

    The base asset (BTC of BTC/USDT) gives ``volume``, the quote asset ``amount``. The base is the
    asset the symbol (or, failing that, the source name) starts with; else the asset that is not a
    known quote currency. Empty when the table has a plain ``volume`` column.
    """
    if "volume" in df.columns:
        return {}
    assets = {_ASSET_VOLUME.match(c).group(1): c for c in per_asset_volume_columns(list(df.columns))}
    if not assets:
        return {}
    if len(assets) > 2:
        raise DataValidationError(
            f"{src}: several per-asset volume columns {list(assets.values())}; rename the base-asset one to "
            "'volume' and the quote-asset one to 'amount'."
        )
    names = list(assets)
    hints = []
    if symbol_column is not None and symbol_column in df.columns and len(df):
        hints.append(re.sub(r"[^a-z0-9]", "", str(df[symbol_column].iloc[0]).lower()))
    hints.append(re.sub(r"[^a-z0-9]", "", src.lower().rsplit("/", 1)[-1]))
    quote = None
    for h in hints:  # "btcusdt" (symbol BTC/USDT) ends with the quote; a file "binance_btcusdt_1h" holds base+quote
        quote = next((a for a in names if h.endswith(a) or any(f"{b}{a}" in h for b in names if b != a)), None)
        if quote is not None:
            break
    if quote is None:
        known = [a for a in names if a in QUOTE_ASSETS]
        quote = known[0] if len(known) == 1 else None
    if len(names) == 1:
        (asset,) = names
        role = "amount" if asset == quote and "amount" not in df.columns else "volume"
        return {assets[asset]: role}
    if quote is None:
        raise DataValidationError(
            f"{src}: cannot tell which of {list(assets.values())} is the base asset's volume; rename it to "
            "'volume' and the quote asset's to 'amount'."
        )
    base = next(a for a in names if a != quote)
    renames = {assets[base]: "volume"}
    if "amount" not in df.columns:
        renames[assets[quote]] = "amount"
    return renames


def _coerce_numeric(df: pd.DataFrame, col: str, src: str, rows: np.ndarray, row: RowLabel, hint: str,
                    shown: str) -> None:
    raw = df[col]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        df[col] = raw.astype(np.float64)
        return
    num = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(num.isna().to_numpy() & raw.notna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"{src}: column '{shown}' holds non-numeric text {quoted(raw.iloc[i])} at {row(int(rows[i]))}. {hint}"
        )
    df[col] = num.astype(np.float64)


def _first(mask: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first True of a [N, C] mask in row order, or None."""
    hit = np.argwhere(mask)
    return (int(hit[0][0]), int(hit[0][1])) if len(hit) else None


def _check_values(df: pd.DataFrame, feats: list[str], src: str, rows: np.ndarray, row: RowLabel, hint: str,
                  shown: dict[str, str]) -> None:
    """Refuse inf, non-positive prices, high < low and negative volume/amount (``shown``: names for messages)."""
    values = df[feats].to_numpy(dtype=np.float64)
    hit = _first(np.isinf(values))
    if hit:
        i, j = hit
        raise DataValidationError(
            f"{src}: column '{shown.get(feats[j], feats[j])}' has an infinite value ({values[i, j]}) at {row(int(rows[i]))}. "
            f"Replace or drop that row. {hint}"
        )
    prices = [c for c in PRICE_COLUMNS]
    p = df[prices].to_numpy(dtype=np.float64)
    hit = _first(p <= 0)
    if hit:
        i, j = hit
        raise DataValidationError(
            f"{src}: column '{prices[j]}' has a non-positive price ({p[i, j]:g}) at {row(int(rows[i]))}; "
            f"prices must be > 0. Fix or drop that row. {hint}"
        )
    bad = np.flatnonzero(p[:, 1] < p[:, 2])
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"{src}: columns 'high' and 'low': high {p[i, 1]:g} is below low {p[i, 2]:g} at {row(int(rows[i]))}. "
            f"Check the column order (open, high, low, close) or fix that row. {hint}"
        )
    flows = [c for c in ("volume", "amount") if c in feats]
    if flows:
        f = df[flows].to_numpy(dtype=np.float64)
        hit = _first(f < 0)
        if hit:
            i, j = hit
            raise DataValidationError(
                f"{src}: column '{shown.get(flows[j], flows[j])}' has a negative value ({f[i, j]:g}) at {row(int(rows[i]))}. "
                f"Fix or drop that row. {hint}"
            )


# Values are stored as float32 and normalised per window: beyond these magnitudes they become inf or 0 there
# (a price of 1e308 is inf in float32, 1e-320 is 0), so the model would train on NaN or on zeros.
MAX_ABS_VALUE = 1e30
MIN_PRICE = 1e-30


def _check_range(df: pd.DataFrame, feats: list[str], src: str, rows: np.ndarray, row: RowLabel) -> None:
    """Refuse values the float32 store and the normalisation cannot carry (after volume/amount are filled)."""
    values = df[feats].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        hit = _first(~(np.abs(values) <= MAX_ABS_VALUE))
    if hit:
        i, j = hit
        derived = " (volume x price)" if feats[j] == "amount" else ""
        raise DataValidationError(
            f"{src}: column '{feats[j]}'{derived} has {values[i, j]:g} at {row(int(rows[i]))}, beyond the "
            f"{MAX_ABS_VALUE:g} the model can represent: rescale the column (e.g. divide it by 1e6)."
        )
    prices = [c for c in PRICE_COLUMNS if c in feats]
    hit = _first(df[prices].to_numpy(dtype=np.float64) < MIN_PRICE)
    if hit:
        i, j = hit
        raise DataValidationError(
            f"{src}: column '{prices[j]}' has a price of {df[prices[j]].iloc[i]:g} at {row(int(rows[i]))}, below the "
            f"{MIN_PRICE:g} the model can represent: rescale the prices (e.g. quote per million units)."
        )


# A leading day-or-month field: "02.01.2020", "13/01/2020 09:30", "1-2-20".
_DAY_MONTH_PREFIX = r"^\s*(\d{1,2})[./-]\d{1,2}[./-]\d{2,4}(?:\D|$)"


def text_to_datetime(text: pd.Series, *, utc: bool = False) -> pd.Series:
    """Date/time text [N] -> datetime Series [N] (NaT where unparseable), one day/month order per column.

    ``format="mixed"`` reads each value on its own, month first when it can: in a day-first
    column "02.01.2020" became February 1 but "13.01.2020" January 13, silently scrambling the
    series (and clean_csv then "sorted" it). A column whose leading field exceeds 12 anywhere is
    day-first, so those values are all read day first; ISO values (year first) are unaffected.

    Raises:
        ValueError: values with different UTC offsets while ``utc`` is False (pandas' refusal).
    """
    kw = dict(errors="coerce", format="mixed", utc=utc)
    lead = pd.to_numeric(text.str.extract(_DAY_MONTH_PREFIX, expand=False), errors="coerce")
    if not (lead > 12).any():
        return pd.to_datetime(text, **kw)
    day_month = lead.notna()
    if day_month[text.notna()].all():
        return pd.to_datetime(text, dayfirst=True, **kw)
    # A few day-first values beside ISO ones: dayfirst=True would also swap "2020-01-02" to February 1.
    return pd.to_datetime(text.where(day_month), dayfirst=True, **kw).where(
        day_month, pd.to_datetime(text.where(~day_month), **kw))


def local_midnight_dates(text: pd.Series) -> pd.Series | None:
    """Naive dates [N] when every value carries a UTC offset and sits at local midnight, else None.

    Daily bars stamped at local midnight ("2020-01-02 00:00:00-05:00", as yfinance writes them) are
    labelled by their local date: converted to UTC they moved to 05:00 (04:00 in summer), which
    csv_to_qlib refused as 1440-minute bars, or, east of UTC ("+08:00"), to the previous day.
    """
    if len(text) == 0 or not text.str.contains(_TZ_SUFFIX, regex=True, na=False).all():
        return None
    wall = text_to_datetime(text.str.replace(_TZ_SUFFIX, "", regex=True))
    if wall.isna().any() or not (wall == wall.dt.normalize()).all():
        return None
    return wall


def _epoch_unit(value: float) -> str:
    """The unix-epoch unit a number of this magnitude most likely is (for the message only)."""
    v = abs(value)
    return "s" if v < 1e11 else "ms" if v < 1e14 else "us" if v < 1e17 else "ns"


def parse_timestamps(raw: pd.Series, src: str, tcol: str, rows: np.ndarray, row: RowLabel, hint: str) -> np.ndarray:
    """Timestamps of ``raw`` as naive-UTC datetime64[ns] [N] (see the module rules).

    Raises:
        DataValidationError: unparseable values, epoch numbers, or offset and offset-less values mixed.
    """
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        num = raw.to_numpy(dtype=np.float64)
        ymd = np.isfinite(num) & (num == np.round(num)) & (num >= 1900_01_01) & (num <= 2299_12_31)
        if ymd.all():  # also an empty chunk (every row dropped as NaN)
            stamps = pd.to_datetime(pd.Series(num.astype(np.int64).astype(str)), format="%Y%m%d", errors="coerce")
        else:
            i = int(np.flatnonzero(~ymd)[0])
            unit = _epoch_unit(float(num[i])) if np.isfinite(num[i]) else "s"
            raise DataValidationError(
                f"{src}: column '{tcol}' holds numbers, not dates ({raw.iloc[i]} at {row(int(rows[i]))}); "
                f"unix epoch {'seconds' if unit == 's' else unit}? Kronos does not guess epoch units: convert the "
                f"column first, e.g. pandas: df['{tcol}'] = pd.to_datetime(df['{tcol}'], unit='{unit}'), or name a "
                "date column with time_column=... (8-digit YYYYMMDD numbers are read as dates)."
            )
    elif pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.Series(raw)
    else:
        text = raw.astype("string").str.strip()
        dates = local_midnight_dates(text)
        if dates is not None:
            return _as_ns(dates, raw, src, tcol, rows, row)
        try:
            stamps = text_to_datetime(text)
        except ValueError:  # pandas refuses mixed time zones unless told to convert
            aware = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy()
            if not aware.all():
                i = int(np.flatnonzero(aware != aware[0])[0]) if (aware != aware[0]).any() else 0
                kind = "with" if aware[i] else "without"
                raise DataValidationError(
                    f"{src}: column '{tcol}' mixes timestamps with and without a UTC offset ({quoted(raw.iloc[i])} "
                    f"{kind} one at {row(int(rows[i]))}); give every value an offset (e.g. +00:00) or none. {hint}"
                ) from None
            stamps = text_to_datetime(text, utc=True)
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"{src}: column '{tcol}' has an unparseable timestamp {quoted(raw.iloc[i])} at {row(int(rows[i]))}. {hint}"
        )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return _as_ns(stamps, raw, src, tcol, rows, row)


def _as_ns(stamps: pd.Series, raw: pd.Series, src: str, tcol: str, rows: np.ndarray, row: RowLabel) -> np.ndarray:
    """datetime64[ns] [N]; a date outside 1677-09-21..2262-04-11 (what nanoseconds hold) is one message."""
    try:
        return stamps.astype("datetime64[ns]").to_numpy()
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        outside = ((stamps < pd.Timestamp.min) | (stamps > pd.Timestamp.max)).to_numpy()
        i = int(np.flatnonzero(outside)[0]) if outside.any() else 0
        raise DataValidationError(
            f"{src}: column '{tcol}' has the timestamp {quoted(raw.iloc[i])} at {row(int(rows[i]))}, outside "
            f"{pd.Timestamp.min:%Y-%m-%d}..{pd.Timestamp.max:%Y-%m-%d}, the dates pandas can represent: fix or drop that row."
        ) from None


def standardize(
    df: pd.DataFrame,
    cols: Columns,
    src: str,
    *,
    on_nan: NanPolicy = "raise",
    row: RowLabel = csv_row,
    row_offset: int = 0,
    hint: str = "",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate one chunk of a long OHLCV table and return it in the standard form.

    Args:
        df: the chunk, column names normalised (:func:`normalize_names`).
        cols: its resolved columns (:func:`resolve_columns`).
        src: the source's name for messages.
        on_nan: "raise" on a missing feature value, or "drop" those rows.
        row: how a 0-based row of the source is named in messages.
        row_offset: the source row of the chunk's first row.
        hint: the repair advice appended to messages about repairable values.

    Returns:
        (frame, source_rows): ``timestamps`` (datetime64[ns], naive UTC), ``symbol`` (str, when
        there is a symbol column), the six FEATURES (float64) and ``member`` (bool, when given);
        and int64 [N] the source row of each kept row.
    """
    if on_nan not in ("raise", "drop"):  # any other word used to drop rows silently (e.g. "ffill")
        raise DataValidationError(
            f"{src}: on_nan={quoted(on_nan)} (data.source.on_nan): expected 'raise' or 'drop'. To fill missing values "
            f"instead, repair the file first: python -m data_pipelines.clean_csv <file> --out <cleaned.csv> --nan ffill"
        )
    renames = asset_volume_columns(df, src, cols.symbol)
    shown = {new: old for old, new in renames.items()}  # messages name the file's column ('volume btc')
    if renames:
        df = df.rename(columns=renames)
    rows = np.arange(len(df), dtype=np.int64) + row_offset
    df = df.copy()
    df.index = pd.RangeIndex(len(df))
    feats = [c for c in FEATURES if c in df.columns]
    for c in feats:
        _coerce_numeric(df, c, src, rows, row, hint, shown.get(c, c))
    if "amount" in shown and "volume" not in feats:
        # a quote-asset volume alone: the base volume follows from it rather than being zero-filled (a plain
        # `amount` column without volume keeps the reference rule: volume = amount = 0)
        df["volume"] = df["amount"] / df[list(PRICE_COLUMNS)].mean(axis=1)
        feats = [c for c in FEATURES if c in df.columns]

    nan_rows = df[feats].isna().to_numpy()
    if nan_rows.any():
        if on_nan == "raise":
            i, j = _first(nan_rows)
            raise DataValidationError(
                f"{src}: column '{shown.get(feats[j], feats[j])}' has a missing value (NaN) at {row(int(rows[i]))} "
                f"({int(nan_rows.any(axis=1).sum())} such rows). {hint}"
            )
        keep = ~nan_rows.any(axis=1)
        df, rows = df.loc[keep].reset_index(drop=True), rows[keep]
    _check_values(df, feats, src, rows, row, hint, shown)

    out = pd.DataFrame({"timestamps": parse_timestamps(df[cols.time], src, cols.time, rows, row, hint)})
    if cols.symbol is not None:
        symbols = df[cols.symbol].astype(str).str.strip()
        blank = (df[cols.symbol].isna() | symbols.eq("")).to_numpy()
        if blank.any():  # never a series named "nan" or "": the row belongs to no instrument
            i = int(np.flatnonzero(blank)[0])
            raise DataValidationError(
                f"{src}: column '{cols.symbol}' (the symbol) is missing at {row(int(rows[i]))} "
                f"({int(blank.sum())} such rows): fill in the symbol or drop those rows."
            )
        out["symbol"] = symbols.to_numpy()
    for c in feats:
        out[c] = df[c].to_numpy()
    out = fill_volume_amount(out)
    _check_range(out, [c for c in FEATURES if c in out.columns], src, rows, row)
    if cols.member is not None:
        out["member"] = df[cols.member].fillna(0).astype(bool).to_numpy()
    return out[[c for c in ("timestamps", "symbol", *FEATURES, "member") if c in out.columns]], rows


def check_order(out: pd.DataFrame, src: str, tcol: str, rows: np.ndarray, row: RowLabel, hint: str) -> None:
    """Refuse timestamps that do not increase strictly within each series (first offence named)."""
    has_symbol = "symbol" in out.columns
    step = out.groupby("symbol", sort=False)["timestamps"].diff() if has_symbol else out["timestamps"].diff()
    bad = np.flatnonzero((step <= pd.Timedelta(0)).to_numpy())
    if len(bad):
        i = int(bad[0])
        what = "a duplicated timestamp" if step.iloc[i] == pd.Timedelta(0) else "an unsorted timestamp"
        where = f" for symbol {quoted(out['symbol'].iloc[i])}" if has_symbol else ""
        raise DataValidationError(
            f"{src}: column '{tcol}' has {what} {out['timestamps'].iloc[i]}{where} at {row(int(rows[i]))} "
            f"(timestamps must increase strictly). {hint}"
        )


def check_min_rows(counts: pd.Series, src: str, min_rows: int) -> None:
    """Refuse a source whose smallest series has fewer than ``min_rows`` rows ({series: rows})."""
    if len(counts) == 0 or int(counts.sum()) == 0 or counts.min() < min_rows:
        who = counts.idxmin() if len(counts) else src
        n = int(counts.min()) if len(counts) else 0
        raise DataValidationError(
            f"{src}: series {quoted(who)} has {n} rows, fewer than the {min_rows} one window needs "
            "(lookback + horizon). Use more history or a shorter lookback/horizon."
        )

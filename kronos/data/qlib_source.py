"""``QlibSource``: OHLCV and point-in-time universe membership from a Qlib provider, via pyqlib."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES
from kronos.data.panel import Panel
from kronos.data.qlib_provider import init_qlib
from kronos.data.series import SeriesItem, iter_panel
from kronos.data.source import SourceBase

DEFAULT_PROVIDER = "~/.qlib/qlib_data/cn_data"
PREPARE_HINT = (
    "Prepare data with `python -m data_pipelines.download_qlib --target <dir>` (Qlib's public CN data) or "
    "`python -m data_pipelines.csv_to_qlib --csv <file or folder> --out <dir>`, then set QLIB_DATA_PATH=<dir> "
    "or data.source.provider_uri=<dir>."
)


class QlibSource(SourceBase):
    """Instruments of a Qlib market with their membership spans.

    Loads every instrument that belongs to ``market`` at some time in [start, end], over its whole
    available history in [start, end] (so lookbacks reach before it joined); ``member`` is True on
    the dates inside its membership spans (point-in-time universe). Suspended days (a NaN price or
    volume: Qlib data forward-fills prices and leaves volume NaN) are DROPPED, so windows run over
    an instrument's trading days only. ``amount`` is read when the provider has it, else derived as
    mean(OHLC) * volume.

    Args:
        provider_uri: provider directory; default $QLIB_DATA_PATH, else ~/.qlib/qlib_data/cn_data.
        region: Qlib region ("cn", "us").
        market: instruments file name (csi300, all, ...).
        fields: Qlib expressions for open, high, low, close, volume (and optionally amount), in that
            order; default the $-fields of the same names.
        start, end: date range (None: the whole calendar).
        freq: Qlib frequency ("day", "1min", ...).
    """

    def __init__(
        self,
        provider_uri: str | Path | None = None,
        region: str = "cn",
        market: str = "all",
        fields: Sequence[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        freq: str = "day",
    ) -> None:
        uri = provider_uri or os.environ.get("QLIB_DATA_PATH") or DEFAULT_PROVIDER
        self.provider_uri = Path(uri).expanduser()
        self.region, self.market, self.freq = region, market, freq
        self.fields = list(fields) if fields is not None else None
        self.start, self.end = start, end

    @property
    def origin(self) -> str:
        """``QlibSource(<provider>)``, for messages."""
        return f"QlibSource({self.provider_uri})"

    def _check_provider(self) -> None:
        p = self.provider_uri
        need = [p / "calendars" / f"{self.freq}.txt", p / "instruments" / f"{self.market.lower()}.txt", p / "features"]
        missing = [str(x) for x in need if not x.exists()]
        if missing:
            raise DataValidationError(
                f"Qlib provider {p} is missing or incomplete (not found: {', '.join(missing)}); "
                f"QLIB_DATA_PATH={os.environ.get('QLIB_DATA_PATH', '<unset>')}. {PREPARE_HINT}"
            )

    def _expressions(self, first_instrument: str) -> tuple[list[str], bool]:
        if self.fields is not None:
            if len(self.fields) not in (5, 6):
                raise DataValidationError(
                    f"QlibSource fields {self.fields}: give 5 or 6 expressions for {list(FEATURES)} in that order."
                )
            return self.fields, len(self.fields) == 6
        has_amount = (self.provider_uri / "features" / first_instrument.lower() / f"amount.{self.freq}.bin").exists()
        names = FEATURES if has_amount else FEATURES[:5]
        return [f"${n}" for n in names], has_amount

    def load(self) -> Panel:
        """Read the market through ``qlib.init`` + ``D.list_instruments`` + ``D.features``."""
        self._check_provider()
        from qlib.data import D

        init_qlib(self.provider_uri, self.region, freq=self.freq)
        spans = D.list_instruments(D.instruments(self.market), start_time=self.start, end_time=self.end,
                                   freq=self.freq)
        if not spans:
            raise DataValidationError(
                f"Qlib provider {self.provider_uri}: market '{self.market}' has no instrument between "
                f"{self.start} and {self.end}. {PREPARE_HINT}"
            )
        names = sorted(spans)
        exprs, has_amount = self._expressions(names[0])
        df = D.features(names, exprs, start_time=self.start, end_time=self.end, freq=self.freq)
        df.columns = list(FEATURES[: len(exprs)])
        df = df.dropna(how="any")
        if not has_amount:
            df["amount"] = df["volume"] * df[["open", "high", "low", "close"]].mean(axis=1)
        instruments, stamps, values, members = [], [], [], []
        for inst, g in df.groupby(level="instrument", sort=True):
            ts = pd.DatetimeIndex(g.index.get_level_values("datetime")).as_unit("ns")
            member = np.zeros(len(ts), dtype=bool)
            for s, e in spans[inst]:
                member |= (ts >= pd.Timestamp(s)) & (ts <= pd.Timestamp(e))
            instruments.append(str(inst))
            stamps.append(ts.to_numpy())
            values.append(np.ascontiguousarray(g[list(FEATURES)].to_numpy(dtype=np.float32)))
            members.append(member)
        if not instruments:
            raise DataValidationError(
                f"Qlib provider {self.provider_uri}: no rows for market '{self.market}' between {self.start} and "
                f"{self.end} after dropping suspended (NaN) days. {PREPARE_HINT}"
            )
        return Panel(instruments, stamps, values, members, origin=f"qlib:{self.provider_uri}:{self.market}")

    def iter_series(self) -> Iterator[SeriesItem]:
        """Each instrument as (symbol, timestamps datetime64[ns] [T], values float32 [T, 6], member bool [T]),
        in symbol order (from the loaded panel: Qlib reads the market at once)."""
        yield from iter_panel(self.load())

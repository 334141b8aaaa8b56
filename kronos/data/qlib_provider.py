"""Qlib provider building and ``qlib.init`` (temporary shim on this branch: engineer C's module of the same
name replaces it at merge, with the same names and signatures used here)."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.csv_to_qlib import build_provider, qlib_symbol  # noqa: F401
from data_pipelines.csv_to_qlib import build_provider_from_panel as _build_from_panel
from kronos.data.panel import Panel


def build_provider_from_panel(panel: Panel, out_dir: str | Path, market: str = "all", freq: str = "day",
                              *, overwrite: bool = False) -> Path:
    """C's signature; the old builder always replaces ``out_dir``, so ``overwrite`` changes nothing here."""
    return _build_from_panel(panel, out_dir, market=market, freq=freq)


def init_qlib(provider_uri: str | Path, region: str = "cn", *, freq: str = "day",
              logging_level: int | None = None) -> Path:
    """Point Qlib at ``provider_uri`` (re-initialising only when its live configuration differs)."""
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

"""Qlib provider building (temporary shim: engineer C moves the code here from data_pipelines.csv_to_qlib)."""
from data_pipelines.csv_to_qlib import build_provider, build_provider_from_panel, qlib_symbol  # noqa: F401

"""kronos.backtest.analysis_cache: results reused by content, recomputed when anything they read changes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kronos.backtest import analysis_cache
from kronos.backtest.analysis_cache import AnalysisCache


def test_results_are_reused_by_content_and_recomputed_on_any_change(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"n": len(calls)}

    signal = pd.Series([0.1, 0.2, 0.3], index=pd.Index(["a", "b", "c"], name="instrument"), name="model")
    cache = AnalysisCache(tmp_path)
    assert cache.get("ic", [signal, {"q": 5}], compute) == {"n": 1}
    assert cache.get("ic", [signal.rename("model_trade"), {"q": 5}], compute) == {"n": 1}  # names do not count
    assert cache.get("ic", [signal, {"q": 4}], compute) == {"n": 2}                       # a setting does
    assert cache.get("ic", [signal * 2, {"q": 5}], compute) == {"n": 3}                  # and the values
    assert cache.get("factor", [signal, {"q": 5}], compute) == {"n": 4}                  # and the kind
    assert cache.record() == {"reused": 1, "computed": 4}
    monkeypatch.setattr(analysis_cache, "_code_digest", lambda modules=(): "edited statistics")
    assert AnalysisCache(tmp_path).get("ic", [signal, {"q": 5}], compute) == {"n": 5}   # and the code
    assert AnalysisCache(None).get("ic", [signal, {"q": 5}], compute) == {"n": 6}       # no directory: no cache

"""Generation: ``kronos.inference.generate.generate`` and ``kronos-predict --generate N``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.cli.predict import main
from kronos.inference.generate import generate
from kronos.inference.loading import load_predictor
from kronos.inference.settings import SamplingSettings
from kronos.inference.validation import ForecastInputError


def _history(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    return pd.DataFrame({"timestamps": pd.bdate_range("2024-01-01", periods=rows), "open": close, "high": close * 1.01,
                         "low": close * 0.99, "close": close, "volume": rng.uniform(1e5, 2e5, rows)})


def test_generate_returns_one_frame_per_continuation(tiny_pair: tuple[Path, Path]) -> None:
    tok, pred = tiny_pair
    predictor = load_predictor(str(tok), str(pred), device="cpu", max_context=512)
    df = _history()
    frames = generate(predictor, df[["open", "high", "low", "close", "volume"]], df["timestamps"], pred_len=7,
                      sampling=SamplingSettings(T=1.0, top_p=0.95, sample_count=3, seed=5))
    assert len(frames) == 3 and all(len(f) == 7 for f in frames)
    assert list(frames[0].columns) == ["timestamps", "open", "high", "low", "close", "volume", "amount"]
    assert frames[0]["timestamps"].iloc[0] > df["timestamps"].iloc[-1]
    assert (frames[0]["timestamps"].dt.dayofweek < 5).all()         # the context's sessions: no weekends
    assert not frames[0]["close"].equals(frames[1]["close"])         # distinct continuations
    again = generate(predictor, df[["open", "high", "low", "close", "volume"]], df["timestamps"], pred_len=7,
                     sampling=SamplingSettings(T=1.0, top_p=0.95, sample_count=3, seed=5))
    assert all(a.equals(b) for a, b in zip(frames, again))          # seeded: reproducible
    via_method = predictor.generate(df[["open", "high", "low", "close", "volume"]], df["timestamps"], pred_len=7,
                                    sampling=SamplingSettings(T=1.0, top_p=0.95, sample_count=3, seed=5))
    assert all(a.equals(b) for a, b in zip(frames, via_method))
    with pytest.raises(ForecastInputError, match="y_timestamp or pred_len"):
        generate(predictor, df[["open", "high", "low", "close"]], df["timestamps"])


def test_cli_generate_writes_every_path(tiny_pair: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    tok, pred = tiny_pair
    csv = tmp_path / "in.csv"
    _history().to_csv(csv, index=False)
    out = tmp_path / "gen.csv"
    args = ["--model", str(pred), "--tokenizer", str(tok), "--device", "cpu", "--csv", str(csv), "--lookback", "50",
            "--pred-len", "4", "--T", "1.0", "--top-p", "0.95", "--seed", "1"]
    assert main([*args, "--generate", "5", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "timestamps", "open", "high", "low", "close", "volume", "amount"]
    assert sorted(set(table["path"])) == [0, 1, 2, 3, 4] and len(table) == 20
    assert main([*args, "--generate", "0"]) == 2
    assert main([*args, "--generate", "2", "--quantiles", "0.1,0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("kronos-predict: error: --generate 0") and "give one of them" in err[-1]


def test_generate_plot_title_counts_the_generated_paths(tiny_pair: tuple[Path, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: ``--generate 5 --sample-count 3 --plot`` drew 5 paths but titled the plot "3 samples"."""
    import kronos.cli.plot

    titles: list[str] = []
    monkeypatch.setattr(kronos.cli.plot, "plot_forecast", lambda *a, title="", **k: titles.append(title))
    tok, pred = tiny_pair
    csv = tmp_path / "in.csv"
    _history().to_csv(csv, index=False)
    args = ["--model", str(pred), "--tokenizer", str(tok), "--device", "cpu", "--csv", str(csv), "--lookback", "50",
            "--pred-len", "4", "--seed", "1", "--sample-count", "3", "--out", str(tmp_path / "o.csv"),
            "--plot", str(tmp_path / "p.png")]
    assert main([*args, "--generate", "5"]) == 0
    assert main(args) == 0
    assert "5 generated path(s)" in titles[0] and "3 sample" not in titles[0]
    assert "3 sample(s)" in titles[1]

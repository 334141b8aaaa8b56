"""kronos.inference.frame / sessions / pair / settings / samples: the layer under the CLI and the web UI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.data.errors import DataValidationError
from kronos.inference.frame import (
    cut_window,
    display_candles,
    forecast_frame,
    forecast_table,
    plan_forecast,
    price_band,
    read_frame,
    resolve_start,
)
from kronos.inference.loading import check_device, check_pair_kinds, context_limit, load_predictor
from kronos.inference.sessions import future_index, learn_sessions
from kronos.inference.generation import GenerationCancelled
from kronos.inference.samples import ForecastSamples, sample_quantiles
from kronos.inference.settings import DEFAULT_WORK_BUDGET, SamplingSettings, check_context, check_work_budget
from kronos.inference.validation import ForecastInputError


def _frame(rows: int = 60, freq: str = "h", start: str = "2024-01-01") -> pd.DataFrame:
    ts = pd.date_range(start, periods=rows, freq=freq)
    close = 100 + np.cumsum(np.sin(np.arange(rows)))
    return pd.DataFrame({"timestamps": ts.astype("datetime64[ns]"), "open": close, "high": close + 1,
                         "low": close - 1, "close": close, "volume": np.arange(rows, dtype=float) + 10,
                         "amount": np.arange(rows, dtype=float) * 100})


def _a_share_5min(days: int) -> pd.DatetimeIndex:
    """5-minute A-share bars: 09:35-11:30 and 13:05-15:00 on weekdays (48 a day)."""
    out = []
    for day in pd.bdate_range("2024-06-03", periods=days):
        out += list(pd.date_range(day + pd.Timedelta("09:35:00"), day + pd.Timedelta("11:30:00"), freq="5min"))
        out += list(pd.date_range(day + pd.Timedelta("13:05:00"), day + pd.Timedelta("15:00:00"), freq="5min"))
    return pd.DatetimeIndex(out)


# ---------------------------------------------------------------- history start


@pytest.mark.parametrize("start", ["²", "３", "12abc", "next tuesday"])
def test_start_that_is_no_row_or_date_is_one_message(start: str) -> None:
    with pytest.raises(ForecastInputError, match="neither a row number nor a date"):
        resolve_start(_frame(), start, 10, 2)


@pytest.mark.parametrize("start", ["-5", "-0", "+3"])
def test_signed_row_number_start_is_refused(start: str) -> None:
    """Regression: "-5" was read by pandas as the year -5 and silently meant row 0."""
    with pytest.raises(ForecastInputError, match="is not a row number: rows count from 0 to 59"):
        resolve_start(_frame(), start, 10, 2)


def test_start_far_in_the_future_or_with_a_zone_is_refused() -> None:
    frame = _frame()
    with pytest.raises(ForecastInputError, match="after the data's last timestamp"):
        resolve_start(frame, "3000-01-01", 10, 2)  # outside the ns range: used to be an OutOfBoundsDatetime 500
    with pytest.raises(ForecastInputError, match="time zone"):
        resolve_start(frame, "2024-01-01 05:00+02:00", 10, 2)
    with pytest.raises(ForecastInputError, match="past the data's last row"):
        resolve_start(frame, "60", 10, 2)


def test_start_rows_and_dates() -> None:
    frame = _frame()
    assert resolve_start(frame, None, 10, 5) == 45  # latest window whose horizon is in the data
    assert resolve_start(frame, " 7 ", 10, 5) == 7
    assert resolve_start(frame, "2024-01-01 05:30", 10, 5) == 6  # first row at or after it
    assert resolve_start(frame, "1000-01-01", 10, 5) == 0


# ---------------------------------------------------------------- settings and budget


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": 2**70}, "seed must be a whole number from 0 to 2\\*\\*63-1"),
    ({"seed": -1}, "seed"),
    ({"T": 1e-300}, "T must be between 0.01 and 100"),
    ({"T": float("nan")}, "T must be between"),
    ({"top_p": 0.0}, "top_p must be in"),
    ({"top_k": -2}, "top_k"),
    ({"sample_count": 0}, "sample_count must be between 1 and 256"),
    ({"sample_count": 257}, "sample_count"),
])
def test_sampling_settings_have_one_validation(change: dict, message: str) -> None:
    with pytest.raises(ForecastInputError, match=message):
        SamplingSettings(**change).validate()


@pytest.mark.parametrize(("max_context", "message"), [
    (1, "max_context must be at least 2"),
    (3, "pred_len 4 is longer than max_context 3"),
    (64.0, "max_context must be a whole number"),
])
def test_context_is_its_own_check(max_context, message: str) -> None:
    with pytest.raises(ForecastInputError, match=message):
        check_context(max_context, pred_len=4)


def test_cli_flags_and_context_limit_in_messages() -> None:
    with pytest.raises(ForecastInputError, match="--top-p must be"):
        SamplingSettings(top_p=2.0).validate(flag="--")
    with pytest.raises(ForecastInputError, match=r"max_context 1024 is longer than the 512 rows .* \(why\)"):
        check_context(1024, 4, context_limit=512, reason="why")
    with pytest.raises(ForecastInputError, match="--max-context 1024 is longer"):
        check_context(1024, 4, context_limit=512, flag="--")
    check_context(512, 4, context_limit=512)
    assert SamplingSettings(seed=2**63 - 1).validate().seed == 2**63 - 1


def test_seeded_generator_is_repeatable() -> None:
    settings = SamplingSettings(seed=7)
    a, b = (torch.rand(3, generator=settings.generator("cpu")) for _ in range(2))
    assert torch.equal(a, b)
    assert SamplingSettings().generator("cpu") is None


def test_work_budget_refuses_and_says_what_to_lower() -> None:
    assert check_work_budget(256, 48, 8, DEFAULT_WORK_BUDGET) == 256 * 48 * 8
    with pytest.raises(ForecastInputError) as err:
        check_work_budget(512, 4096, 256, DEFAULT_WORK_BUDGET)
    text = str(err.value)
    assert "exceeds the budget" in text and "lower" in text
    with pytest.raises(ForecastInputError, match=r"sample_count to 16 or pred_len to 256"):
        check_work_budget(256, 512, 32, 256 * 256 * 32)  # halving either factor fits
    assert check_work_budget(10**6, 10**6, 256, None) == 10**6 * 10**6 * 256  # no cap


def test_plan_caps_history_at_max_context_and_budgets_what_is_seen() -> None:
    frame = _frame(rows=200)
    window = plan_forecast(frame, 0, 150, 4, SamplingSettings(), max_context=64, budget=64 * 4)
    assert len(window.history) == 64
    assert window.history["timestamps"].iloc[-1] == frame["timestamps"].iloc[149]  # the last rows are kept
    assert len(window.actual) == 4
    with pytest.raises(ForecastInputError, match="budget"):
        plan_forecast(frame, 0, 150, 4, SamplingSettings(), max_context=64, budget=64 * 4 - 1)


# ---------------------------------------------------------------- quantiles, tables, candles


def test_one_quantile_routine_feeds_table_band_and_samples() -> None:
    rng = np.random.default_rng(0)
    paths = rng.normal(size=(50, 7, 6))
    index = pd.date_range("2024-01-01", periods=7, freq="D")
    expected = np.quantile(paths, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(sample_quantiles(paths, (0.1, 0.9)), expected)
    table = forecast_table(paths, index, (0.1, 0.9))
    np.testing.assert_allclose(table["close_q10"], expected[0][:, 3])
    lower, upper = price_band(paths, 0.1, 0.9)
    np.testing.assert_allclose(lower, expected[0][:, 3])
    np.testing.assert_allclose(upper, expected[1][:, 3])
    q = ForecastSamples(paths.astype(np.float32), index).quantiles((0.9,))
    np.testing.assert_allclose(q[0.9].to_numpy(), np.quantile(paths.astype(np.float32), 0.9, axis=0), rtol=1e-6)
    with pytest.raises(ValueError):
        sample_quantiles(paths, (1.5,))


def test_display_candles_are_consistent_and_raw_table_is_kept() -> None:
    raw = pd.DataFrame({"open": [10.0, 10.0], "high": [9.5, 12.0], "low": [10.5, 8.0], "close": [11.0, 9.0]})
    shown = display_candles(raw)
    assert np.all(shown["high"] >= np.maximum(shown["open"], shown["close"]))
    assert np.all(shown["low"] <= np.minimum(shown["open"], shown["close"]))
    assert list(shown["high"]) == [11.0, 12.0] and list(shown["low"]) == [10.0, 8.0]
    assert list(raw["high"]) == [9.5, 12.0]  # the input (what the CSV gets) is untouched


# ---------------------------------------------------------------- future timestamps


def test_intraday_future_follows_the_sessions_of_the_history() -> None:
    stamps = _a_share_5min(days=10)
    history = pd.Series(stamps)
    future = future_index(history, 60)
    assert future.kind == "sessions"
    times = {t.strftime("%H:%M") for t in future.index}
    assert not any("11:30" < t < "13:05" for t in times), "no lunch-break bars"
    assert not any(t > "15:00" or t < "09:35" for t in times), "no after-close bars"
    assert all(t.dayofweek < 5 for t in future.index), "no weekend bars"
    # The history ends on a Friday 15:00: the next bar is Monday 09:35, then every 5 minutes of the session.
    assert future.index[0] == pd.Timestamp("2024-06-17 09:35")
    assert future.index[24] == pd.Timestamp("2024-06-17 13:05")
    assert "09:35–11:30 and 13:05–15:00" in future.note and "Mon–Fri" in future.note


def test_daily_future_skips_weekends_and_24h_data_runs_on() -> None:
    days = pd.Series(pd.bdate_range("2024-01-01", periods=30))
    future = future_index(days, 5)
    assert future.kind == "sessions" and all(t.dayofweek < 5 for t in future.index)
    hourly = pd.Series(pd.date_range("2024-01-01", periods=24 * 14, freq="h"))
    future = future_index(hourly, 30)
    assert list(future.index) == list(pd.date_range(hourly.iloc[-1], periods=31, freq="h")[1:])
    assert "around the clock" in future.note


def test_short_history_gives_approximate_stamps_and_says_so() -> None:
    history = pd.Series(pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:05", "2024-01-01 09:10"]))
    future = future_index(history, 3, known=pd.Series(pd.to_datetime(["2024-01-01 09:15"])))
    assert future.kind == "approximate" and "approximate" in future.note
    assert list(future.index) == list(pd.to_datetime(["2024-01-01 09:15", "2024-01-01 09:20", "2024-01-01 09:25"]))
    assert learn_sessions(history) is None


# ---------------------------------------------------------------- reading files


def test_read_frame_turns_any_unreadable_file_into_one_data_error(tmp_path: Path) -> None:
    both = b"timestamps,open,high,low,close,Close\n2024-01-01,1,2,0.5,1,1\n2024-01-02,1,2,0.5,1,1\n"
    with pytest.raises(DataValidationError, match="'close' and 'Close'"):
        read_frame(both, "both.csv")
    path = tmp_path / "both.csv"
    path.write_bytes(both)
    with pytest.raises(DataValidationError, match="'close' and 'Close'"):
        read_frame(path)
    mixed = (b"timestamps,open,high,low,close\n2024-01-01 00:00+00:00,1,2,0.5,1\n"
             b"2024-01-01 03:00+02:00,1,2,0.5,1\n2024-01-01 04:00+01:00,1,2,0.5,1\n")
    try:
        frame = read_frame(mixed, "tz.csv")
    except DataValidationError as err:
        assert "tz.csv" in str(err)
    else:  # a reader that converts offsets to UTC is fine too: then the instants must be right
        assert list(frame["timestamps"]) == list(pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00",
                                                                  "2024-01-01 03:00"]))


# ---------------------------------------------------------------- checkpoints


def test_swapped_pair_and_bad_device_are_one_message(tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    check_pair_kinds(str(tokenizer), str(predictor))
    with pytest.raises(ForecastInputError, match="swap predictor and tokenizer"):
        check_pair_kinds(str(predictor), str(tokenizer))
    with pytest.raises(ForecastInputError, match="swap"):
        load_predictor(str(predictor), str(tokenizer), device="cpu")
    for bad in ("tpu", "cuda:99" if not torch.cuda.is_available() else "tpu", "nonsense"):
        with pytest.raises(ForecastInputError, match="device"):
            check_device(bad)
    check_device("cpu")


def test_context_limit_from_training_record_and_hub(tmp_path: Path) -> None:
    assert context_limit("NeoQuasar/Kronos-mini")[0] == 2048
    assert context_limit("NeoQuasar/Kronos-small")[0] == 512
    assert context_limit(str(tmp_path))[0] == 2048  # no record: the longest published context
    info = {"config": {"data": {"lookback": 90, "horizon": 10}, "model": {"predictor": {"pretrained": None}}}}
    (tmp_path / "training_info.json").write_text(json.dumps(info))
    assert context_limit(str(tmp_path)) == (100, "trained on windows of 100 rows (training_info.json)")
    info["config"]["model"]["predictor"]["pretrained"] = "NeoQuasar/Kronos-small"
    (tmp_path / "training_info.json").write_text(json.dumps(info))
    assert context_limit(str(tmp_path))[0] == 512  # fine-tuned from small: keeps small's context


# ---------------------------------------------------------------- one forecast, and cancelling it


def test_forecast_frame_samples_and_cancel_stops_within_a_step(tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    model = load_predictor(str(tokenizer), str(predictor), device="cpu", max_context=64)
    frame = _frame(rows=120)
    settings = SamplingSettings(sample_count=3, seed=1)
    window = plan_forecast(frame, 0, 100, 6, settings, max_context=64)
    result = forecast_frame(model, window, 6, settings, requested_lookback=100)
    assert result.paths.shape == (3, 6, 6) and result.truncated and len(result.history) == 64
    assert list(result.future.index) == list(frame["timestamps"].iloc[100:106])  # known future first
    again = forecast_frame(model, window, 6, settings, requested_lookback=100)
    np.testing.assert_array_equal(result.paths, again.paths)  # same seed, same draw

    polls = []

    def cancel_after_two() -> bool:
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(GenerationCancelled, match="after 2 of 6"):
        forecast_frame(model, window, 6, settings, cancel=cancel_after_two)
    assert len(polls) == 3  # checked once per decoding step, stopped at the first True


def test_seed_sent_as_a_float_by_a_browser() -> None:
    assert SamplingSettings(seed=7.0).validate().seed == 7
    with pytest.raises(ForecastInputError, match="seed must be a whole number"):
        SamplingSettings(seed=1.1805916207174113e21).validate()
    with pytest.raises(ForecastInputError, match="seed must be a whole number"):
        SamplingSettings(seed=1.5).validate()


def test_cut_window_names_what_does_not_fit() -> None:
    frame = _frame(rows=30)
    window = cut_window(frame, 20, 8, 5)
    assert len(window.history) == 8 and len(window.actual) == 2  # the data ends 2 rows after the window
    with pytest.raises(ForecastInputError, match="does not fit in the data's 30 rows"):
        cut_window(frame, 25, 8, 5)
    with pytest.raises(ForecastInputError, match="lookback must be at least 2"):
        cut_window(frame, 0, 1, 5)


def test_sessions_come_from_the_data_before_a_short_window() -> None:
    stamps = _a_share_5min(days=10)
    frame = _frame(rows=len(stamps))
    frame["timestamps"] = stamps.as_unit("ns")
    # 40 rows of history span less than a day: on their own too short to learn sessions from, but the
    # file before them shows the A-share day, and nothing after the window's end is used.
    window = plan_forecast(frame, len(frame) - 40, 40, 30, SamplingSettings(), max_context=64)
    assert len(window.calendar) == len(frame)
    future = future_index(window.history["timestamps"], 30, calendar=window.calendar)
    assert future.kind == "sessions"
    assert future.index[0] == pd.Timestamp("2024-06-17 09:35")
    assert future_index(window.history["timestamps"], 30).kind == "approximate"

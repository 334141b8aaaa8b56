"""Date splits: overlapping ranges are refused with one clear message."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos.data.errors import DataValidationError
from kronos.data.splits import resolve_splits

CAL = pd.bdate_range("2020-01-01", "2021-12-31").to_numpy()


def test_overlapping_date_splits_are_refused() -> None:
    splits = {"train": ["2020-01-01", "2020-12-31"], "val": ["2020-12-01", "2021-03-31"], "test": ["2021-04-01", None]}
    with pytest.raises(DataValidationError, match=r"data splits 'train' .* and 'val' .* overlap \(from 2020-12-01"):
        resolve_splits(splits, CAL)


def test_overlap_is_found_whatever_the_order_and_for_nested_ranges() -> None:
    with pytest.raises(DataValidationError, match=r"'train'.*'test'.*overlap"):
        resolve_splits({"test": ["2021-01-01", "2021-06-30"], "train": ["2020-01-01", "2021-12-31"]}, CAL)
    with pytest.raises(DataValidationError, match="overlap"):  # a shared day is an overlap
        resolve_splits({"train": ["2020-01-01", "2020-06-30"], "test": ["2020-06-30", None]}, CAL)
    with pytest.raises(DataValidationError, match="overlap"):  # open ends
        resolve_splits({"train": [None, "2020-06-30"], "test": [None, None]}, CAL)


def test_adjacent_date_splits_are_fine() -> None:
    out = resolve_splits({"train": ["2020-01-01", "2020-06-30"], "test": ["2020-07-01", None]}, CAL)
    assert out["train"][1] < out["test"][0]

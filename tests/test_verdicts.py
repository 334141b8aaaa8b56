"""kronos.verdicts, the one verdict builder: the words follow the test, p-values at their floor read as bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from kronos.verdicts import (ALPHA, Comparison, distance_from_chance, p_text, permutation_floor, significant,
                             stat_text, verdict_text)


def _cmp(t: float | None, p: float | None, model_value: float = 0.3, baseline_value: float = 0.2,
         **kwargs: object) -> Comparison:
    return Comparison("kronos", "naive", "RankIC", model_value, baseline_value, True, t, p, test="DM t", **kwargs)


@pytest.mark.parametrize("t", np.linspace(-4.0, 4.0, 81))
def test_beats_and_loses_only_where_the_test_rejects_at_5_percent(t: float) -> None:
    p = float(2 * sps.norm.sf(abs(t)))
    c = _cmp(t, p)
    if abs(t) < 1.96:
        assert c.outcome == "is not significantly different from"
        assert "beats" not in c.sentence() and "loses" not in c.sentence()
    else:
        assert c.outcome == ("beats" if t > 0 else "loses to")
        assert c.sentence().startswith(f"kronos {c.outcome} naive on RankIC")


def test_the_return_task_case_of_the_review_is_not_a_win() -> None:
    """The review's case: DM t = 1.39 (p 0.17) was written "kronos beats hist_vol"."""
    c = Comparison("kronos", "hist_vol", "RankIC", 0.094, 0.011, True, 1.39, 0.17, test="DM t")
    assert c.sentence() == ("kronos is not significantly different from hist_vol on RankIC "
                            "(0.094 vs 0.011; DM t = 1.39, p = 0.17)")


def test_missing_values_or_tests_cannot_be_judged_with_a_reason() -> None:
    assert _cmp(float("nan"), 0.01).sentence() == (
        "cannot judge kronos against naive on RankIC: the DM t test of the difference cannot be computed")
    assert "naive has no RankIC" in _cmp(3.0, 0.001, baseline_value=None).sentence()
    assert _cmp(3.0, 0.001, reason="7 dates").sentence().endswith(": 7 dates")
    assert "(+61.5% vs -2.6%;" in _cmp(3.0, 0.001, 0.6152, -0.026, value_format="{:+.1%}").sentence()
    assert verdict_text([]) == "no model to compare."
    assert verdict_text([_cmp(3.0, 0.001), _cmp(0.5, 0.6)]) == (
        "kronos beats naive on RankIC (0.3 vs 0.2; DM t = 3.00, p = 0.001); "
        "kronos is not significantly different from naive on RankIC (0.3 vs 0.2; DM t = 0.50, p = 0.6).")


def test_p_at_the_permutation_floor_reads_as_a_bound() -> None:
    floor = permutation_floor(200)
    assert floor == pytest.approx(1 / 201)
    assert p_text(1 / 201, floor) == "p < 1/201 (0.005)"
    assert p_text(1 / 1001, permutation_floor(1000)) == "p < 1/1001 (0.001)"
    assert p_text(2 / 201, floor) == "p = 0.01"  # one draw as extreme: a value, not a bound
    assert p_text(0.0004) == "p < 0.001" and p_text(None) == "p undefined" and p_text(float("nan")) == "p undefined"
    c = _cmp(4.0, 1 / 201, p_floor=floor)
    assert "p < 1/201" in c.sentence() and c.as_dict()["outcome"] == "beats"


def test_single_sample_significance_and_stat_text() -> None:
    assert significant(2.5, 0.01) and not significant(-2.5, 0.01) and significant(-2.5, 0.01, sign=-1)
    assert not significant(2.5, ALPHA) and not significant(None, 0.01) and not significant(np.float32(3.0), np.nan)
    assert significant(np.float32(3.0), np.float64(0.001))  # numpy numbers are numbers
    assert stat_text(2.345, 0.019) == "t = 2.35, p = 0.019" and stat_text(float("nan"), None) == "t undefined"


def test_discriminative_score_is_judged_by_its_distance_from_chance() -> None:
    """0.6 and 0.4 are equally bad (the classifier can tell); 0.5 is best."""
    assert distance_from_chance(0.6) == pytest.approx(distance_from_chance(0.4)) == pytest.approx(0.1)
    assert distance_from_chance(0.5) == 0.0 and distance_from_chance(None) is None
    c = Comparison("kronos", "bootstrap", "|discriminative score - 0.5|", distance_from_chance(0.5),
                   distance_from_chance(0.6), False, 3.0, 0.003)
    assert c.outcome == "beats"

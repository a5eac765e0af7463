"""Issue 27's measurement in bench.simulate: an experiment's results by learning set against the
simulation's truth (bench.simulation.by_learning), on answers and truths made by hand."""
from __future__ import annotations

import pytest

from bench.simulation.by_learning import (
    aa_check,
    clear_of,
    judged,
    learners_to_flag,
    ranked,
    skewed,
    spearman,
    true_gains,
)
from bench.simulation.figures import Attempt, Gain


def _interval(estimate, low, high):
    return {"estimate": estimate, "low": low, "high": high}


def _variant(name, learners, learning, success, mastery=(30.0, 25.0, 35.0), versus=None):
    return {"variant": name, "weight": 1.0, "learners": learners, "answers": 40 * learners,
            "attempts": 40 * learners, "success_rate": success[0], "success_rate_interval": _interval(*success),
            "learning": _interval(*learning), "attempts_to_mastery": _interval(*mastery),
            "retention": _interval(0.0, -0.1, 0.1), "calibration": _interval(0.0, -0.02, 0.02),
            "versus_first": versus}


def _answer(variants, verdict="variant t55 teaches more."):
    return {"experiment": "sim-ab", "version": 1, "variants": variants, "verdict": verdict,
            "guardrails": {"sample_ratio_mismatch": {"p_value": 0.5, "flagged": False}}}


def test_ranks_put_the_best_first_either_way_round_and_leave_out_the_unknown():
    assert ranked({"a": 0.1, "b": 0.3, "c": None, "d": 0.2}) == ["b", "d", "a"]
    assert ranked({"a": 30.0, "b": 20.0}, better=-1) == ["b", "a"]  # fewer attempts to mastery is better


def test_spearman_is_one_for_the_same_order_minus_one_for_the_opposite_and_handles_ties():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)   # 1 - 6 * 2 / (3 * 8)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)  # ranks (1.5, 1.5, 3)
    assert spearman([1, 1], [1, 2]) is None and spearman([1], [1]) is None
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1])


def test_intervals_are_clear_of_each_other_only_when_they_do_not_overlap():
    assert clear_of(_interval(3, 2, 4), _interval(1, 0, 1.5))
    assert not clear_of(_interval(3, 2, 4), _interval(1, 0, 2.5))
    assert clear_of(_interval(3, 2, 4), _interval(None, None, None)) is None


def test_the_true_gain_is_summed_over_a_learners_sessions_and_averaged_over_learners():
    gains = [Gain(0, False, 0, 0.2, "t55"), Gain(0, False, 1, 0.1, "t55"), Gain(0, True, 0, 0.1, "t55"),
             Gain(1, False, 0, 0.05, "t85")]
    attempts = [Attempt(0, False, k, 0.55, 0.5, 0.5, 1, "t55") for k in range(6)]
    attempts += [Attempt(1, False, k, 0.85, 0.8, 0.8, 1, "t85") for k in range(3)]
    truth = true_gains(attempts, gains, draws=200)
    assert truth["t55"]["learners"] == 2 and truth["t55"]["attempts"] == 6
    assert truth["t55"]["per_learner"]["estimate"] == pytest.approx(0.2)   # (0.3 + 0.1) / 2
    assert truth["t55"]["per_attempt"] == pytest.approx(0.4 / 6, abs=1e-6)   # rounded to 6 digits
    assert 0.1 <= truth["t55"]["per_learner"]["low"] <= 0.2 <= truth["t55"]["per_learner"]["high"] <= 0.3
    assert truth["t85"]["per_learner"] == {"estimate": 0.05, "low": 0.05, "high": 0.05}   # one learner


def test_a_judgement_says_whether_learning_orders_the_variants_as_the_truth_and_success_the_opposite():
    answer = _answer([
        _variant("t55", 150, (0.004, 0.003, 0.005), (0.50, 0.48, 0.52)),
        _variant("t70", 150, (0.003, 0.002, 0.004), (0.65, 0.63, 0.67),
                 versus={"learning": _interval(-0.001, -0.002, 0.0)}),
        _variant("t85", 150, (0.001, 0.0, 0.002), (0.80, 0.78, 0.82),
                 versus={"learning": _interval(-0.003, -0.0045, -0.0015)})])
    truth = {n: {"per_learner": _interval(g, g - 0.01, g + 0.01), "per_attempt": g / 40}
             for n, g in (("t55", 0.15), ("t70", 0.12), ("t85", 0.08))}
    j = judged(answer, truth, {"t55": 0.55, "t70": 0.7, "t85": 0.85})
    assert j["order"]["true_gain"] == j["order"]["learning"] == ["t55", "t70", "t85"]
    assert j["order"]["success_rate"] == ["t85", "t70", "t55"]
    assert j["learning_orders_as_true_gain"] and j["success_rate_opposite_to_true_gain"]
    assert j["spearman_with_true_gain"]["learning"] == pytest.approx(1.0)
    assert j["spearman_with_true_gain"]["success_rate"] == pytest.approx(-1.0)
    assert j["order"]["attempts_to_mastery"] == ["t55", "t70", "t85"]   # all equal: the given order kept
    best = j["best_versus_worst"]
    assert best["best"] == "t55" and best["worst"] == "t85" and best["learning_intervals_clear"]
    # t85 - t55 from versus_first turned into best - worst
    assert best["learning_difference"] == pytest.approx({"estimate": 0.003, "low": 0.0015, "high": 0.0045})
    assert best["difference_clear_of_zero"]
    assert j["variants"]["t70"]["true_gain_per_attempt"] == pytest.approx(0.003)


def test_a_judgement_says_so_when_learning_gets_the_order_wrong():
    answer = _answer([_variant("t55", 150, (0.001, 0.0, 0.002), (0.5, 0.48, 0.52)),
                      _variant("t85", 150, (0.002, 0.001, 0.003), (0.8, 0.78, 0.82),
                               versus={"learning": _interval(0.001, -0.0005, 0.0025)})])
    truth = {"t55": {"per_learner": _interval(0.15, 0.14, 0.16), "per_attempt": 0.004},
             "t85": {"per_learner": _interval(0.08, 0.07, 0.09), "per_attempt": 0.002}}
    j = judged(answer, truth, {"t55": 0.55, "t85": 0.85})
    assert not j["learning_orders_as_true_gain"] and j["spearman_with_true_gain"]["learning"] == pytest.approx(-1)
    assert j["best_versus_worst"]["learning_intervals_clear"] is False
    assert j["best_versus_worst"]["learning_difference"] == pytest.approx(
        {"estimate": -0.001, "low": -0.0025, "high": 0.0005})
    assert j["best_versus_worst"]["difference_clear_of_zero"] is False


def test_a_five_percent_skew_moves_learners_and_is_flagged_only_with_enough_of_them():
    assert list(skewed([200, 190])) == [190, 200]
    assert list(skewed([1.0, 1.0], whole=False)) == pytest.approx([0.95, 1.05])
    # 0.475 / 0.525 against 0.5 / 0.5: chi2 = 0.0025 n; above chi2's 0.1 % point of 10.83 from n = 4,332
    assert learners_to_flag([0.475, 0.525], [1, 1]) == 4332
    with pytest.raises(ValueError, match="no number of learners"):
        learners_to_flag([1, 1], [1, 1])


def test_the_aa_check_reads_the_learning_difference_and_tests_the_skewed_exposures():
    answer = _answer([_variant("t70-a", 2200, (0.002, 0.001, 0.003), (0.65, 0.64, 0.66)),
                      _variant("t70-b", 2200, (0.0021, 0.0011, 0.0031), (0.65, 0.64, 0.66),
                               versus={"learning": _interval(0.0001, -0.0013, 0.0015)})],
                     verdict="the data cannot tell yet: ...")
    aa = aa_check(answer)
    assert aa["difference_covers_zero"] and aa["learners"] == [2200, 2200]
    assert aa["skewed"]["learners"] == [2090, 2310] and aa["skewed"]["flagged"]   # 4,400 learners > 4,332
    assert aa["skewed"]["learners_to_flag"] == 4332
    small = aa_check(_answer([_variant("a", 150, (0, 0, 0), (0.6, 0.5, 0.7)),
                              _variant("b", 150, (0, 0, 0), (0.6, 0.5, 0.7),
                                       versus={"learning": _interval(0.002, 0.0005, 0.004)})]))
    assert small["difference_covers_zero"] is False and not small["skewed"]["flagged"]

"""Issue 26's measurement in bench.simulate: what the service says a learner knows set against the
simulation's truth (bench.simulation.knowledge), on answers and truths made by hand."""
from __future__ import annotations

import numpy as np
import pytest

from bench.simulate import parse_args
from bench.simulate_knowledge import kid
from bench.simulation.knowledge import (
    agreement,
    before_after,
    censored,
    coverage,
    difference_interval,
    interval_scale,
    mastered_precision,
    ratio_interval,
    table,
    true_typical_p,
    true_unit_p,
    truly_mastered,
)
from bench.simulation.truth import Catalogue, Learners


def test_coverage_counts_the_truth_inside_the_interval_and_says_on_which_side_it_misses():
    found = coverage([0.5, 0.2, 0.9, 0.4], [0.4, 0.3, 0.5, 0.4], [0.6, 0.4, 0.8, 0.45])
    assert found == {"covered": 0.5, "truth_below": 0.25, "truth_above": 0.25}   # the ends count as inside
    assert coverage([], [], [])["covered"] is None
    with pytest.raises(ValueError, match="one length"):
        coverage([0.5], [0.4, 0.3], [0.6])


def test_precision_of_mastered_is_the_share_of_the_reported_truly_at_the_threshold():
    found = mastered_precision([True, True, False, False, True], [0.85, 0.7, 0.9, 0.5, 0.8], 0.8)
    assert found == {"reported": 3, "truly": 3, "reported_and_truly": 2, "precision": pytest.approx(2 / 3),
                     "recall": pytest.approx(2 / 3)}
    nothing = mastered_precision([False, False], [0.9, 0.5], 0.8)
    assert nothing["precision"] is None and nothing["recall"] == 0.0


def test_agreement_of_a_perfect_ordering_with_calibrated_intervals_meets_every_target():
    true_p = np.linspace(0.3, 0.95, 20)
    p = true_p ** 1.2                   # monotone, so rank-perfect, though not equal
    low, high = p - 0.1, p + 0.1        # covers every truth: coverage 1.0, above the 85-95 % band
    found = agreement(p, low, high, low >= 0.8, true_p, 0.8)
    assert found["pairs"] == 20 and found["spearman"] == 1.0
    assert found["coverage"]["covered"] == 1.0
    assert found["met"] == {"spearman": True, "coverage": False, "mastered_precision": True}
    assert found["mastered"]["precision"] == 1.0 and found["bias"] < 0   # p ** 1.2 is below p
    assert found["mean_width"] == pytest.approx(0.2)
    reversed_ = agreement(p[::-1], low, high, np.zeros(20, bool), true_p, 0.8)
    assert reversed_["spearman"] == -1.0 and reversed_["met"]["spearman"] is False
    assert reversed_["met"]["mastered_precision"] is None   # nothing reported mastered: nothing to judge
    assert agreement([], [], [], [], [], 0.8) == {"pairs": 0}


def test_a_learner_who_never_gets_there_counts_at_the_cap_and_is_counted():
    values, n = censored([10, None, 30, 0, None], cap=50)
    assert values.tolist() == [10, 50, 30, 0, 50] and n == 2
    with pytest.raises(ValueError, match="cap"):
        censored([60], cap=50)


def test_the_ratio_of_means_resamples_learners_in_pairs():
    b = np.array([100.0, 200.0, 300.0, 50.0])
    exact = ratio_interval(0.5 * b, b)                 # every learner half: every resample half
    assert exact == {"estimate": 0.5, "low": 0.5, "high": 0.5}
    rng = np.random.default_rng(3)
    a = rng.uniform(50, 400, 60)
    found = ratio_interval(a, rng.uniform(50, 400, 60), seed=1)
    assert found["low"] < found["estimate"] < found["high"]
    assert ratio_interval([1.0], [0.0])["estimate"] is None
    with pytest.raises(ValueError, match="one length"):
        ratio_interval([1.0, 2.0], [1.0])


def test_the_difference_of_paired_values_and_its_interval():
    assert difference_interval([0.6, 0.7, 0.8], [0.5, 0.6, 0.7]) == {"estimate": 0.1, "low": 0.1, "high": 0.1}
    found = difference_interval(np.arange(40) / 40, np.zeros(40), seed=2)
    assert found["estimate"] == pytest.approx(0.4875) and found["low"] < found["estimate"] < found["high"]
    assert difference_interval([], [])["estimate"] is None


def test_true_p_on_the_typical_items_is_the_truths_and_mastery_needs_every_skill():
    catalogue = Catalogue(difficulty=np.array([0.0, 1.0, -1.0, 2.0]), discrimination=np.array([1.0, 2.0, 1.0, 1.0]),
                          skill=np.array([0, 0, 1, 1]), skills=2)
    learners = Learners(theta=np.array([1.0]), offset=np.array([[0.0, 0.5]]), learned=np.array([[0.5, 0.0]]),
                        solved=np.zeros((1, 4), bool))
    p = true_typical_p(catalogue, learners, 0, np.array([1, 2]))
    assert p == pytest.approx([1 / (1 + np.exp(-2.0 * 0.5)), 1 / (1 + np.exp(-2.5))])
    s = lambda x: 1 / (1 + np.exp(-x))   # noqa: E731
    means = true_unit_p(catalogue, learners, 0, [np.array([0, 1]), np.array([2, 3])])
    assert means == pytest.approx([(s(1.5) + s(2.0 * 0.5)) / 2, (s(2.5) + s(-0.5)) / 2])
    assert truly_mastered([0.81, 0.9], 0.8) and not truly_mastered([0.81, 0.79], 0.8)
    assert before_after(np.array([[0.6, 0.5], [0.8, 0.7]])) == {"right_after": 0.7, "after_week": 0.6}


def test_the_table_names_each_figure_and_its_target():
    a = agreement([0.5, 0.9], [0.4, 0.85], [0.6, 0.95], [False, True], [0.45, 0.92], 0.8)
    report = {"after_practice": a, "after_week_away": {"pairs": 0},
              "mastery_vs_target": {"cap": 400, "learners": 2, "ratio": {"estimate": 0.8, "low": 0.7, "high": 0.9},
                                    "mastery": {"censored_at_cap": 0, "mean": 80.0},
                                    "target": {"censored_at_cap": 1, "mean": 100.0}},
              "review": {"learners": 2, "attempts": 20, "difference": {"estimate": 0.01, "low": 0.0, "high": 0.02},
                         "review": {"after_week": 0.6}, "target": {"after_week": 0.59}}}
    text = table(report)
    assert "after practice: Spearman" in text and "a week later" not in text   # no pairs: no rows
    assert "0.800 [0.700, 0.900]" in text and "censored 0 / 1 of 2" in text and "0.0100 [0.0000, 0.0200]" in text


def test_knowledge_user_ids_have_no_slash_for_the_endpoints_path():
    assert kid("kp", True, 3) == "kp.r3" and "/" not in kid("rv", False, 12)


def test_the_knowledge_flags_are_off_by_default_and_small_with_quick():
    assert parse_args([]).knowledge is False
    quick = parse_args(["--quick", "--knowledge"])
    assert (quick.knowledge_learners, quick.skill_attempts, quick.knowledge_cap) == (4, 8, 60)
    assert parse_args(["--knowledge-learners", "10"]).knowledge_learners == 10
    with pytest.raises(SystemExit):
        parse_args(["--knowledge-target", "1.5"])
    with pytest.raises(SystemExit):
        parse_args(["--knowledge-cap", "0"])


def test_the_logit_scale_says_by_how_much_the_intervals_would_have_to_grow():
    sig = 1.0 / (1.0 + np.exp(-1.6448536269514722))   # intervals logit 0 +- Z90 x 1: an sd of 1
    p, low, high = np.full(5, 0.5), np.full(5, 1.0 - sig), np.full(5, sig)
    true_p = 1.0 / (1.0 + np.exp(-np.array([-2.0, -1.0, 0.0, 1.0, 2.0])))   # z = -2 .. 2
    found = interval_scale(p, low, high, true_p)
    assert found["z_mean"] == pytest.approx(0.0) and found["z_sd"] == pytest.approx(np.sqrt(2.0), abs=1e-4)
    assert found["widen"] == pytest.approx(2.0 / 1.6448536269514722, abs=1e-4)   # |z| at its 90th percentile: 2
    assert found["median_logit_sd"] == pytest.approx(1.0)
    assert found["logit_rmse"] == pytest.approx(np.sqrt(2.0), abs=1e-4)


def test_the_knowledge_parts_are_named_and_checked():
    assert parse_args([]).knowledge_parts == ["knowledge", "race"]
    assert parse_args(["--knowledge-parts", "race"]).knowledge_parts == ["race"]
    with pytest.raises(SystemExit):
        parse_args(["--knowledge-parts", "race,speed"])

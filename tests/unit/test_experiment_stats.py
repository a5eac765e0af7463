"""The learning measures of an experiment (app.online.experiment_stats) on known inputs: worked
figures by hand, a synthetic population where one variant truly learns faster, A/A runs, and the
sample-ratio-mismatch test."""
from __future__ import annotations

import math

import numpy as np
import pytest

from app.online import experiment_stats as es


def attempts(**columns) -> es.Attempts:
    """An Attempts of the given columns; the rest defaulted (one unit, first attempts, threshold 0.8)."""
    n = len(columns["outcome"])
    base = {"learner": np.zeros(n, dtype=np.int64), "unit": np.zeros(n, dtype=np.int64), "first": np.ones(n, bool),
            "logit": np.zeros(n), "unit_logit": np.zeros(n), "threshold": np.full(n, 0.8),
            "opportunity": np.arange(n), "days_away": np.full(n, np.nan)}
    base.update({k: np.asarray(v) for k, v in columns.items()})
    return es.Attempts(**base)


def reference_learning(a: es.Attempts) -> float:
    """g maximising the penalised likelihood of logit p = logit + theta_(learner, skill) + g x, written
    plainly: x counts the learner's earlier attempts at the skill, centred per (learner, skill) over
    the first attempts at new items the model knows; theta ~ N(0, PRIOR_SD^2)."""
    from scipy.optimize import minimize

    earlier: dict = {}
    rows = []
    for who, unit, first, y, z in zip(a.learner, a.unit, a.first, a.outcome, a.logit):
        k = earlier.get((who, unit), 0)
        earlier[(who, unit)] = k + 1
        if first and np.isfinite(z):
            rows.append(((who, unit), k, y, z))
    keys = sorted({r[0] for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    mean = {k: np.mean([r[1] for r in rows if r[0] == k]) for k in keys}
    seq = np.array([index[r[0]] for r in rows])
    x = np.array([r[1] - mean[r[0]] for r in rows])
    y = np.array([r[2] for r in rows], dtype=float)
    z = np.array([r[3] for r in rows])

    def loss(v):
        eta = z + v[seq] + v[-1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta) + 0.5 * np.sum(v[:-1] ** 2) / es.PRIOR_SD ** 2)

    return float(minimize(loss, np.zeros(len(keys) + 1), method="BFGS", options={"gtol": 1e-10}).x[-1])


def test_learning_is_the_penalised_likelihoods_slope_per_attempt_at_the_skill():
    rng = np.random.default_rng(3)
    n = 60
    a = attempts(learner=np.repeat([0, 1, 2], 20), unit=rng.integers(0, 2, n), outcome=rng.integers(0, 2, n),
                 logit=rng.normal(0, 1, n), first=rng.random(n) < 0.8, opportunity=np.tile(np.arange(20), 3))
    r = es.learning(a, 3)
    assert r.estimate() == pytest.approx(reference_learning(a), abs=1e-5)
    assert r.base == pytest.approx(r.estimate()) and abs(r.num.sum()) < 1e-8   # the fit's scores add up to 0
    assert (r.den > 0).all()


def test_learning_rises_with_success_beyond_the_items_difficulty():
    up = es.learning(attempts(outcome=[0, 0, 0, 1, 0, 1, 1, 1]), 1).estimate()
    assert up > 0
    # the same answers on items that got easier just as fast: no learning left to explain
    easier = es.learning(attempts(outcome=[0, 0, 0, 1, 0, 1, 1, 1], logit=np.linspace(-2, 2, 8)), 1).estimate()
    assert easier < up


def test_learning_leaves_out_repeats_and_items_the_model_does_not_know():
    plain = es.learning(attempts(outcome=[0, 0, 1, 1]), 1).estimate()
    a = attempts(outcome=[0, 0, 1, 1, 1, 0], first=[True, True, True, True, False, True], logit=[0, 0, 0, 0, 0, np.nan])
    assert es.learning(a, 1).estimate() == pytest.approx(plain)


def test_learning_is_within_learners_so_their_levels_do_not_count():
    # learner 0 always right, learner 1 always wrong, each flat: no slope, although joining them would make one
    a = attempts(learner=[0, 0, 0, 1, 1, 1], outcome=[1, 1, 1, 0, 0, 0], opportunity=[0, 1, 2, 10, 11, 12])
    assert es.learning(a, 2).estimate() == pytest.approx(0.0, abs=1e-9)


def test_learning_counts_practice_per_skill_so_interleaving_is_not_slower_than_blocking():
    # the same answers per skill, in blocks (skill 0 then 1) or interleaved: the same learning
    s0, s1 = [0, 0, 1, 0, 1, 1], [0, 1, 0, 1, 1, 1]
    blocked = attempts(unit=[0] * 6 + [1] * 6, outcome=s0 + s1)
    mixed = attempts(unit=[0, 1] * 6, outcome=[v for pair in zip(s0, s1) for v in pair])
    assert es.learning(blocked, 1).estimate() == pytest.approx(es.learning(mixed, 1).estimate(), abs=1e-9)


def test_learning_without_movement_along_the_practice_is_no_estimate():
    a = attempts(unit=[0, 1, 2], outcome=[1, 0, 1])     # one attempt per skill: nothing to compare
    assert es.learning(a, 1).estimate() is None


def reference_mastery(logits, outcomes, typical=0.0, threshold=0.8):
    """Attempts until mastered (None: not), one scalar Newton step per attempt, written plainly."""
    theta, info = 0.0, 1.0
    for k, (z, y) in enumerate(zip(logits, outcomes)):
        p = 1 / (1 + math.exp(-(z + theta)))
        info += p * (1 - p)
        theta += (y - p) / info
        if 1 / (1 + math.exp(-(typical + theta - es.Z90 / math.sqrt(info)))) >= threshold:
            return k + 1
    return None


def test_attempts_to_mastery_counts_attempts_until_the_low_end_reaches_the_threshold():
    # one learner right every time on average items of unit 0: mastered at the 27th attempt (by the
    # plain loop above: theta 2.137, info 4.912 -> low sigmoid(2.137 - 1.645 / 2.216) = 0.801; the 26th
    # gives 0.797), and 10 wrong attempts at unit 1 (never)
    assert reference_mastery([0.0] * 30, [1] * 30) == 27
    a = attempts(unit=[0] * 30 + [1] * 10, outcome=[1] * 30 + [0] * 10)
    r = es.mastery(a, 1)
    assert r.num[0] == 27 + 10 and r.den[0] == 1          # the unit not mastered counts its 10 attempts
    assert r.estimate() == 37


def test_attempts_to_mastery_follows_each_unit_in_time_order_when_units_interleave():
    rng = np.random.default_rng(3)
    units = rng.integers(0, 3, 60)
    logits = rng.normal(0, 1, 60)
    outcomes = (rng.random(60) < 0.8).astype(int)
    a = attempts(unit=units, logit=logits, outcome=outcomes)
    expected = []
    for u in range(3):
        hit = reference_mastery(logits[units == u], outcomes[units == u])
        expected.append((hit or int((units == u).sum()), hit is not None))
    r = es.mastery(a, 1)
    assert r.num[0] == sum(e[0] for e in expected) and r.den[0] == sum(e[1] for e in expected)


def test_retention_is_the_residual_on_returns_after_a_day_away():
    # returns after 2 and 1.5 days (p .5, right; p .731, wrong): (.5 - .731) / 2; the same-day attempt is left out
    a = attempts(outcome=[1, 0, 1], logit=[0.0, 1.0, 0.0], days_away=[2.0, 1.5, 0.2])
    r = es.retention(a, 1)
    assert r.estimate() == pytest.approx((0.5 - 1 / (1 + math.exp(-1.0))) / 2)


def population(rng, learners: int, per_learner: int, gain: float, units: int = 2) -> es.Attempts:
    """Simulated learners of a variant: ability N(0, .5) growing by `gain` logits per attempt, each
    attempt at a new item of difficulty N(0, 1) in one of `units` units (mastery threshold 0.7), a
    day away now and then."""
    n = learners * per_learner
    who = np.repeat(np.arange(learners), per_learner)
    t = np.tile(np.arange(per_learner), learners)
    ability = rng.normal(0, 0.5, learners)[who] + gain * t
    logit = rng.normal(0, 1, n)
    outcome = (rng.random(n) < 1 / (1 + np.exp(-(ability + logit)))).astype(np.int64)
    days = np.where(rng.random(n) < 0.1, 1.0 + rng.random(n), 0.01)
    return es.Attempts(who, rng.integers(0, units, n), np.ones(n, bool), outcome, logit, np.zeros(n),
                       np.full(n, 0.7), t, days)


def test_the_variant_that_learns_faster_has_the_higher_learning_clear_of_the_other():
    rng = np.random.default_rng(7)
    a = es.analyse_variant(population(rng, 300, 60, 0.0), 300, seed=1)
    b = es.analyse_variant(population(rng, 300, 60, 0.03), 300, seed=2)
    assert b.measures["learning"].estimate > a.measures["learning"].estimate
    diff = es.difference(a, b, "learning")
    assert diff.low > 0
    assert b.measures["attempts_to_mastery"].estimate < a.measures["attempts_to_mastery"].estimate
    assert b.measures["retention"].estimate > a.measures["retention"].estimate
    text = es.verdict(["a", "b"], [a, b], es.sample_ratio_mismatch(np.array([300, 300]), np.array([1, 1])))
    assert text.startswith("variant b teaches more: ")


def test_an_a_a_experiment_covers_zero_in_at_least_90_of_100_seeded_runs():
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        a = es.analyse_variant(population(rng, 150, 20, 0.01), 150, draws=400, seed=seed)
        b = es.analyse_variant(population(rng, 150, 20, 0.01), 150, draws=400, seed=seed + 500)
        d = es.difference(a, b, "learning")
        covered += d.low <= 0 <= d.high
    assert covered >= 90


def test_the_interval_holds_the_estimate_and_resampling_is_seeded():
    rng = np.random.default_rng(5)
    data = population(rng, 100, 40, 0.03)
    one, two = es.analyse_variant(data, 100, seed=4), es.analyse_variant(data, 100, seed=4)
    for m in ("learning", "attempts_to_mastery", "retention", "success_rate"):
        i = one.measures[m]
        assert i.low <= i.estimate <= i.high, m
        assert i == two.measures[m]
    assert one.measures["calibration"].estimate is None   # no paired predictions given


def test_resample_counts_draw_n_learners_each_time():
    counts = es.resample_counts(50, 200, np.random.default_rng(0))
    assert counts.shape == (200, 50) and (counts.sum(axis=1) == 50).all()


def test_sample_ratio_mismatch_fires_on_a_5_percent_skew_not_on_balanced_routing():
    # 20,000 learners over two equal weights, 5 % of b's routed to a: 10,500 / 9,500, chi2 = 50
    skewed = es.sample_ratio_mismatch(np.array([10_500, 9_500]), np.array([1.0, 1.0]))
    assert skewed["chi2"] == pytest.approx(50.0) and skewed["flagged"]
    assert skewed["p_value"] == pytest.approx(math.erfc(math.sqrt(25.0)))   # chi-square with 1 df
    balanced = es.sample_ratio_mismatch(np.array([10_040, 9_960]), np.array([1.0, 1.0]))
    assert not balanced["flagged"] and balanced["p_value"] > 0.5
    weighted = es.sample_ratio_mismatch(np.array([2_000, 6_000, 2_000]), np.array([1.0, 3.0, 1.0]))
    assert weighted["chi2"] == 0 and not weighted["flagged"]


def test_sample_ratio_mismatch_fires_for_a_skewed_hash_of_realistic_counts():
    # routing drawn at random with a 5 % skew (5 % of b's learners sent to a: 52.5 / 47.5) over 20,000
    # learners, 20 seeds: every one flagged; the same draws at 50 / 50: none flagged
    rng = np.random.default_rng(11)
    for _ in range(20):
        skewed = np.bincount((rng.random(20_000) < 0.475).astype(int), minlength=2)
        assert es.sample_ratio_mismatch(skewed, np.array([1.0, 1.0]))["flagged"]
        fair = np.bincount((rng.random(20_000) < 0.5).astype(int), minlength=2)
        assert not es.sample_ratio_mismatch(fair, np.array([1.0, 1.0]))["flagged"]


def test_the_verdict_waits_for_learners_and_refuses_a_broken_split():
    rng = np.random.default_rng(2)
    a = es.analyse_variant(population(rng, 40, 20, 0.0), 40)
    b = es.analyse_variant(population(rng, 40, 20, 0.05), 40)
    fair = es.sample_ratio_mismatch(np.array([40, 40]), np.array([1, 1]))
    assert es.verdict(["a", "b"], [a, b], fair) == "the data cannot tell yet: a, b have fewer than 100 learners."
    srm = es.sample_ratio_mismatch(np.array([10_500, 9_500]), np.array([1, 1]))
    assert es.verdict(["a", "b"], [a, b], srm, min_learners=10).startswith(
        "the data cannot tell yet: the learners are not split as the weights say")

"""The knowledge estimates' fast path (issue 26's cost): app.online.knowledge.estimate_units on a
UnitLayout and learning.Forecast give the answers of the code they replaced (main at dc9a89c, kept
below as the reference: per-unit rows made on every call, every item's forecast through its
(k, F) feature rows), to 1e-9, on models with every calibration term (retry, learning, skill
offsets, item error), items the model does not cover, units sharing items and an empty unit."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from app.model.artifact import Calibration, Embedding, LearningTerms, ModelArtifact, RetryTerms, SkillTerms
from app.model.store import StoredModel
from app.online import learning
from app.online.fit import sigmoid
from app.online.knowledge import (
    DUE_ROUNDS,
    DUE_SETTLED,
    GRID,
    REFINE,
    Z90,
    Estimates,
    UnitLayout,
    _design,
    _posterior,
    _skills_of,
    _slopes,
    due_in_days,
    estimate_units,
    item_error_sd,
    logit,
    typical_rows,
)
from app.online.learning import DAY_S, FEATURES
from app.online.scoring import ServingModel, practice_probabilities


# ---- the reference: main's code, verbatim but for names and docstrings ------------------------------
def reference_due_in_days(block: LearningTerms | None, z: np.ndarray, x_now: np.ndarray,
                          review: np.ndarray) -> np.ndarray:
    out = np.full(len(z), np.nan)
    col = learning.FEATURES.index
    practised = x_now[:, col("skill_attempts")] > 0
    if block is None or not practised.any():
        return out
    hi = block.max
    base = z - learning.terms(block, x_now)
    threshold = logit(review)
    since_skill = np.expm1(x_now[:, col("skill_days_away")])
    since_any = np.expm1(x_now[:, col("days_away")])
    start = -since_skill
    end = np.maximum(np.expm1(hi[col("skill_days_away")]) - since_skill, np.expm1(hi[col("days_away")]) - since_any)
    steps = np.expm1(np.linspace(0.0, 1.0, GRID)[None, :] * np.log1p(np.maximum(end - start, 0.0))[:, None])
    days = start[:, None] + steps                                             # (k, GRID), from start to end
    z_grid = base[:, None] + learning.terms(block, learning.later(x_now, days))
    below = z_grid < threshold[:, None]
    found = below.any(axis=1) & practised
    first = np.argmax(below, axis=1)
    rows = np.arange(len(z))
    lo, up = days[rows, np.maximum(first - 1, 0)], days[rows, first]
    for _ in range(REFINE):   # the crossing between the last time above and the first below
        mid = 0.5 * (lo + up)
        under = base + learning.terms(block, learning.later(x_now, mid[:, None]))[:, 0] < threshold
        up, lo = np.where(under, mid, up), np.where(under, lo, mid)
    out[found] = np.where(first == 0, start, up)[found]
    return out

def reference_estimate_units(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, unit_rows: list[np.ndarray],
                   typical: np.ndarray, review: np.ndarray, h_times: np.ndarray | None = None,
                   now: float | None = None, prior_mean: np.ndarray | None = None) -> Estimates:
    h_rows = np.asarray(h_rows, dtype=np.int64)
    unit_rows = [np.asarray(r, dtype=np.int64) if len(r) else np.array([-1]) for r in unit_rows]
    sizes = np.array([len(r) for r in unit_rows])
    rows, inverse = np.unique(np.concatenate(unit_rows), return_inverse=True)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    p, theta, _ = practice_probabilities(model, h_rows, h_out, rows, model.calibration.half_life,
                                         None, prior_mean, h_times, now)
    info = p * (1.0 - p)
    P = np.add.reduceat(p[inverse], starts) / sizes
    H, precision = _posterior(model, theta, h_rows, h_out)
    gain = info * _slopes(model, h_rows, h_out, rows)                       # dp_i / draw_i
    unit_of = np.repeat(np.arange(len(unit_rows)), sizes)
    mean_of = sp.csr_matrix((np.repeat(1.0 / sizes, sizes), (unit_of, inverse)), shape=(len(unit_rows), len(rows)))
    G = mean_of @ (gain[:, None] * _design(model, rows))                     # (K, d + 1): each unit's dP/dtheta
    var = np.einsum("kj,jk->k", G, np.linalg.solve(H, G.T))
    if precision is not None:
        skills = _skills_of(model, rows)[inverse]
        has = skills >= 0
        per_skill = np.zeros((len(unit_rows), len(precision)))
        np.add.at(per_skill, (unit_of[has], skills[has]), gain[inverse][has])
        var = var + ((per_skill / sizes[:, None]) ** 2) @ (1.0 / precision)
    item_sd = item_error_sd(model, logit(p), rows)
    var = var + np.bincount(unit_of, (info * item_sd)[inverse] ** 2, len(unit_rows)) / sizes ** 2
    z = logit(P)
    sd = np.sqrt(np.maximum(var, 0.0)) / np.maximum(P * (1.0 - P), 1e-12)
    due = np.full(len(unit_rows), np.nan)
    block = model.calibration.learning
    if block is not None and h_times is not None and now is not None and len(h_rows):
        due = reference_mean_due(block, h_rows, h_out, h_times, now, model.item_skills, rows, p, inverse, starts, sizes,
                        np.asarray(typical, dtype=np.int64), z, np.asarray(review, dtype=np.float64))
    return Estimates(P, sigmoid(z - Z90 * sd), sigmoid(z + Z90 * sd), due)


def reference_mean_due(block: LearningTerms, h_rows, h_out, h_times, now, item_skills, rows, p, inverse, starts, sizes,
              typical, z, review, rounds: int = DUE_ROUNDS) -> np.ndarray:
    x_typical = learning.features(h_rows, h_out, h_times, now, typical, item_skills)
    due = reference_due_in_days(block, z, x_typical, review)
    col = learning.FEATURES.index
    start = -np.expm1(x_typical[:, col("skill_days_away")])
    moving = np.isfinite(due) & (due > start)
    if not moving.any():
        return due
    x_rows = learning.features(h_rows, h_out, h_times, now, rows, item_skills)
    base = logit(p) - learning.terms(block, x_rows)
    threshold = logit(review)
    x_flat = x_rows[inverse]

    def exact(days: np.ndarray) -> np.ndarray:   # logit of each unit's mean p `days` from now
        later = learning.later(x_flat, np.repeat(days, sizes)[:, None])[:, 0]
        return logit(np.add.reduceat(sigmoid(base[inverse] + learning.terms(block, later)), starts) / sizes)

    def typical_curve(days: np.ndarray) -> np.ndarray:
        return learning.terms(block, learning.later(x_typical, days[:, None]))[:, 0]

    for _ in range(rounds):
        t = np.where(moving, due, 0.0)
        h = np.maximum(np.abs(t) * 1e-3, 1e-3)
        slope = (typical_curve(t + h) - typical_curve(t - h)) / (2.0 * h)   # logits per day (< 0 when forgetting)
        step = np.where(moving & (slope < -1e-9), (exact(t) - threshold) / np.where(slope < -1e-9, slope, -1.0), 0.0)
        due = np.where(moving, np.maximum(t - step, start), due)
        if np.max(np.abs(step)) < DUE_SETTLED:
            break
    return due


# ---- cases ------------------------------------------------------------------------------------------
def learning_terms(rng: np.random.Generator) -> LearningTerms:
    """Forgetting with time away from a skill (and a little overall), small practice terms."""
    weights = rng.normal(scale=0.05, size=len(FEATURES))
    weights[FEATURES.index("skill_days_away")] = -rng.uniform(0.8, 1.5)
    weights[FEATURES.index("days_away")] = -rng.uniform(0.0, 0.3)
    weights[FEATURES.index("item_attempts")] = rng.uniform(0.1, 0.4)
    hi = np.full(len(FEATURES), 5.0)
    hi[FEATURES.index("skill_days_away")] = np.log1p(rng.uniform(20.0, 90.0))
    hi[FEATURES.index("days_away")] = np.log1p(rng.uniform(5.0, 90.0))
    hi[FEATURES.index("item_attempts")] = 1.1
    return LearningTerms(FEATURES, weights, hi)


def case(seed: int, skills: bool = True, learning_on: bool = True, retry: bool = True, item_sd: bool = True):
    """A random model of 300 items in 8 skills (some items without one) with the calibration terms
    asked, a learner's 200 attempts over 30 days, and 6 units: two skills, a unit over both with a
    few items the model does not cover, one sharing items with another, one of an uncovered item
    only, and an empty one."""
    rng = np.random.default_rng(seed)
    d, n = 4, 300
    embedding = Embedding([f"i{k}" for k in range(n)], rng.normal(scale=0.5, size=(n, d)), rng.normal(1.0, 1.0, n),
                          np.r_[rng.normal(scale=0.3, size=d), 0.3], np.eye(d + 1) * 0.8)
    item_skills = np.where(rng.random(n) < 0.1, -1, rng.integers(0, 8, n))
    calibration = Calibration(
        "platt", 1.3, -0.1,
        retry=RetryTerms(0.1, 0.3, -0.4, -0.2, np.array([0.2, 0.1]), np.array([0.1, 0.3])) if retry else None,
        learning=learning_terms(rng) if learning_on else None,
        skill=SkillTerms(0.7, 5) if skills else None,
        item_sd=0.5 if item_sd else None, item_slope_sd=0.2 if item_sd else None)
    artifact = ModelArtifact.from_json(embedding, calibration.to_json(),
                                       {"item_skills": item_skills.tolist()} if skills else {}, "practice")
    model = ServingModel.from_stored(StoredModel(1, "u", "practice", "mf", "default", artifact))
    now = 1.8e9
    h_rows = rng.integers(0, 120, 200)                  # skills of items 120.. never practised
    h_out = (rng.random(200) < 0.85).astype(float)
    h_times = now - np.sort(rng.uniform(0.0, 30.0, 200))[::-1] * DAY_S
    by_skill = [np.flatnonzero(item_skills == s) for s in range(8)]
    units = [by_skill[0], by_skill[1], np.r_[by_skill[0], by_skill[1], [-1, -1], by_skill[6]],
             np.r_[by_skill[1][:5], np.arange(100, 140)], np.array([-1]), np.array([], dtype=np.int64),
             np.arange(0, 300)]
    return model, h_rows, h_out, h_times, now, units, rng.uniform(0.55, 0.9, len(units))


CASES = [{}, {"skills": False}, {"retry": False, "item_sd": False}, {"learning_on": False}]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("terms", CASES)
def test_estimate_units_on_a_layout_gives_the_reference_answers(seed, terms):
    model, h_rows, h_out, h_times, now, units, review = case(seed, **terms)
    typical = typical_rows(model, units)
    want = reference_estimate_units(model, h_rows, h_out, units, typical, review, h_times, now)
    layout = UnitLayout.of(model, units, typical)
    for got in (estimate_units(model, h_rows, h_out, layout, None, review, h_times, now),
                estimate_units(model, h_rows, h_out, units, typical, review, h_times, now)):
        for a, b in zip((want.p, want.low, want.high, want.due_days), (got.p, got.low, got.high, got.due_days)):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)
    if terms.get("learning_on", True):
        assert (want.due_days > 0).sum() >= 2           # due later: the Newton rounds on the mean are exercised


@pytest.mark.parametrize("seed", [0, 1])
def test_no_history_and_no_times_give_the_reference_answers(seed):
    model, _, _, _, now, units, review = case(seed)
    typical = typical_rows(model, units)
    empty = np.array([], dtype=np.int64)
    for h_rows, h_out, h_times, at in ((empty, np.array([]), np.array([]), now),
                                       (np.array([3, 5]), np.array([1.0, 0.0]), None, None)):
        want = reference_estimate_units(model, h_rows, h_out, units, typical, review, h_times, at)
        got = estimate_units(model, h_rows, h_out, UnitLayout.of(model, units, typical), None, review, h_times, at)
        for a, b in zip((want.p, want.low, want.high, want.due_days), (got.p, got.low, got.high, got.due_days)):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)


def test_a_given_fit_gives_the_same_p_as_fitting():
    model, h_rows, h_out, h_times, now, _, _ = case(3)
    rows = np.arange(-1, 300)
    p, theta, _ = practice_probabilities(model, h_rows, h_out, rows, None, None, None, h_times, now)
    again, same, _ = practice_probabilities(model, h_rows, h_out, rows, None, None, None, h_times, now, theta)
    assert same is theta
    np.testing.assert_array_equal(again, p)


def test_the_forecast_is_the_terms_of_the_later_features():
    rng = np.random.default_rng(5)
    block = learning_terms(rng)
    x = np.abs(rng.normal(size=(7, len(FEATURES))))
    x[2, FEATURES.index("skill_attempts")] = 0.0        # a skill never practised keeps its 0 days away
    x[4, FEATURES.index("attempts")] = 0.0
    days = np.c_[rng.uniform(-3.0, 60.0, (7, 5)), np.full(7, 400.0)]
    forecast = learning.Forecast(block, x)
    np.testing.assert_allclose(forecast.terms(days), learning.terms(block, learning.later(x, days)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(forecast.now + forecast.still, learning.terms(block, x), rtol=0, atol=1e-12)
    # the due search over a grid and a bisection, against the reference's
    z = rng.normal(1.0, 1.0, 7)
    np.testing.assert_allclose(due_in_days(block, z, x, np.full(7, 0.7)),
                               reference_due_in_days(block, z, x, np.full(7, 0.7)), rtol=0, atol=1e-9)

"""The request path computes the learning terms once per skill and finds the learner's few
attempted items among the candidates by a sorted index (app.online.learning, app.online.rows):
the predictions are those of the straightforward computation, per candidate, kept here as the
reference (the code the service ran before, and a plain loop over the history)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.catalogue import history as hist
from app.model.artifact import Embedding, LearningTerms, ModelArtifact
from app.model.store import StoredModel
from app.online import learning
from app.online.fit import HISTORY_MAX, fit_user, posterior_sample, recency_weights, score, skill_offsets
from app.online.learning import DAY_S, FEATURES
from app.online.rows import RowIndex, attempted
from app.online.scoring import ServingModel, _raw_scores, calibrated, practice_probabilities, previous_outcomes
from app.serving.learner_fit import practice_history

T0 = 1.7e9
N_ITEMS, N_SKILLS = 900, 110
EXACT = {"rtol": 0, "atol": 1e-12}   # within 1e-12 (terms can differ by an ulp: BLAS sums a row by its place)


# --- the reference: the per-candidate computation the service ran before the skill tables ---

def reference_features(h_rows, h_outcomes, h_times, now, cand_rows, item_skills, cand_skills=None):
    k = len(cand_rows)
    out = np.zeros((k, len(FEATURES)))
    n = len(h_rows)
    out[:, 6] = 1.0
    if n == 0:
        return out
    y = np.asarray(h_outcomes, dtype=np.float64)
    times = np.asarray(h_times, dtype=np.float64)
    attempts, successes = float(n), float(y.sum())
    days_away = max(now - times[-1], 0.0) / DAY_S
    covered = cand_rows >= 0
    item_counts = np.zeros(k)
    if covered.any():
        rows, counts = np.unique(h_rows, return_counts=True)
        where = np.searchsorted(rows, cand_rows)
        where[where >= len(rows)] = 0
        hit = covered & (rows[where] == cand_rows)
        item_counts[hit] = counts[where[hit]]
    if cand_skills is None:
        cand_skills = np.full(k, -1) if item_skills is None else \
            np.where(covered, item_skills[np.where(covered, cand_rows, 0)], -1)
    skill_n = np.full(k, attempts)
    skill_s = np.full(k, successes)
    skill_days = np.full(k, days_away)
    own = cand_skills >= 0
    if item_skills is not None and own.any():
        h_skills = item_skills[h_rows]
        m = int(max(h_skills.max(), cand_skills.max())) + 1
        keep = h_skills >= 0
        n_by = np.bincount(h_skills[keep], minlength=m)
        s_by = np.bincount(h_skills[keep], weights=y[keep], minlength=m)
        last_by = np.full(m, -np.inf)
        np.maximum.at(last_by, h_skills[keep], times[keep])
        s = cand_skills[own]
        skill_n[own], skill_s[own] = n_by[s], s_by[s]
        seen = np.isfinite(last_by[s])
        skill_days[own] = np.where(seen, np.maximum(now - np.where(seen, last_by[s], now), 0.0) / DAY_S, 0.0)
    out[:, 0] = np.log1p(skill_n)
    out[:, 1] = np.log1p(skill_s)
    out[:, 2] = np.log1p(attempts)
    out[:, 3] = np.log1p(successes)
    out[:, 4] = np.log1p(item_counts)
    out[:, 5] = np.log1p(skill_days)
    out[:, 6] = (skill_n == 0).astype(np.float64)
    out[:, 7] = np.log1p(days_away)
    return out


def reference_previous_outcomes(history_rows, history_outcomes, candidate_rows):
    out = np.full(len(candidate_rows), -1, dtype=np.int8)
    if not len(history_rows):
        return out
    rows, first = np.unique(history_rows[::-1], return_index=True)
    last = np.asarray(history_outcomes, dtype=np.int8)[::-1][first]
    where = np.searchsorted(rows, candidate_rows)
    where[where >= len(rows)] = 0
    hit = (candidate_rows >= 0) & (rows[where] == candidate_rows)
    out[hit] = last[where[hit]]
    return out


def reference_probabilities(model, history_rows, history_outcomes, candidate_rows, half_life=None, explore=None,
                            history_times=None, now=None):
    """practice_probabilities on plain rows as it was: every candidate's FEATURES row, then terms."""
    weights = recency_weights(len(history_rows), half_life)
    V, b = model.item_vectors[history_rows], model.item_biases[history_rows]
    theta = fit_user(V, b, history_outcomes, model.prior_mean, model.prior_precision, weights=weights)
    previous = reference_previous_outcomes(history_rows, history_outcomes, candidate_rows) \
        if model.calibration.retry is not None else None
    offsets = 0.0
    terms = model.calibration.skill
    if terms is not None and model.item_skills is not None and len(history_rows):
        delta = skill_offsets(score(theta, V, b), history_outcomes, model.item_skills[history_rows],
                              model.n_skills, terms.sd, terms.half_life)
        skills = np.where(candidate_rows >= 0, model.item_skills[candidate_rows], -1)
        offsets = np.where(skills >= 0, delta[skills], 0.0)
    practice = None
    if model.calibration.learning is not None and history_times is not None and now is not None:
        practice = reference_features(history_rows, history_outcomes, history_times, now, candidate_rows,
                                      model.item_skills)
    biases = None
    if previous is not None and model.calibration.retry.biases_after_mistake is not None:
        item_biases = np.where(candidate_rows >= 0, model.item_biases[np.maximum(candidate_rows, 0)], model.mean_bias)
        biases = np.column_stack([item_biases, np.full(len(item_biases), theta[-1])])
    p = calibrated(model.calibration, _raw_scores(model, theta, candidate_rows) + offsets, previous, practice, biases)
    explored = None
    if explore is not None:
        draw = posterior_sample(theta, V, b, history_outcomes, model.prior_precision, explore, weights)
        explored = calibrated(model.calibration, _raw_scores(model, draw, candidate_rows) + offsets, previous,
                              practice, biases)
    return p, theta, explored


def naive_features(h_rows, h_outcomes, h_times, now, cand_rows, item_skills):
    """The FEATURES by their definition, one candidate and one earlier attempt at a time."""
    out = np.zeros((len(cand_rows), len(FEATURES)))
    n = len(h_rows)
    for c, row in enumerate(cand_rows):
        skill = item_skills[row] if item_skills is not None and row >= 0 else -1
        mine = [t for t in range(n) if skill < 0 or item_skills[h_rows[t]] == skill]
        last = max((h_times[t] for t in mine), default=None)
        skill_days = 0.0 if last is None else max(now - last, 0.0) / DAY_S
        out[c] = [np.log1p(len(mine)), np.log1p(sum(h_outcomes[t] for t in mine)), np.log1p(n),
                  np.log1p(sum(h_outcomes)), np.log1p(sum(1 for t in range(n) if row >= 0 and h_rows[t] == row)),
                  np.log1p(skill_days), float(not mine),
                  np.log1p(max(now - h_times[-1], 0.0) / DAY_S) if n else 0.0]
    return out


# --- random learners and candidates ---

def _item_skills(rng) -> np.ndarray:
    skills = rng.integers(0, N_SKILLS, N_ITEMS)
    skills[rng.random(N_ITEMS) < 0.1] = -1          # items without a skill
    skills[skills == 17] = 18                        # skill 17: candidates only, never in a history
    skills[:20] = 17
    return skills


def _history(rng, item_skills, n: int, shuffled: bool = False):
    pool = rng.choice(np.arange(20, N_ITEMS), 60, replace=False)    # few items: many repeats
    rows = rng.choice(pool, n)                                        # never an item of skill 17
    outcomes = rng.integers(0, 2, len(rows)).astype(np.float64)
    gaps = rng.choice([20.0, 600.0, DAY_S, 9 * DAY_S], len(rows))
    times = T0 + np.cumsum(gaps)
    if shuffled:   # a cached list whose late events sit out of time order
        times = rng.permutation(times)
    return rows, outcomes, times, float(times.max() if len(times) else T0) + rng.choice([0.0, 3 * DAY_S, -600.0])


def _candidates(rng, k: int = 700) -> np.ndarray:
    rows = rng.integers(0, N_ITEMS, k)        # repeats included
    rows[rng.random(k) < 0.08] = -1           # not covered
    rows[:5] = np.arange(5)                   # skill 17 (never practised)
    return rows


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_features_by_skill_are_the_per_candidate_features(n):
    rng = np.random.default_rng(n)
    for trial in range(8):
        item_skills = _item_skills(rng)
        h_rows, h_out, h_times, now = _history(rng, item_skills, n, shuffled=trial % 3 == 2)
        cands = _candidates(rng)
        for skills in (item_skills, None):
            ref = reference_features(h_rows, h_out, h_times, now, cands, skills)
            x = learning.features(h_rows, h_out, h_times, now, cands, skills)
            np.testing.assert_allclose(x, ref, **EXACT)
            given = None if skills is None else np.where(cands >= 0, skills[np.maximum(cands, 0)], -1)
            laid = learning.features(h_rows, h_out, h_times, now, cands, skills, given,
                                     attempted(RowIndex.of(cands), h_rows, h_out))
            np.testing.assert_allclose(laid, ref, **EXACT)
            if trial == 0:
                np.testing.assert_allclose(x, naive_features(h_rows, h_out, h_times, now, cands, skills), **EXACT)


def test_a_skill_never_practised_is_new_and_an_empty_history_makes_every_skill_new():
    item_skills = _item_skills(np.random.default_rng(0))
    h_rows, h_out, h_times = np.array([30, 30, 31]), np.array([1.0, 0.0, 1.0]), T0 + np.array([0.0, 60.0, DAY_S])
    x = learning.features(h_rows, h_out, h_times, T0 + 2 * DAY_S, np.array([0, 30, -1]), item_skills)
    col = FEATURES.index
    assert x[0, col("new_skill")] == 1 and x[0, col("skill_attempts")] == 0 and x[0, col("skill_days_away")] == 0
    assert x[1, col("item_attempts")] == pytest.approx(np.log1p(2))
    assert x[2, col("skill_attempts")] == pytest.approx(np.log1p(3))    # not covered: the overall figures
    empty = learning.features(np.empty(0, np.int64), np.empty(0), np.empty(0), T0, np.array([0, 30, -1]),
                              item_skills)
    assert empty.tolist() == [[0.0] * 6 + [1.0, 0.0]] * 3


def test_candidate_terms_are_the_terms_of_the_features():
    rng = np.random.default_rng(5)
    block = LearningTerms.from_json({"features": list(FEATURES), "weights": rng.normal(0, 0.3, len(FEATURES)).tolist(),
                                     "max": [2.0, 1.5, 6.0, 5.0, 0.5, 2.5, 1.0, 3.0]})   # item_attempts clipped at 0.5
    for n in (0, 1, 40, 400):
        item_skills = _item_skills(rng)
        h_rows, h_out, h_times, now = _history(rng, item_skills, n)
        cands = _candidates(rng)
        ref = learning.terms(block, reference_features(h_rows, h_out, h_times, now, cands, item_skills))
        got = learning.candidate_terms(block, h_rows, h_out, h_times, now, cands, item_skills)
        np.testing.assert_allclose(got, ref, **EXACT)


def test_the_row_index_finds_every_candidate_of_each_history_row_repeats_included():
    rng = np.random.default_rng(2)
    for k in (0, 1, 50, 2000):
        cands = rng.integers(-1, 300, k)
        wanted = np.unique(rng.integers(0, 320, 40))
        positions, which = RowIndex.of(cands).find(wanted)
        expected = sorted((int(p), int(j)) for j, r in enumerate(wanted) for p in np.flatnonzero(cands == r))
        assert sorted(zip(positions.tolist(), which.tolist())) == expected
    history, outcomes, cands = np.array([3, 4, 3]), np.array([0.0, 1.0, 0.0]), np.array([3, -1, 4, 3, 9])
    found = attempted(RowIndex.of(cands), history, outcomes)
    assert sorted(zip(found.positions.tolist(), found.counts.tolist(), found.last.tolist())) \
        == [(0, 2, 0), (2, 1, 1), (3, 2, 0)]          # item 3: twice, the last one wrong
    assert previous_outcomes(history, outcomes, cands).tolist() == [0, -1, 1, 0, -1]


def _model(rng, learning_block: bool = True, retry: bool = True, skill: bool = True,
           item_skills: np.ndarray | None = None) -> ServingModel:
    d = 6
    calibration: dict = {"a": 1.07, "b": -0.1}
    if retry:
        calibration["retry"] = {"after_mistake": -0.3, "after_success": 0.4, "slope_after_mistake": 0.1,
                                "slope_after_success": -0.05, "biases_after_mistake": [0.1, -0.2],
                                "biases_after_success": [0.05, 0.12]}
    if skill:
        calibration["skill"] = {"sd": 0.5, "half_life": 8.0}
    if learning_block:
        calibration["learning"] = {"features": list(FEATURES), "weights": rng.normal(0, 0.3, len(FEATURES)).tolist(),
                                   "max": [3.0, 2.5, 6.0, 5.0, 1.2, 3.5, 1.0, 3.0]}
    extra = {} if item_skills is None else {"item_skills": item_skills.tolist()}
    cov = np.cov(rng.normal(size=(100, d + 1)), rowvar=False) + 0.1 * np.eye(d + 1)
    embedding = Embedding([f"i{k}" for k in range(N_ITEMS)], rng.normal(scale=0.5, size=(N_ITEMS, d)),
                          rng.normal(size=N_ITEMS), rng.normal(scale=0.2, size=d + 1), cov)
    return ServingModel.from_stored(StoredModel(3, "u", "practice", "mf", "default",
                                                ModelArtifact.from_json(embedding, calibration, extra, "practice")))


def test_probabilities_with_learning_terms_by_skill_are_those_computed_per_candidate():
    rng = np.random.default_rng(9)
    for trial in range(24):
        item_skills = _item_skills(rng) if trial % 4 else None
        model = _model(rng, retry=trial % 3 != 0, skill=trial % 2 == 0, item_skills=item_skills)
        n = [0, 1, 25, 500][trial % 4]
        h_rows, h_out, h_times, now = _history(rng, item_skills if item_skills is not None else np.zeros(N_ITEMS, int),
                                               n, shuffled=trial % 5 == 4)
        cands = _candidates(rng, 1500)
        half_life = None if trial % 3 else 30.0
        ref = reference_probabilities(model, h_rows, h_out, cands, half_life, np.random.default_rng(trial),
                                      h_times, now)
        for given in (cands, model.lay_out(cands)):
            got = practice_probabilities(model, h_rows, h_out, given, half_life, np.random.default_rng(trial),
                                         None, h_times, now)
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b, **EXACT)


def test_the_history_the_live_fit_takes_from_the_events_is_unchanged():
    rng = np.random.default_rng(4)
    model = _model(rng, item_skills=_item_skills(rng))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    for n in (0, 3, 700):
        at = now - timedelta(days=40)
        events = []
        for _ in range(n):
            at += timedelta(seconds=float(rng.choice([5.5, 600.0, 86_400.0])))
            kind = "attempt" if rng.random() < 0.85 else "view"
            item = f"i{rng.integers(0, N_ITEMS)}" if rng.random() < 0.9 else "not-in-the-model"
            outcome = None if kind == "view" or rng.random() < 0.05 else int(rng.integers(0, 2))
            events.append(hist.Event(item, kind, outcome, None, at))
        events.reverse()     # newest first, as the history cache gives them
        attempts = [e for e in events if e.kind == "attempt" and e.outcome is not None and e.item_id in model.index]
        attempts = attempts[:HISTORY_MAX][::-1]
        h = practice_history(model, events, now)
        assert h.rows.dtype == np.int64 and h.outcomes.dtype == np.float64 and h.times.dtype == np.float64
        assert h.rows.tolist() == [model.index[e.item_id] for e in attempts]
        assert h.outcomes.tolist() == [e.outcome for e in attempts]
        assert h.times.tolist() == [e.occurred_at.timestamp() for e in attempts]
        assert h.now == now.timestamp()

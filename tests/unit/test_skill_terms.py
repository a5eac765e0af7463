"""Per-skill learner offsets (knowledge tracing in the live fit): the maths, the job's choice on
dev learners, and the service applying exactly what the job's replay measured. No database."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from app.model.artifact import Calibration, Embedding, ModelArtifact, Skills, SkillTerms
from app.model.store import StoredModel
from app.online.fit import sigmoid, skill_offsets, within_group_age
from app.online.scoring import ServingModel, practice_probabilities
from jobs.training.practice import PracticeData, fold_in_predictions, skill_index


def test_within_group_age_counts_later_rows_of_the_same_group():
    groups = np.array([0, 1, 0, 0, 1, 2])            # oldest first
    assert within_group_age(groups).tolist() == [2, 1, 1, 0, 0, 0]
    assert within_group_age(np.empty(0, np.int64)).tolist() == []


def test_skill_offsets_are_each_skills_map_estimate_and_zero_without_attempts():
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, 40)
    y = (rng.random(40) < 0.5).astype(float)
    skills = rng.integers(0, 3, 40)
    skills[skills == 2] = 0                          # skill 2 has no attempts
    sd, half_life = 0.8, 4.0
    delta = skill_offsets(raw, y, skills, 4, sd, half_life, steps=20)
    assert delta[2] == 0.0 and delta[3] == 0.0
    for s in (0, 1):                                  # each skill's 1-D MAP, by a reference solver
        mine = skills == s
        w = 0.5 ** (within_group_age(skills)[mine] / half_life)

        def loss(d, r=raw[mine], t=y[mine], w=w):
            z = r + d
            return np.sum(w * (np.logaddexp(0, z) - t * z)) + d * d / (2 * sd * sd)
        assert delta[s] == pytest.approx(minimize_scalar(loss).x, abs=1e-5)


def test_recent_mistakes_in_a_skill_lower_its_offset_more_than_old_ones():
    raw = np.zeros(10)
    skills = np.zeros(10, np.int64)
    recent_wrong = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], float)    # oldest first
    old_wrong = recent_wrong[::-1].copy()
    a = skill_offsets(raw, recent_wrong, skills, 1, 1.0, 3.0)[0]
    b = skill_offsets(raw, old_wrong, skills, 1, 1.0, 3.0)[0]
    assert a < 0 < b
    assert skill_offsets(raw, recent_wrong, skills, 1, 1.0, None)[0] == pytest.approx(0.0, abs=1e-9)
    assert skill_offsets(raw, recent_wrong, np.full(10, -1), 1, 1.0, 3.0).tolist() == [0.0]


def test_skill_index_takes_the_first_direct_unit_and_needs_two_skills():
    items = [{"item_id": "a", "units": ["s2", "s9"]}, {"item_id": "b", "units": ["s1"]}, {"item_id": "c", "units": []}]
    index, names = skill_index(items)
    assert names == ["s1", "s2"] and index.tolist() == [1, 0, -1]
    assert skill_index([{"item_id": "a", "units": ["s1"]}, {"item_id": "b", "units": ["s1"]}]) == (None, [])


def _model(vectors, biases, calibration: Calibration, item_skills):
    embedding = Embedding([f"i{k}" for k in range(len(biases))], vectors, biases,
                          np.zeros(vectors.shape[1] + 1), np.eye(vectors.shape[1] + 1))
    artifact = ModelArtifact(embedding, calibration, skills=Skills(item_skills))
    return ServingModel.from_stored(StoredModel(1, "u", "practice", "mf", "default", artifact))


def test_the_service_adds_the_same_skill_offset_the_jobs_replay_measured():
    rng = np.random.default_rng(1)
    n_items = 12
    vectors, biases = rng.normal(0, 0.5, (n_items, 3)), rng.normal(0, 1, n_items)
    item_skills = np.array([k % 3 for k in range(n_items)], np.int32)
    terms = SkillTerms(0.7, 5)
    history = np.array([0, 3, 1, 6, 4, 9, 2])         # item rows, oldest first; candidate next: item 0's skill
    outcomes = np.array([0, 0, 1, 0, 1, 0, 1], np.int8)
    data = PracticeData(["u"], [f"i{k}" for k in range(n_items)], np.zeros(8, np.int32),
                        np.r_[history, 0].astype(np.int32), np.r_[outcomes, 1].astype(np.int8), item_skills=item_skills)
    from jobs.training.practice import FittedModel
    fitted = FittedModel(vectors, biases, np.zeros(4), np.eye(4))
    replay_raw, _, _ = fold_in_predictions(fitted, data, np.array([0]), skill=terms)
    plain_raw, _, _ = fold_in_predictions(fitted, data, np.array([0]))

    served = _model(vectors, biases, Calibration(skill=terms), item_skills)
    plain = _model(vectors, biases, Calibration(), item_skills)
    candidates = np.array([0, 1, 2, -1])
    p, _, _ = practice_probabilities(served, history, outcomes.astype(float), candidates)
    p0, _, _ = practice_probabilities(plain, history, outcomes.astype(float), candidates)
    # the replay warm-starts 3 Newton steps per attempt, the service solves from the prior: close, not equal
    assert p[0] == pytest.approx(sigmoid(replay_raw[-1]), abs=2e-3)
    assert p0[0] == pytest.approx(sigmoid(plain_raw[-1]), abs=2e-3)
    assert p[0] < p0[0]                                 # skill 0: wrong, wrong, wrong -> lower than the overall fit
    assert p[3] == pytest.approx(p0[3])                 # an uncovered candidate has no skill
    assert p[1] != pytest.approx(p0[1])


def _skilled_learners(n_users: int, n_items: int, n_skills: int, length: int, skill_sd: float, seed: int = 0):
    """1PL learners with an ability per skill around their overall ability, first attempts only."""
    rng = np.random.default_rng(seed)
    easiness = rng.normal(0, 1, n_items)
    item_skills = (np.arange(n_items) % n_skills).astype(np.int32)
    users, items, y = [], [], []
    for u in range(n_users):
        ability = rng.normal() + skill_sd * rng.normal(size=n_skills)
        for i in rng.permutation(n_items)[:length]:
            users.append(u)
            items.append(i)
            y.append(rng.random() < sigmoid(ability[item_skills[i]] + easiness[i]))
    return PracticeData([f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)],
                        np.array(users, np.int32), np.array(items, np.int32), np.array(y, np.int8),
                        item_skills=item_skills)


@pytest.mark.parametrize("skill_sd, traced", [(0.0, False), (1.5, True)])
def test_the_job_uses_skill_offsets_only_when_they_predict_its_dev_learners_better(skill_sd, traced):
    from jobs.training.practice import RECENCY_MARGIN, train_practice

    data = _skilled_learners(400, 120, 6, 100, skill_sd)
    result = train_practice(data, max_trials=0, threads=1, max_eval_users=40)    # the 1PL candidates only
    tried = {r["sd"]: r["val_logloss"] for r in result.metrics["skill_terms"]}
    chosen = result.calibration.skill
    assert (chosen is not None) == traced, tried
    if chosen:
        assert tried[chosen.sd] < tried[0] - RECENCY_MARGIN


def test_the_live_fit_bench_times_every_variant_side_by_side():
    from bench.live_fit import run

    report = run(dim=4, items=60, skills=5, history=20, candidates=30, repeats=15)
    variants = report["variants"]
    assert set(variants) == {"plain", "retry", "skill", "retry+skill", "retry+skill+metadata prior",
                             "retry+skill, exploring"}
    assert all(v["p50_ms"] > 0 and v["p99_ms"] >= v["p50_ms"] for v in variants.values())
    assert variants["plain"]["p50_vs_plain"] == 1.0


def test_the_replays_single_skill_offset_is_the_services_grouped_one():
    rng = np.random.default_rng(3)
    raw, y = rng.normal(0, 1, 17), (rng.random(17) < 0.4).astype(float)
    for sd, half_life in ((0.6, 5), (1.0, None)):     # one skill (the shortcut) vs skill 1 of 2 (the grouping)
        assert skill_offsets(raw, y, np.zeros(17, np.int64), 1, sd, half_life)[0] == pytest.approx(
            skill_offsets(raw, y, np.ones(17, np.int64), 2, sd, half_life)[1], abs=1e-12)
    assert skill_offsets(np.empty(0), np.empty(0), np.empty(0, np.int64), 1, 0.6, 5).tolist() == [0.0]


def test_one_replay_scores_every_skill_setting_as_separate_replays_would():
    from jobs.training.practice import SKILL_TERMS, FittedModel, skill_replays

    data = _skilled_learners(30, 40, 4, 25, 1.0)
    rng = np.random.default_rng(0)
    fitted = FittedModel(rng.normal(0, 0.3, (40, 3)), rng.normal(0, 1, 40), np.zeros(4), np.eye(4))
    users = np.arange(10)
    raws, rows = skill_replays(fitted, data, users, SKILL_TERMS)
    plain, _, plain_rows = fold_in_predictions(fitted, data, users)
    assert np.array_equal(rows, plain_rows) and np.allclose(raws[0], plain)
    for k, terms in enumerate(SKILL_TERMS, start=1):
        alone, _, _ = fold_in_predictions(fitted, data, users, skill=terms)
        assert np.allclose(raws[k], alone) and not np.allclose(raws[k], plain)
    data.item_skills = None                                   # one skill: the settings add nothing
    raws, _ = skill_replays(fitted, data, users, SKILL_TERMS)
    assert all(np.allclose(r, plain) for r in raws)
    assert np.allclose(fold_in_predictions(fitted, data, users, skill=SKILL_TERMS[0])[0], plain)

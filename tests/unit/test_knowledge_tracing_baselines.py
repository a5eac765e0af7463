"""PFA and Best-LR (bench.knowledge_tracing_baselines): counts of earlier attempts only, a fit that
is the regularised logistic regression, the L2 weight chosen on dev, and a win over a static
item-difficulty model on learners who improve with practice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bench.baselines import item_difficulty
from bench.knowledge_tracing_baselines import L2_GRID, MODELS, Encoding, design, earlier, fit_logistic, kt_predictions
from jobs.training.metrics import auc, logloss

SKILLS, ITEMS_PER_SKILL, GROWTH = 4, 8, 0.9


def _practice_population(learners: int, attempts: int, seed: int, prefix: str,
                         easiness: np.ndarray) -> pd.DataFrame:
    """Learners whose success grows with practice in each skill: logit = -1.2 + item easiness +
    GROWTH log(1 + earlier attempts in the item's skill); items drawn at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(learners):
        practised = np.zeros(SKILLS)
        for t in range(attempts):
            item = int(rng.integers(0, len(easiness)))
            skill = item // ITEMS_PER_SKILL
            p = 1 / (1 + np.exp(-(-1.2 + easiness[item] + GROWTH * np.log1p(practised[skill]))))
            rows.append((f"{prefix}{u}", t, f"q{item}", int(rng.random() < p), f"s{skill}", p))
            practised[skill] += 1
    return pd.DataFrame(rows, columns=["user_id", "seq", "problem_id", "correct", "skills", "p_true"])


@pytest.fixture(scope="module")
def population():
    easiness = np.random.default_rng(0).normal(0, 0.7, SKILLS * ITEMS_PER_SKILL)
    roles = {r: _practice_population(n, 60, seed, r, easiness)
             for r, n, seed in (("train", 300, 1), ("dev", 80, 2), ("test", 80, 3))}
    skills_of = {f"q{i}": [f"s{i // ITEMS_PER_SKILL}"] for i in range(len(easiness))}
    return roles, skills_of


def _frames(roles):
    return {r: roles[r].assign(replayed=True) for r in ("dev", "test")}


def test_counts_are_of_earlier_attempts_in_the_same_group_only():
    group = np.array([7, 3, 7, 7, 3, 9])
    y = np.array([1, 0, 0, 1, 1, 1])
    attempts, successes = earlier(group, y)
    assert attempts.tolist() == [0, 0, 1, 2, 1, 0]
    assert successes.tolist() == [0, 0, 1, 1, 0, 0]


def test_pfa_counts_successes_and_failures_per_skill_of_a_multi_skill_item():
    frame = pd.DataFrame({"user_id": ["a"] * 4 + ["b"], "problem_id": ["p1", "p2", "p1", "p3", "p3"],
                          "correct": [1, 0, 1, 1, 0]})
    enc = Encoding({"p1": ["A"], "p2": ["A", "B"], "p3": ["B"]})
    X = design("pfa", frame, enc).toarray()
    n_i, n_s = enc.n_items, enc.n_skills
    succ, fail = 1 + n_i, 1 + n_i + n_s
    A, B = enc.skills["A"], enc.skills["B"]
    assert X.shape == (5, 1 + n_i + 2 * n_s) and (X[:, 0] == 1).all()
    assert X[3, 1 + enc.items["p3"]] == 1 and X[3, 1:1 + n_i].sum() == 1          # item one-hot
    # row 2 (p1, skill A): before it, A: p1 right, p2 wrong
    assert X[2, succ + A] == pytest.approx(np.log(2)) and X[2, fail + A] == pytest.approx(np.log(2))
    # row 3 (p3, skill B): before it, B: p2 wrong only; nothing in A's columns
    assert X[3, succ + B] == 0 and X[3, fail + B] == pytest.approx(np.log(2)) and X[3, succ + A] == 0
    assert X[4, succ:].sum() == 0                                  # learner b starts from nothing


@pytest.mark.parametrize("model", MODELS)
def test_an_attempts_own_outcome_never_enters_its_features(model):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"user_id": np.repeat(["a", "b"], 30), "problem_id": [f"p{k}" for k in rng.integers(0, 4, 60)],
                          "correct": rng.integers(0, 2, 60)})
    enc = Encoding({"p0": ["A"], "p1": ["A", "B"], "p2": ["B"], "p3": []})
    X = design(model, frame, enc).toarray()
    for k in (0, 7, 29, 45):
        flipped = frame.copy()
        flipped.loc[k, "correct"] = 1 - flipped.loc[k, "correct"]
        Y = design(model, flipped, enc).toarray()
        np.testing.assert_array_equal(X[:k + 1], Y[:k + 1])       # this row and every earlier one unchanged
        if k != 29:                                                # a later attempt of the same learner sees it
            assert not np.array_equal(X[k + 1:], Y[k + 1:])


def test_the_fit_is_the_l2_regularised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 5))
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ np.array([1.0, -2.0, 0.5, 0, 0]) + 0.3)))).astype(float)
    l2 = 0.01
    w = fit_logistic(sp.csr_matrix(np.c_[np.ones(400), X]), y, l2).x
    ref = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(w[1:], ref.coef_[0], atol=1e-4)
    assert w[0] == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_pfa_and_best_lr_beat_a_static_item_difficulty_model_when_learners_improve(population):
    roles, skills_of = population
    out, info = kt_predictions(roles["train"], _frames(roles), skills_of)
    test = roles["test"]
    y = test.correct.to_numpy()
    codes = {p: k for k, p in enumerate(sorted(skills_of))}
    static = item_difficulty(roles["train"].problem_id.map(codes).to_numpy(), roles["train"].correct.to_numpy(),
                             len(codes), test.problem_id.map(codes).to_numpy())
    for model in MODELS:
        p = out["test"][model]
        assert len(p) == len(test) and info[model]["chosen_on"] == "dev"
        assert auc(y, p) > auc(y, static) + 0.05, model
        assert logloss(y, p) < logloss(y, static) - 0.03, model
        assert logloss(y, p) < logloss(y, test.p_true.to_numpy()) + 0.02, model     # near the truth


@pytest.mark.slow   # eight fits of both baselines: about 8 s
def test_the_l2_weight_is_chosen_on_dev_and_test_does_not_move_it(population):
    roles, skills_of = population
    rng = np.random.default_rng(9)
    noise = roles["dev"].assign(correct=rng.integers(0, 2, len(roles["dev"])))      # outcomes that say nothing
    frames = _frames(roles)
    _, real = kt_predictions(roles["train"], frames, skills_of)
    _, on_noise = kt_predictions(roles["train"], {**frames, "dev": noise.assign(replayed=True)}, skills_of)
    _, noisy_test = kt_predictions(roles["train"], {**frames, "test": noise.assign(replayed=True)}, skills_of)
    for model in MODELS:
        table = real[model]["grid"]
        assert [r["l2"] for r in table] == sorted(L2_GRID)
        chosen = next(r for r in table if r["l2"] == real[model]["l2"])
        assert chosen["dev_logloss"] == min(r["dev_logloss"] for r in table)   # ties: the stronger L2
        assert real[model]["l2"] < max(L2_GRID)                 # real dev outcomes: little shrinkage
        assert on_noise[model]["l2"] == max(L2_GRID)            # noise on dev: the strongest shrinkage
        assert noisy_test[model]["l2"] == real[model]["l2"]     # whatever test holds


def test_earlier_rows_before_a_cut_inform_the_counts_but_are_not_predicted(population):
    roles, skills_of = population
    dev = roles["dev"]
    cut = dev.assign(replayed=dev.seq.to_numpy() >= 30)
    out, _ = kt_predictions(roles["train"], {"dev": dev.assign(replayed=True), "test": cut}, skills_of)
    for model in MODELS:
        assert len(out["test"][model]) == int(cut.replayed.sum())
        np.testing.assert_allclose(out["test"][model], out["dev"][model][cut.replayed.to_numpy()])

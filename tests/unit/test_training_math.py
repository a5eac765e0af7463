"""The numerical core, without a database: metrics, calibration, the live fit, similar items."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from app.online.fit import fit_user, prior_from_users, recency_weights, score, sigmoid
from app.online.similar import most_similar, normalised
from jobs.training import calibration as cal
from jobs.training.metrics import auc, ece, probability_metrics, ranking_metrics


def test_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    pairs = [(a > b) + 0.5 * (a == b) for a, ya in zip(s, y) for b, yb in zip(s, y) if ya == 1 and yb == 0]
    assert auc(y, s) == pytest.approx(np.mean(pairs))
    assert np.isnan(auc(np.ones(5), np.arange(5)))


def test_ece_is_zero_for_perfectly_calibrated_buckets_and_large_when_overconfident():
    y = np.array([1] * 7 + [0] * 3 + [1] * 2 + [0] * 8)
    p = np.array([0.7] * 10 + [0.2] * 10)
    assert ece(y, p) == pytest.approx(0.0)
    assert ece(y, np.where(p > 0.5, 0.99, 0.01)) > 0.2


def test_platt_scaling_recovers_a_known_distortion_and_lowers_ece():
    rng = np.random.default_rng(1)
    true_logit = rng.normal(0, 1.5, 20000)
    y = (rng.random(20000) < sigmoid(true_logit)).astype(int)
    raw = (true_logit - 0.5) / 2.0           # an under-confident, shifted score
    c = cal.fit_platt(raw, y)
    assert c.a == pytest.approx(2.0, rel=0.1) and c.b == pytest.approx(0.5, abs=0.1)
    assert ece(y, cal.apply(c, raw)) < ece(y, sigmoid(raw)) / 3


def test_live_fit_matches_a_reference_solver():
    rng = np.random.default_rng(2)
    d, n = 6, 40
    V, b = rng.normal(size=(n, d)), rng.normal(size=n)
    y = rng.integers(0, 2, n)
    mean, cov = rng.normal(size=d + 1) * 0.1, np.eye(d + 1) * 0.5
    P = np.linalg.inv(cov)
    w = recency_weights(n, 10)
    theta = fit_user(V, b, y, mean, P, weights=w, steps=20)

    def objective(t):
        z = V @ t[:-1] + t[-1] + b
        return np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * (t - mean) @ P @ (t - mean)

    reference = minimize(objective, mean, method="BFGS", options={"gtol": 1e-9}).x
    assert np.allclose(theta, reference, atol=1e-5)


def test_a_new_user_gets_the_population_prior_and_a_success_raises_the_estimate():
    rng = np.random.default_rng(3)
    mean, cov = prior_from_users(rng.normal(size=(500, 4)), rng.normal(size=500))
    V, b = rng.normal(size=(10, 4)), np.zeros(10)
    P = np.linalg.inv(cov)
    assert np.array_equal(fit_user(V[:0], b[:0], np.array([]), mean, P), mean)
    after_success = fit_user(V[:1], b[:1], np.array([1]), mean, P)
    after_failure = fit_user(V[:1], b[:1], np.array([0]), mean, P)
    assert score(after_success, V[:1], b[:1])[0] > score(mean, V[:1], b[:1])[0] > score(after_failure, V[:1], b[:1])[0]


def test_recency_weights_halve_every_half_life():
    w = recency_weights(5, 2)
    assert w[-1] == 1.0 and w[-3] == pytest.approx(0.5)


def test_most_similar_excludes_the_item_and_orders_by_cosine():
    vectors = normalised(np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.5, 0.5]], dtype=np.float32))
    top, sims = most_similar(vectors, 0, 3)
    assert list(top) == [1, 4, 2] and sims[0] > sims[1] > sims[2]
    top, _ = most_similar(vectors, 0, 10, candidates=np.array([True, False, True, True, False]))
    assert list(top) == [2, 3]


def test_ranking_metrics_on_a_hand_checked_case():
    scores = np.array([[0.9, 0.8, 0.1, 0.7]])
    m = ranking_metrics(scores, [np.array([1, 2])], [np.array([0])], k=2)
    # top-2 after excluding item 0: items 1 and 3; one hit of two relevant
    assert m["precision_at_2"] == 0.5 and m["recall_at_2"] == 0.5
    assert m["ndcg_at_2"] == pytest.approx(1.0 / (1.0 + 1.0 / np.log2(3)))


def test_metrics_of_no_predictions_are_nan_not_a_warning():
    # A small unit can have no test learner under the id split: its held-out figures are unknown.
    m = probability_metrics(np.array([], dtype=int), np.array([], dtype=float))
    assert m["n"] == 0 and all(np.isnan(m[k]) for k in ("auc", "logloss", "accuracy", "ece"))


def _drifting_learners(n_users: int, n_items: int, length: int, drift: float, seed: int = 0):
    """1PL learners whose ability moves by `drift` per attempt (a random walk), first attempts only."""
    from jobs.training.practice import PracticeData

    rng = np.random.default_rng(seed)
    easiness = rng.normal(0, 1, n_items)
    users, items, y = [], [], []
    for u in range(n_users):
        ability = rng.normal()
        for i in rng.permutation(n_items)[:length]:
            ability += drift * rng.normal()
            users.append(u)
            items.append(i)
            y.append(rng.random() < 1 / (1 + np.exp(-(ability + easiness[i]))))
    return PracticeData([f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)],
                        np.array(users, np.int32), np.array(items, np.int32), np.array(y, np.int8))


@pytest.mark.parametrize("drift, recency_wins", [(0.0, False), (0.35, True)])
def test_the_job_weighs_recent_attempts_only_when_that_predicts_its_dev_learners_better(drift, recency_wins):
    from jobs.training.practice import HALF_LIVES, RECENCY_MARGIN, train_practice

    data = _drifting_learners(400, 120, 100, drift)
    result = train_practice(data, max_trials=0, threads=1, max_eval_users=40)    # the 1PL candidates only
    tried = {r["half_life"]: r["val_logloss"] for r in result.metrics["recency"]}
    assert set(tried) == set(HALF_LIVES)
    chosen = result.calibration.half_life
    assert tried[chosen] <= min(tried.values()) + RECENCY_MARGIN     # the best, or equal weights within the margin
    assert (chosen is not None) == recency_wins, tried


@pytest.mark.parametrize("sd, slope_sd", [(0.0, 0.0), (0.8, 0.0), (0.5, 0.4)])
def test_the_item_error_is_what_every_learner_of_an_item_shares_growing_with_their_distance(sd, slope_sd):
    # 1,000 items with 8 dev attempts each; on item i the model's logit is off by e_i + f_i * distance
    rng = np.random.default_rng(11)
    items = np.repeat(np.arange(1000), 8)
    distance = rng.normal(0.0, 1.5, len(items))
    z = distance + 0.5 * rng.normal(size=1000)[items]
    truth = z + rng.normal(0.0, sd, 1000)[items] + rng.normal(0.0, slope_sd, 1000)[items] * distance
    y = (rng.random(len(items)) < sigmoid(truth)).astype(float)
    found = cal.item_error(items, sigmoid(z), y, distance)
    assert found == pytest.approx((sd, slope_sd), abs=0.15)


def test_the_item_error_is_unknown_from_too_few_items_seen_twice():
    items = np.r_[np.arange(19), np.arange(19), np.arange(19, 200)]   # 19 items twice, the rest once
    p = np.full(len(items), 0.6)
    assert cal.item_error(items, p, (np.arange(len(items)) % 2).astype(float), np.zeros(len(items))) is None
    assert cal.item_error(np.array([]), np.array([]), np.array([]), np.array([])) is None

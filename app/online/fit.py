"""The live fit: a learner's embedding from their history, against fixed item vectors.

Model (LightFM's logistic loss): logit p(correct | user, item) = u . v_i + b_u + b_i.
With the item side fixed, fitting theta = [u, b_u] is a logistic regression with design rows
x_i = [v_i, 1] and offsets b_i. The prior N(mu, Sigma) is the distribution of the trained
users' [u, b_u], so a new learner starts at the population mean and each attempt moves them;
the MAP estimate is found by a few Newton steps (the problem is small: dim + 1 unknowns).
"""
from __future__ import annotations

import numpy as np

# Attempts the live fit uses (the most recent ones). On the ASSISTments replay 500 gave AUC 0.830,
# 200 gave 0.825, 100 gave 0.816; beyond 500 nothing changed. The training job replays held-out
# learners with the same window, so the calibration it fits matches what the service does.
HISTORY_MAX = 500


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_user(item_vectors: np.ndarray, item_biases: np.ndarray, outcomes: np.ndarray,
             prior_mean: np.ndarray, prior_precision: np.ndarray, weights: np.ndarray | None = None,
             steps: int = 8, tol: float = 1e-6, start: np.ndarray | None = None) -> np.ndarray:
    """MAP estimate of theta = [u, b_u] from a learner's attempts.

    item_vectors : (n, d) vectors of the attempted items; item_biases : (n,);
    outcomes : (n,) 0/1; prior_mean : (d + 1,); prior_precision : (d + 1, d + 1), the inverse
    prior covariance; weights : (n,) optional per-attempt weights (recency); start : where Newton
    starts (default the prior mean; a previous estimate converges in fewer steps).
    Returns theta : (d + 1,). With no attempts it returns the prior mean.
    """
    theta = np.array(prior_mean if start is None else start, dtype=np.float64, copy=True)
    n = len(outcomes)
    if n == 0:
        return np.array(prior_mean, dtype=np.float64, copy=True)
    X = np.empty((n, item_vectors.shape[1] + 1))
    X[:, :-1] = item_vectors
    X[:, -1] = 1.0
    y = np.asarray(outcomes, dtype=np.float64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    offset = np.asarray(item_biases, dtype=np.float64)
    for _ in range(steps):
        p = sigmoid(X @ theta + offset)
        grad = X.T @ (w * (p - y)) + prior_precision @ (theta - prior_mean)
        hess = (X * (w * p * (1.0 - p))[:, None]).T @ X + prior_precision
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    return theta


def posterior_precision(theta: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray, outcomes: np.ndarray,
                        prior_precision: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """H, the negative Hessian of the live fit's log posterior at the MAP `theta` (the same data as
    fit_user): the precision of its Laplace approximation N(theta, H^-1). (d + 1, d + 1)."""
    n = len(outcomes)
    X = np.empty((n, item_vectors.shape[1] + 1))
    X[:, :-1] = item_vectors
    X[:, -1] = 1.0
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    p = sigmoid(X @ theta + np.asarray(item_biases, dtype=np.float64))
    return (X * (w * p * (1.0 - p))[:, None]).T @ X + prior_precision


def posterior_sample(theta: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray, outcomes: np.ndarray,
                     prior_precision: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None
                     ) -> np.ndarray:
    """A draw from the Laplace approximation of the live fit's posterior, N(theta, H^-1), H the
    negative Hessian of the log posterior at the MAP `theta` (posterior_precision): few or
    uninformative attempts leave it wide, so a learner the model knows little about is explored."""
    hess = posterior_precision(theta, item_vectors, item_biases, outcomes, prior_precision, weights)
    chol = np.linalg.cholesky(hess)
    return theta + np.linalg.solve(chol.T, rng.standard_normal(len(theta)))


def score(theta: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray) -> np.ndarray:
    """Raw logits u . v_i + b_u + b_i for all items (vectorised): (n_items,)."""
    return item_vectors @ theta[:-1] + theta[-1] + item_biases


def recency_weights(n: int, half_life: float | None) -> np.ndarray:
    """Weights for n attempts ordered oldest first: the newest weighs 1, halving every half_life."""
    if not half_life or n == 0:
        return np.ones(n)
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return 0.5 ** (age / half_life)


def prior_from_users(user_vectors: np.ndarray, user_biases: np.ndarray,
                     shrink: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the trained users' [u, b_u]; a little ridge keeps it invertible."""
    theta = np.hstack([user_vectors, user_biases[:, None]]).astype(np.float64)
    mean = theta.mean(axis=0)
    cov = np.cov(theta, rowvar=False) if len(theta) > 1 else np.eye(theta.shape[1])
    cov = np.atleast_2d(cov) + shrink * np.eye(theta.shape[1])
    return mean, cov


def within_group_age(groups: np.ndarray) -> np.ndarray:
    """For rows ordered oldest first, how many later rows share each row's group (0: its newest)."""
    n = len(groups)
    if n == 0:
        return np.zeros(0)
    newest_first = groups[::-1]
    order = np.argsort(newest_first, kind="stable")
    sorted_groups = newest_first[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    age = np.empty(n)
    age[order] = rank
    return age[::-1]


def skill_offsets(raw: np.ndarray, outcomes: np.ndarray, skills: np.ndarray, n_skills: int, sd: float,
                  half_life: float | None = None, steps: int = 4, precision: bool = False
                  ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-skill learner offsets around the overall fit (knowledge tracing's per-skill ability):
    delta_s = MAP of sum_t w_t log p(y_t | raw_t + delta_s) with prior N(0, sd^2), over the history
    attempts t in skill s (raw: their logits under the overall fit; skills: their skill index, -1
    none). Recent attempts in a skill weigh more (halving every `half_life` attempts in that skill):
    what the learner did in this skill lately says most about the next attempt in it.
    Returns (n_skills,) offsets; 0 for a skill without attempts. Vectorised over skills. With
    `precision`, also each offset's posterior precision at the MAP (its Laplace approximation;
    1 / sd^2 for a skill without attempts)."""
    delta = np.zeros(n_skills)
    keep = skills >= 0
    if not keep.any() or sd <= 0:
        return (delta, np.full(n_skills, 1.0 / (sd * sd) if sd > 0 else np.inf)) if precision else delta
    raw, y, s = np.asarray(raw, np.float64)[keep], np.asarray(outcomes, np.float64)[keep], skills[keep]
    # one skill (the training job's replay asks for one at a time): its age is its distance from the end
    age = np.arange(len(s) - 1, -1, -1) if n_skills == 1 else within_group_age(s)
    w = 0.5 ** (age / half_life) if half_life else np.ones(len(s))
    precision_prior = 1.0 / (sd * sd)
    for _ in range(steps):
        p = sigmoid(raw + delta[s])
        grad = np.bincount(s, w * (p - y), n_skills) + precision_prior * delta
        hess = np.bincount(s, w * p * (1.0 - p), n_skills) + precision_prior
        delta -= grad / hess
    if precision:
        p = sigmoid(raw + delta[s])
        return delta, np.bincount(s, w * p * (1.0 - p), n_skills) + precision_prior
    return delta


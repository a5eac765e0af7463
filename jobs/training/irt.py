"""The 1PL (Rasch) model as a practice-model candidate: logit p = b_u + b_i, item easiness b_i
and learner ability b_u by joint MAP (b_u ~ N(0, 1), item difficulty ~ N(0, item_sd^2)). It is the
embedding model with no dimensions, so the service serves it with the same live fit (zero item
vectors; the learner's bias is their ability). On few learners or short histories it often
predicts better than an embedding, so the job tries it beside the embeddings and serves the one
that predicts its dev learners best. Pure numpy and scipy."""
from __future__ import annotations

import numpy as np

ABILITY_SD = 1.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_1pl(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
            item_sd: float = 1.0, ability_sd: float = ABILITY_SD) -> tuple[np.ndarray, np.ndarray, float]:
    """Joint MAP of logit = c + theta_u - d_i (theta ~ N(0, ability_sd^2), d ~ N(0, item_sd^2), c
    flat). Returns (theta (n_users,), d (n_items,), c); a learner or item without attempts stays at 0."""
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=np.float64)
    user_precision, item_precision = 1.0 / ability_sd ** 2, 1.0 / item_sd ** 2

    def objective(x):
        theta, d, c = x[:n_users], x[n_users:n_users + n_items], x[-1]
        z = c + theta[users] - d[items]
        g = _sigmoid(z) - y
        value = (np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * user_precision * theta @ theta
                 + 0.5 * item_precision * d @ d)
        grad = np.concatenate([np.bincount(users, weights=g, minlength=n_users) + user_precision * theta,
                               -np.bincount(items, weights=g, minlength=n_items) + item_precision * d,
                               [g.sum()]])
        return value, grad

    x0 = np.zeros(n_users + n_items + 1)
    if len(y):
        rate = float(np.clip(y.mean(), 0.01, 0.99))
        x0[-1] = np.log(rate / (1 - rate))
    x = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-6}).x
    return x[:n_users], x[n_users:n_users + n_items], float(x[-1])

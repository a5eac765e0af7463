"""Calibration that knows about retries: p = sigmoid(a * raw + b + [after a mistake] (w_m + c_m * raw)
+ [after a success] (w_s + c_s * raw)).

A practice model is trained on first attempts, but the service predicts every attempt, and a
retry is unlike a first attempt: after a mistake the learner has usually seen the answer or a
hint, so a retry succeeds far more often than the live fit (which only knows ability and item)
says; after a success it is a review. And the model's own score says less about a retry than
about a first attempt (it was made for first attempts, and the learner's answer to this very
item is better evidence), so each kind of retry also gets its own slope. The offsets and slopes,
fitted with the Platt pair on the dev learners' replay of *all* their attempts (repeats
included, as the service sees them), apply to a candidate the learner attempted before (its
last outcome there). A mild ridge keeps them near 0 where dev learners rarely retry. On the
ASSISTments learners with 300+ attempts (dev learners, fitted on one half and scored on the
other) the slopes cut the after-a-mistake log-loss from 0.69 / 1.03 to 0.55 / 0.61. Pure
numpy/scipy.
"""
from __future__ import annotations

import numpy as np

from app.model.artifact import Calibration, LearningTerms, RetryTerms

RIDGE = 1.0            # pseudo-observations' worth of pull of each offset towards 0
LEARNING_RIDGE = 1.0   # the same for each learning term's weight


def last_outcomes(items: np.ndarray, outcomes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each attempt, the outcome of the same learner's previous attempt at the same item, -1 if
    none. `starts` marks each learner's first row (rows grouped by learner, in time order)."""
    out = np.full(len(items), -1, dtype=np.int8)
    learner = np.cumsum(starts) - 1
    last: dict[tuple[int, int], int] = {}
    for k, (u, i, y) in enumerate(zip(learner.tolist(), items.tolist(), outcomes.tolist())):
        out[k] = last.get((u, i), -1)
        last[(u, i)] = int(y)
    return out


def fit_retry_calibration(raw: np.ndarray, previous: np.ndarray, y: np.ndarray, ridge: float = RIDGE,
                          practice: np.ndarray | None = None, learning_ridge: float = LEARNING_RIDGE,
                          biases: np.ndarray | None = None) -> Calibration:
    """(a, b) and each kind of retry's offset and slope by maximum likelihood (ridge on those four)
    on replayed attempts: raw logits, the previous outcome at the same item (-1 none, 0, 1) and
    the outcomes. With `biases` ((n, 2): the item's bias and the live fit's own bias at each
    attempt), each kind of retry also weighs them apart: a retry after a mistake is predicted by
    how easy the item is and how able the learner, which the model's score, just moved by the
    mistake at this very item, no longer says. With `practice` ((n, F):
    app.online.learning.FEATURES of each attempt), also a weight per feature (ridged by
    `learning_ridge`), stored as the calibration's learning terms with the features' dev maxima
    (the service clips to them)."""
    from scipy.optimize import minimize

    from app.online.learning import FEATURES

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mistake = (previous == 0).astype(np.float64)
    success = (previous == 1).astype(np.float64)
    n = len(raw)
    if n < 20 or y.min() == y.max():
        return Calibration("platt", 1.0, 0.0)
    columns = [raw, np.ones(n), mistake, success, mistake * raw, success * raw]
    if biases is not None:    # the item's and the live fit's own bias, apart, on each kind of retry
        biases = np.asarray(biases, dtype=np.float64)
        columns += [mistake * biases[:, 0], mistake * biases[:, 1], success * biases[:, 0], success * biases[:, 1]]
    retry_columns = len(columns) - 2
    if practice is not None:   # the learning terms
        practice = np.asarray(practice, dtype=np.float64)
        columns += list(practice.T)
    X = np.column_stack(columns)
    penalty = np.r_[0.0, 0.0, np.full(retry_columns, ridge), np.full(X.shape[1] - 2 - retry_columns, learning_ridge)]

    def objective(w):
        z = X @ w
        g = 0.5 * (1.0 + np.tanh(0.5 * z)) - y
        value = (np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w)) / n
        return value, (X.T @ g + penalty * w) / n

    start = np.zeros(X.shape[1])
    start[0] = 1.0
    w = minimize(objective, start, jac=True, method="L-BFGS-B").x
    a, b, wm, ws, cm, cs = (float(v) for v in w[:6])
    retry = RetryTerms(wm, ws, cm, cs, *((w[6:8], w[8:10]) if biases is not None else ()))
    learning = None if practice is None else LearningTerms(FEATURES, w[2 + retry_columns:], np.max(practice, axis=0))
    return Calibration("platt", a, b, retry, learning)

"""Calibration that knows about retries: p = sigmoid(a * raw + b + w_m * after_mistake + w_s * after_success).

A practice model is trained on first attempts, but the service predicts every attempt, and a
retry is unlike a first attempt: after a mistake the learner has usually seen the answer or a
hint, so a retry succeeds far more often than the live fit (which only knows ability and item)
says; after a success it is a review. Two offsets, fitted with the Platt pair on the dev learners'
replay of *all* their attempts (repeats included, as the service sees them), carry that; the
service adds them to a candidate the learner attempted before (its last outcome there). A mild
ridge keeps the offsets near 0 where dev learners rarely retry. Pure numpy/scipy.
"""
from __future__ import annotations

import numpy as np

RIDGE = 1.0            # pseudo-observations' worth of pull of each offset towards 0


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


def fit_retry_calibration(raw: np.ndarray, previous: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> dict:
    """(a, b) and the two offsets by maximum likelihood (ridge on the offsets) on replayed attempts:
    raw logits, the previous outcome at the same item (-1 none, 0, 1) and the outcomes."""
    from scipy.optimize import minimize

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mistake = (previous == 0).astype(np.float64)
    success = (previous == 1).astype(np.float64)
    n = len(raw)
    if n < 20 or y.min() == y.max():
        return {"method": "platt", "a": 1.0, "b": 0.0}

    def objective(x):
        a, b, wm, ws = x
        z = a * raw + b + wm * mistake + ws * success
        g = 0.5 * (1.0 + np.tanh(0.5 * z)) - y
        value = (np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * ridge * (wm * wm + ws * ws)) / n
        grad = np.array([g @ raw, g.sum(), g @ mistake + ridge * wm, g @ success + ridge * ws]) / n
        return value, grad

    a, b, wm, ws = minimize(objective, np.array([1.0, 0.0, 0.0, 0.0]), jac=True, method="L-BFGS-B").x
    return {"method": "platt", "a": float(a), "b": float(b),
            "retry": {"after_mistake": float(wm), "after_success": float(ws)}}


def retry_offsets(calibration: dict, previous: np.ndarray) -> np.ndarray:
    """The logit offsets of the calibration's retry terms for candidates whose previous outcome at
    the item is `previous` (-1 none, 0, 1); zeros when the calibration has none."""
    retry = calibration.get("retry")
    if not retry:
        return np.zeros(len(previous))
    return np.where(previous == 0, retry["after_mistake"], np.where(previous == 1, retry["after_success"], 0.0))

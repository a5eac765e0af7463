"""Platt scaling: p = sigmoid(a * raw + b), fitted by maximum likelihood on held-out data.

LightFM's logistic scores are logits of the training objective, but regularisation and early
stopping leave them over- or under-confident; two parameters fixed on held-out attempts make
them calibrated probabilities. Stored with the model as its Calibration (app.model.artifact):
{"method": "platt", "a": .., "b": ..}.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from app.model.artifact import Calibration

IDENTITY = Calibration("platt", 1.0, 0.0)
QUADRATURE = 12   # Gauss-Hermite nodes per dimension of item_error
TAU_MAX = 5.0     # its search's upper end (logits)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def fit_platt(raw: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> Calibration:
    """Fit (a, b) minimising log-loss of sigmoid(a * raw + b) against 0/1 outcomes y."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(raw) < 20 or y.min() == y.max():
        return IDENTITY

    def objective(theta):
        a, b = theta
        z = a * raw + b
        # log(1 + e^z) - y z, computed stably
        loss = np.logaddexp(0.0, z) - y * z
        p = sigmoid(z)
        grad_z = p - y
        n = len(raw)
        value = loss.sum() / n + l2 * (a - 1.0) ** 2
        grad = np.array([(grad_z * raw).sum() / n + 2 * l2 * (a - 1.0), grad_z.sum() / n])
        return value, grad

    result = minimize(objective, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    return Calibration("platt", a, b)


def apply(calibration: Calibration, raw: np.ndarray) -> np.ndarray:
    return sigmoid(calibration.a * np.asarray(raw, dtype=np.float64) + calibration.b)


def item_error(items: np.ndarray, p: np.ndarray, y: np.ndarray, distance: np.ndarray, min_items: int = 20,
               most: int = 20_000, seed: int = 0) -> tuple[float, float] | None:
    """How wrong the calibrated model is about an item, for every learner alike: (sd, slope_sd) in
    logits, measured on dev learners the model never saw.

    A random-effects logistic model with the calibrated logits as offsets: the attempts at item i are
    Bernoulli(sigmoid(logit p + e_i + f_i * distance)) with e_i ~ N(0, sd^2) and f_i ~ N(0, slope_sd^2)
    common to them; `distance` is each attempt's learner's logit on the item minus the population's
    (the prior mean's), so slope_sd says how the error grows for learners far from where the item
    was seen (an item whose difficulty is right for the average learner can still be wrong for one
    who has practised far beyond it). (sd, slope_sd) maximise the marginal likelihood (e, f
    integrated out by Gauss-Hermite quadrature). The knowledge interval (app.online.knowledge) adds
    sd^2 + slope_sd^2 * distance^2 to its variance: the learner's posterior alone says nothing of how
    wrong the unit's typical item is. At most `most` attempts, whole items drawn at random (seeded).
    None: fewer than `min_items` items with two or more dev attempts (only those say anything)."""
    items = np.asarray(items)
    if len(items) == 0:
        return None
    _, index = np.unique(items, return_inverse=True)
    counts = np.bincount(index)
    if (counts >= 2).sum() < min_items:
        return None
    chosen = counts >= 2
    if counts[chosen].sum() > most:   # whole items, at random, up to `most` attempts
        order = np.random.default_rng(seed).permutation(np.flatnonzero(chosen))
        chosen = np.zeros(len(counts), dtype=bool)
        chosen[order[np.cumsum(counts[order]) <= most]] = True
    keep = chosen[index]
    _, index = np.unique(index[keep], return_inverse=True)
    q = np.clip(np.asarray(p, dtype=np.float64)[keep], 1e-9, 1 - 1e-9)
    z = np.log(q) - np.log1p(-q)
    d = np.asarray(distance, dtype=np.float64)[keep]
    sign = np.where(np.asarray(y, dtype=np.float64)[keep] > 0.5, 1.0, -1.0)
    x, w = np.polynomial.hermite.hermgauss(QUADRATURE)
    e_nodes, f_nodes = np.meshgrid(np.sqrt(2.0) * x, np.sqrt(2.0) * x, indexing="ij")
    e_nodes, f_nodes = e_nodes.ravel(), f_nodes.ravel()
    log_w = np.log(np.outer(w, w).ravel() / np.pi)
    n_items = index.max() + 1
    order = np.argsort(index, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(index[order])) + 1]

    def minus_log_likelihood(params: np.ndarray) -> float:
        sd, slope = params
        shift = sd * e_nodes[None, :] + slope * f_nodes[None, :] * d[:, None]          # (n, K^2)
        ll = -np.logaddexp(0.0, -sign[:, None] * (z[:, None] + shift))
        per_item = np.add.reduceat(ll[order], starts, axis=0)                          # (items, K^2)
        assert per_item.shape[0] == n_items
        return -float(np.logaddexp.reduce(per_item + log_w[None, :], axis=1).sum())

    best = minimize(minus_log_likelihood, x0=np.array([0.3, 0.1]), method="L-BFGS-B",
                    bounds=[(0.0, TAU_MAX), (0.0, TAU_MAX)], options={"eps": 1e-4})
    return float(best.x[0]), float(best.x[1])

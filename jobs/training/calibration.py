"""Platt scaling: p = sigmoid(a * raw + b), fitted by maximum likelihood on held-out data.

LightFM's logistic scores are logits of the training objective, but regularisation and early
stopping leave them over- or under-confident; two parameters fixed on held-out attempts make
them calibrated probabilities. Stored with the model as its Calibration (app.model.artifact):
{"method": "platt", "a": .., "b": ..}.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from app.model.artifact import Calibration

IDENTITY = Calibration("platt", 1.0, 0.0)
QUADRATURE = 24   # Gauss-Hermite nodes of item_error_sd
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


def item_error_sd(items: np.ndarray, p: np.ndarray, y: np.ndarray, min_items: int = 20) -> float | None:
    """The spread (sd, in logits) of the calibrated model's error on an item that every learner
    shares, measured on dev learners the model never saw.

    A random-effects logistic model with the calibrated logits as offsets: the attempts at item i
    are Bernoulli(sigmoid(logit p + e_i)) with e_i ~ N(0, tau^2) common to them; tau maximises the
    marginal likelihood (e_i integrated out by Gauss-Hermite quadrature, a bounded 1-D search).
    The knowledge interval (app.online.knowledge) adds tau^2 to its variance: the learner's
    posterior alone says nothing of how wrong the unit's typical item is. None: fewer than
    `min_items` items with two or more dev attempts (only those say anything of tau)."""
    items = np.asarray(items)
    if len(items) == 0:
        return None
    _, index = np.unique(items, return_inverse=True)
    counts = np.bincount(index)
    keep = counts[index] >= 2
    if (counts >= 2).sum() < min_items:
        return None
    _, index = np.unique(index[keep], return_inverse=True)
    z = np.log(np.clip(p[keep], 1e-9, 1 - 1e-9)) - np.log1p(-np.clip(p[keep], 1e-9, 1 - 1e-9))
    sign = np.where(np.asarray(y, dtype=np.float64)[keep] > 0.5, 1.0, -1.0)
    nodes, weights = np.polynomial.hermite.hermgauss(QUADRATURE)
    log_w = np.log(weights / np.sqrt(np.pi))
    n_items = index.max() + 1

    def minus_log_likelihood(tau: float) -> float:
        e = np.sqrt(2.0) * tau * nodes                                   # (K,)
        # log sigmoid(sign * (z + e)) per attempt and node, summed per item
        ll = -np.logaddexp(0.0, -sign[:, None] * (z[:, None] + e[None, :]))
        per_item = np.stack([np.bincount(index, ll[:, k], n_items) for k in range(len(nodes))], axis=1)
        return -float(np.logaddexp.reduce(per_item + log_w[None, :], axis=1).sum())

    result = minimize_scalar(minus_log_likelihood, bounds=(0.0, TAU_MAX), method="bounded",
                             options={"xatol": 1e-3})
    return float(result.x)

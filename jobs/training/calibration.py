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

"""The learning terms of a practice model's calibration (app.online.learning: practice and time
away), kept only when they predict held-out dev learners better.

The terms are fitted on the dev learners' replay of every attempt, beside the retry terms. Fitted
and judged on the same attempts they would always look useful, so the choice is cross-fitted: the
dev learners are cut in two halves, each half is predicted by the terms fitted on the other, and
the terms are kept when that lowers the log-loss of all dev attempts by more than MARGIN. Kept,
they are fitted again on every dev learner. Pure numpy/scipy.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.model.artifact import Calibration
from app.online.learning import FEATURES
from app.online.scoring import calibrated
from jobs.training.metrics import probability_metrics
from jobs.training.retry import fit_retry_calibration

MARGIN = 0.001     # dev log-loss the learning terms must gain to be used (as recency and skill terms)
# Ridges of the learning weights the cross-fit chooses from (pseudo-observations' pull of each
# weight towards 0): a unit with few dev learners needs a firm pull, one with thousands little.
# On the simulation's 18 dev learners (2,160 attempts) ridge 1 lost 0.0007 of log-loss to none,
# ridge 10 gained 0.0011, ridge 100 gained 0.0006.
RIDGES = (1.0, 10.0, 100.0)


def choose_learning_terms(raw: np.ndarray, previous: np.ndarray, y: np.ndarray, practice: np.ndarray,
                          users: np.ndarray, without: Callable[[np.ndarray], Calibration],
                          biases: np.ndarray | None = None) -> tuple[Calibration | None, dict]:
    """(the calibration with learning terms, or None when they do not help; the figures of the
    choice). raw, previous, y, practice, users: the replayed dev attempts (logits, previous outcome
    at the item, outcomes, FEATURES rows, learner index); `without(mask)`: the calibration the model
    has without the terms, fitted on the attempts of `mask`; `biases`: each attempt's item and
    learner bias (the retry terms' own, jobs.training.retry). The ridge of the weights is the
    one of RIDGES with the lowest cross-fitted log-loss."""
    half = (users % 2).astype(bool)
    if half.all() or not half.any():
        return None, {"used": False, "reason": "too few dev learners to cross-fit"}
    p_without = np.empty(len(y))
    p_with = {ridge: np.empty(len(y)) for ridge in RIDGES}
    for held in (half, ~half):
        fit_on = ~held
        p_without[held] = calibrated(without(fit_on), raw[held], previous[held], None, part(biases, held))
        for ridge in RIDGES:
            terms = fit_retry_calibration(raw[fit_on], previous[fit_on], y[fit_on], practice=practice[fit_on],
                                          learning_ridge=ridge, biases=part(biases, fit_on))
            p_with[ridge][held] = calibrated(terms, raw[held], previous[held], practice[held], part(biases, held))
    losses = {ridge: probability_metrics(y, p)["logloss"] for ridge, p in p_with.items()}
    ridge = min(losses, key=losses.get)
    loss_without = probability_metrics(y, p_without)["logloss"]
    info = {"cross_fitted_logloss_without": loss_without, "cross_fitted_logloss": losses[ridge],
            "cross_fitted_auc_without": probability_metrics(y, p_without)["auc"],
            "cross_fitted_auc": probability_metrics(y, p_with[ridge])["auc"], "ridge": ridge,
            "logloss_by_ridge": {str(r): v for r, v in losses.items()},
            "used": bool(losses[ridge] < loss_without - MARGIN)}
    if not info["used"]:
        return None, info
    calibration = fit_retry_calibration(raw, previous, y, practice=practice, learning_ridge=ridge, biases=biases)
    info["weights"] = dict(zip(FEATURES, calibration.learning.weights.tolist()))
    return calibration, info


def part(rows: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if rows is None else rows[mask]

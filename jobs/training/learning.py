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

from app.online.learning import FEATURES
from app.online.scoring import calibrated
from jobs.training.metrics import probability_metrics
from jobs.training.retry import fit_retry_calibration

MARGIN = 0.001     # dev log-loss the learning terms must gain to be used (as recency and skill terms)


def choose_learning_terms(raw: np.ndarray, previous: np.ndarray, y: np.ndarray, practice: np.ndarray,
                          users: np.ndarray, without: Callable[[np.ndarray], dict]) -> tuple[dict | None, dict]:
    """(the calibration with learning terms, or None when they do not help; the figures of the
    choice). raw, previous, y, practice, users: the replayed dev attempts (logits, previous outcome
    at the item, outcomes, FEATURES rows, learner index); `without(mask)`: the calibration the model
    has without the terms, fitted on the attempts of `mask`."""
    half = (users % 2).astype(bool)
    p_without, p_with = np.empty(len(y)), np.empty(len(y))
    for held in (half, ~half):
        fit_on = ~held
        if not held.any() or not fit_on.any():
            return None, {"used": False, "reason": "too few dev learners to cross-fit"}
        base = without(fit_on)
        p_without[held] = calibrated(base, raw[held], previous[held])
        terms = fit_retry_calibration(raw[fit_on], previous[fit_on], y[fit_on], practice=practice[fit_on])
        p_with[held] = calibrated(terms, raw[held], previous[held], practice[held])
    loss_without = probability_metrics(y, p_without)["logloss"]
    loss_with = probability_metrics(y, p_with)["logloss"]
    info = {"cross_fitted_logloss_without": loss_without, "cross_fitted_logloss": loss_with,
            "cross_fitted_auc_without": probability_metrics(y, p_without)["auc"],
            "cross_fitted_auc": probability_metrics(y, p_with)["auc"],
            "used": bool(loss_with < loss_without - MARGIN)}
    if not info["used"]:
        return None, info
    calibration = fit_retry_calibration(raw, previous, y, practice=practice)
    info["weights"] = dict(zip(FEATURES, calibration["learning"]["weights"]))
    return calibration, info

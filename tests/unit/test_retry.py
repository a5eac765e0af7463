"""Retry terms of a practice model's calibration: fitting them (jobs.training.retry) and serving
them (app.online.scoring), on synthetic data with a known answer."""
from __future__ import annotations

import numpy as np
import pytest

from app.model.artifact import Calibration, RetryTerms
from app.online.scoring import calibrated, previous_outcomes
from jobs.training.retry import fit_retry_calibration, last_outcomes


def test_last_outcomes_are_per_learner_and_item_and_only_from_earlier_attempts():
    items = np.array([1, 2, 1, 1, 2, 1])
    y = np.array([0, 1, 1, 0, 0, 1])
    starts = np.array([True, False, False, False, True, False])     # learner A: rows 0-3, B: rows 4-5
    assert last_outcomes(items, y, starts).tolist() == [-1, -1, 0, 1, -1, -1]


def test_the_fit_recovers_known_retry_offsets_and_slopes():
    rng = np.random.default_rng(0)
    n = 60_000
    raw = rng.normal(0, 1.5, n)
    previous = rng.choice([-1, 0, 1], n, p=[0.6, 0.2, 0.2])
    z = 0.9 * raw - 0.2 + np.where(previous == 0, 1.5 - 0.6 * raw, np.where(previous == 1, -0.5 + 0.3 * raw, 0.0))
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    fitted = fit_retry_calibration(raw, previous, y)
    assert fitted.a == pytest.approx(0.9, abs=0.05) and fitted.b == pytest.approx(-0.2, abs=0.05)
    retry = fitted.retry
    assert retry.after_mistake == pytest.approx(1.5, abs=0.1)
    assert retry.after_success == pytest.approx(-0.5, abs=0.1)
    assert retry.slope_after_mistake == pytest.approx(-0.6, abs=0.1)
    assert retry.slope_after_success == pytest.approx(0.3, abs=0.1)
    p = calibrated(fitted, raw, previous)
    terms = np.where(previous == 0, retry.after_mistake + retry.slope_after_mistake * raw,
                     np.where(previous == 1, retry.after_success + retry.slope_after_success * raw, 0))
    assert np.allclose(p, 1 / (1 + np.exp(-(fitted.a * raw + fitted.b + terms))))


def test_a_calibration_stored_before_the_slopes_still_serves_its_offsets():
    old = Calibration.from_json({"a": 1.0, "b": 0.0, "retry": {"after_mistake": 2.0, "after_success": -1.0}})
    p = calibrated(old, np.array([0.5, 0.5, 0.5]), np.array([0, 1, -1]))
    assert p == pytest.approx(1 / (1 + np.exp(-np.array([2.5, -0.5, 0.5]))))


def test_without_retries_in_the_data_the_offsets_stay_at_zero_and_small_data_gets_identity():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=500)
    y = (rng.random(500) < 1 / (1 + np.exp(-raw))).astype(float)
    fitted = fit_retry_calibration(raw, np.full(500, -1), y)
    assert fitted.retry == RetryTerms(0.0, 0.0, 0.0, 0.0) and fitted.learning is None
    assert fit_retry_calibration(raw[:10], np.full(10, -1), y[:10]) == Calibration("platt", 1.0, 0.0)


def test_the_service_applies_offsets_from_the_last_attempt_at_each_candidate():
    history_rows = np.array([3, 5, 3, 7])            # oldest first: 3 wrong, 5 right, 3 right, 7 wrong
    history_y = np.array([0, 1, 1, 0])
    candidates = np.array([3, 5, 7, 9, -1])
    assert previous_outcomes(history_rows, history_y, candidates).tolist() == [1, 1, 0, -1, -1]
    assert previous_outcomes(np.empty(0, np.int64), np.empty(0), candidates).tolist() == [-1] * 5
    calibration = Calibration(retry=RetryTerms(2.0, -1.0))
    p = calibrated(calibration, np.zeros(5), previous_outcomes(history_rows, history_y, candidates))
    assert p == pytest.approx([1 / (1 + np.e), 1 / (1 + np.e), 1 / (1 + np.exp(-2)), 0.5, 0.5])
    assert calibrated(Calibration(), np.zeros(2), np.array([0, 1])) == pytest.approx([0.5, 0.5])


def test_retries_weigh_the_item_and_the_learner_apart_from_the_score():
    """A retry after a mistake whose success follows the item's and the learner's bias, not the
    score (as when the live fit has just marked this very item down): the fit finds both weights
    and the service's terms apply them only to retries."""
    rng = np.random.default_rng(4)
    n = 40_000
    raw = rng.normal(0, 1.5, n)
    previous = rng.choice([-1, 0, 1], n, p=[0.5, 0.3, 0.2])
    biases = np.column_stack([rng.normal(0, 1, n), rng.normal(0, 1, n)])
    z = np.where(previous == 0, 0.8 * biases[:, 0] + 1.2 * biases[:, 1], raw)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    fitted = fit_retry_calibration(raw, previous, y, biases=biases)
    item_w, learner_w = fitted.retry.biases_after_mistake
    assert item_w == pytest.approx(0.8, abs=0.15) and learner_w == pytest.approx(1.2, abs=0.15)
    first = previous == -1
    assert np.allclose(calibrated(fitted, raw[first], previous[first], None, biases[first]),
                       calibrated(fitted, raw[first], previous[first]))
    mistake = previous == 0
    assert not np.allclose(calibrated(fitted, raw[mistake], previous[mistake], None, biases[mistake]),
                           calibrated(fitted, raw[mistake], previous[mistake]))

"""Item difficulty learned between trainings (pure numpy): a per-item offset on the calibrated
logit, learned from every attempt since the model was trained, until the nightly job takes over.

Why: the model knows an item only as well as the attempts it was trained on. A cohort that
reaches a new chapter together meets items few or none attempted before the last training; until
the job runs, those are guesses (Elo, which moves every item's rating with every answer, does not
have this gap). Each practice model therefore carries, per item, a Gaussian belief about how
wrong its calibrated logit is for every learner alike, N(delta_i, 1 / precision_i), updated with
each attempt as an online Laplace (Kalman) step on the logistic likelihood:

    precision_i += p (1 - p);   delta_i += (y - p) / precision_i

where p is the service's own prediction of the attempt from the learner's history before it, the
offset so far included (Elo's update with a step that shrinks as the item becomes known).

The prior says how little the model knows of the item: its variance is the model's error on a
well-known item (calibration.item_sd, measured by the job on dev learners; 0 when the model has
none) plus what the item's own training attempts n_i leave of the spread of difficulties across
the model's items (s^2, the variance of the population's calibrated logit over the items), as a
normal prior of variance s^2 updated by n_i attempts of INFO_PER_ATTEMPT each:

    1 / precision_i(0) = item_sd^2 + 1 / (1 / s^2 + INFO_PER_ATTEMPT * n_i)

An item with thousands of training attempts barely moves; an item the model has never seen
starts as the average item with the whole spread as its uncertainty.
"""
from __future__ import annotations

import numpy as np

INFO_PER_ATTEMPT = 0.2    # an attempt's Fisher information on the logit, p (1 - p), near p = 0.7


def difficulty_spread(item_logits: np.ndarray) -> float:
    """s^2: the variance of the population's calibrated logit over a model's items (what is known
    of an item before any attempt at it); 1.0 for a model of fewer than two items."""
    return float(np.var(item_logits)) if len(item_logits) > 1 else 1.0


def prior_precision(item_attempts: np.ndarray, spread: float, item_sd: float | None) -> np.ndarray:
    """precision_i(0) of each item trained on `item_attempts` first attempts (0 for an item the
    model does not cover)."""
    n = np.asarray(item_attempts, dtype=np.float64)
    known = 1.0 / (1.0 / spread + INFO_PER_ATTEMPT * n)
    return 1.0 / ((item_sd or 0.0) ** 2 + known)


def update(delta: float, precision: float, y: float, p: float) -> tuple[float, float]:
    """One attempt's step (the module's docstring): (delta, precision) after outcome `y` (0/1) of
    an attempt predicted at `p`. The Redis script of app.serving.item_learning is this same step."""
    precision = precision + p * (1.0 - p)
    return delta + (y - p) / precision, precision

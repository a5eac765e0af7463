"""What a learner knows (pure numpy): per unit, the learner's mean calibrated p(correct) now over
the unit's items (estimate_units), a 90 % credible interval around it, and when that p will fall
below a review threshold; the same for single items (estimate), which the unit's builds on.

The point estimate is the recommendation's own (scoring.practice_probabilities: the live fit,
skill offsets, retry and learning terms), not a second model.

The interval is the delta method on the logit. Under the live fit's Laplace posterior
N(theta, H^-1) (fit.posterior_precision) a candidate's calibrated logit is
z = c * (x . theta) + terms that do not depend on theta, with x = [v_i, 1] and c = dz/draw (the
calibration's slope, plus the retry slope of the candidate's previous outcome there): linear in
theta, so z ~ N(z_hat, c^2 x' H^-1 x) exactly under that approximation. A model with skill terms
adds the skill offset's own Laplace variance c^2 / h_s (fit.skill_offsets, taken as independent of
theta). That is the learner's uncertainty. The item's is added: the model's error on an item,
which every learner shares, with variance item_sd^2 + item_slope_sd^2 * d^2, d the learner's logit
on the item minus the population's (the calibration's two sds, measured by the nightly job on dev
learners: jobs.training.calibration.item_error). Without it the interval covered the simulation's
true p 59 % of the time, the typical item's error being most of the miss, and it grew for learners
who had practised far beyond the population (docs/benchmarks-log.md, issue 26). p's interval is
the sigmoid of z's (monotone): deterministic, no draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from app.online import learning
from app.online.fit import posterior_precision, recency_weights, score, sigmoid, skill_offsets
from app.online.scoring import ServingModel, practice_probabilities, previous_outcomes

if TYPE_CHECKING:
    from app.model.artifact import LearningTerms

Z90 = 1.6448536269514722   # the standard normal's 95th percentile: a central 90 % interval
GRID = 64                  # forecast times per unit, spaced evenly in log time away
DUE_ROUNDS = 6             # at most this many exact evaluations of a unit's mean p settle its due time
DUE_SETTLED = 1e-5         # days (about a second): the due times moved less than this in a round (_mean_due)
REFINE = 24                # bisection steps between the last grid time above the threshold and the first below
#                            (a grid step is at most a few days: 24 halvings leave well under a second)


@dataclass(frozen=True)
class Estimates:
    p: np.ndarray          # (k,) calibrated p(correct) now
    low: np.ndarray        # (k,) the 90 % credible interval
    high: np.ndarray
    due_days: np.ndarray   # (k,) days from now at which p falls below the review threshold (<= 0: it has
    #                        already, at the latest since the skill's last attempt); NaN: not within the
    #                        learning terms' range, not practised, or no learning terms


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.log(p) - np.log1p(-p)


def typical_rows(model: ServingModel, rows_per_unit: list[np.ndarray]) -> np.ndarray:
    """Each unit's median-difficulty item: of its rows the model covers, the one whose logit for the
    population's average learner (the prior mean) is the median (the lower middle one of an even
    count; ties in the order given); -1 when the model covers none (scored as the average item)."""
    easiness = score(model.prior_mean, model.item_vectors, model.item_biases)
    out = np.full(len(rows_per_unit), -1, dtype=np.int64)
    for k, rows in enumerate(rows_per_unit):
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows >= 0]
        if len(rows):
            ordered = rows[np.argsort(easiness[rows], kind="stable")]
            out[k] = ordered[(len(ordered) - 1) // 2]
    return out


def _design(model: ServingModel, rows: np.ndarray) -> np.ndarray:
    """The live fit's design rows x = [v_i, 1] of `rows` (-1: the average item). (k, d + 1)"""
    X = np.ones((len(rows), model.item_vectors.shape[1] + 1))
    X[:, :-1] = model.item_vectors[rows]          # -1 reads the last row: overwritten below
    uncovered = rows < 0
    if uncovered.any():
        X[uncovered, :-1] = model.mean_vector
    return X


def _posterior(model: ServingModel, theta: np.ndarray, h_rows: np.ndarray, h_out: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """H, the live fit's posterior precision at `theta`, and the skill offsets' precisions (None
    without skill terms)."""
    V, b = model.item_vectors[h_rows], model.item_biases[h_rows]
    weights = recency_weights(len(h_rows), model.calibration.half_life)
    H = posterior_precision(theta, V, b, h_out, model.prior_precision, weights)
    terms = model.calibration.skill
    if terms is None or model.item_skills is None:
        return H, None
    _, precision = skill_offsets(score(theta, V, b), h_out, model.item_skills[h_rows], model.n_skills,
                                 terms.sd, terms.half_life, precision=True)
    return H, precision


def _slopes(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """c = dz/draw of each row: the calibration's slope plus the retry slope of the learner's
    previous outcome there. (k,)"""
    slope = np.full(len(rows), float(model.calibration.a))
    retry = model.calibration.retry
    if retry is not None:
        previous = previous_outcomes(h_rows, h_out, rows)
        slope += np.where(previous == 0, retry.slope_after_mistake,
                          np.where(previous == 1, retry.slope_after_success, 0.0))
    return slope


def _skills_of(model: ServingModel, rows: np.ndarray) -> np.ndarray:
    if model.item_skills is None:
        return np.full(len(rows), -1)
    return np.where(rows >= 0, model.item_skills[np.where(rows >= 0, rows, 0)], -1)


def logit_sd(model: ServingModel, theta: np.ndarray, h_rows: np.ndarray, h_out: np.ndarray,
             cand_rows: np.ndarray) -> np.ndarray:
    """The posterior standard deviation of each candidate's calibrated logit (the delta method
    above). (k,)"""
    h_rows = np.asarray(h_rows, dtype=np.int64)
    H, precision = _posterior(model, theta, h_rows, h_out)
    X = _design(model, cand_rows)
    var = np.einsum("ij,ji->i", X, np.linalg.solve(H, X.T))
    if precision is not None:
        skills = _skills_of(model, cand_rows)
        var = var + np.where(skills >= 0, 1.0 / precision[np.maximum(skills, 0)], 0.0)
    return np.abs(_slopes(model, h_rows, h_out, cand_rows)) * np.sqrt(np.maximum(var, 0.0))


def population_logits(model: ServingModel, cand_rows: np.ndarray) -> np.ndarray:
    """The Platt-calibrated logit of the population's average learner (the prior mean) on each
    candidate row (-1: the average item). (k,)"""
    every = model.__dict__.get("_population_raw")   # every item's, once per (cached) model and item count
    if every is None or len(every) != len(model.item_vectors):   # a hybrid model grows when it covers new items
        every = model.item_vectors @ model.prior_mean[:-1] + model.item_biases + model.prior_mean[-1]
        model.__dict__["_population_raw"] = every
    average = model.mean_vector @ model.prior_mean[:-1] + model.mean_bias + model.prior_mean[-1]
    raw = np.where(cand_rows >= 0, every[np.maximum(cand_rows, 0)], average)
    return model.calibration.a * raw + model.calibration.b


def item_error_sd(model: ServingModel, z: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
    """The sd of the model's error on each candidate item that every learner shares (the
    calibration's item_sd and item_slope_sd, measured by the nightly job on dev learners), for a
    learner whose calibrated logit there is `z`: it grows with their distance from the population's
    logit on the item. Zeros for a model stored without them. (k,)"""
    c = model.calibration
    if c.item_sd is None:
        return np.zeros(len(z))
    distance = z - population_logits(model, cand_rows)
    return np.sqrt(c.item_sd ** 2 + (c.item_slope_sd or 0.0) ** 2 * distance * distance)


def due_in_days(block: LearningTerms | None, z: np.ndarray, x_now: np.ndarray, review: np.ndarray) -> np.ndarray:
    """Days from now at which each candidate's calibrated logit `z` (now, with learning features
    `x_now`, (k, F)) falls below logit(review) as time away grows, the history unchanged; the search
    starts at the candidate's skill's last attempt (so a p already below the threshold then is due
    from that attempt, a negative number) and ends where both days-away features reach the
    calibration's clip. NaN: never below within that range, skill not practised, or no `block`."""
    out = np.full(len(z), np.nan)
    col = learning.FEATURES.index
    practised = x_now[:, col("skill_attempts")] > 0
    if block is None or not practised.any():
        return out
    hi = block.max
    base = z - learning.terms(block, x_now)
    threshold = logit(review)
    since_skill = np.expm1(x_now[:, col("skill_days_away")])
    since_any = np.expm1(x_now[:, col("days_away")])
    start = -since_skill
    end = np.maximum(np.expm1(hi[col("skill_days_away")]) - since_skill, np.expm1(hi[col("days_away")]) - since_any)
    steps = np.expm1(np.linspace(0.0, 1.0, GRID)[None, :] * np.log1p(np.maximum(end - start, 0.0))[:, None])
    days = start[:, None] + steps                                             # (k, GRID), from start to end
    z_grid = base[:, None] + learning.terms(block, learning.later(x_now, days))
    below = z_grid < threshold[:, None]
    found = below.any(axis=1) & practised
    first = np.argmax(below, axis=1)
    rows = np.arange(len(z))
    lo, up = days[rows, np.maximum(first - 1, 0)], days[rows, first]
    for _ in range(REFINE):   # the crossing between the last time above and the first below
        mid = 0.5 * (lo + up)
        under = base + learning.terms(block, learning.later(x_now, mid[:, None]))[:, 0] < threshold
        up, lo = np.where(under, mid, up), np.where(under, lo, mid)
    out[found] = np.where(first == 0, start, up)[found]
    return out


def estimate(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, cand_rows: np.ndarray,
             review: np.ndarray, h_times: np.ndarray | None = None, now: float | None = None,
             prior_mean: np.ndarray | None = None) -> Estimates:
    """p now, its 90 % interval and the due time of each candidate row (-1: the average item).

    h_rows, h_out, h_times : the learner's attempts on the model's items, oldest first (rows, 0/1,
    epoch seconds), as a recommendation fits them; now : epoch seconds; review : (k,) each
    candidate's review threshold; prior_mean : the learner's own prior mean, else the population's.
    """
    h_rows = np.asarray(h_rows, dtype=np.int64)
    cand_rows = np.asarray(cand_rows, dtype=np.int64)
    p, theta, _ = practice_probabilities(model, h_rows, h_out, cand_rows, model.calibration.half_life,
                                         None, prior_mean, h_times, now)
    z = logit(p)
    sd = np.hypot(logit_sd(model, theta, h_rows, h_out, cand_rows), item_error_sd(model, z, cand_rows))
    due = np.full(len(cand_rows), np.nan)
    block = model.calibration.learning
    if block is not None and h_times is not None and now is not None and len(h_rows):
        x_now = learning.features(h_rows, h_out, h_times, now, cand_rows, model.item_skills)
        due = due_in_days(block, z, x_now, np.asarray(review, dtype=np.float64))
    return Estimates(p, sigmoid(z - Z90 * sd), sigmoid(z + Z90 * sd), due)


def estimate_units(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, unit_rows: list[np.ndarray],
                   typical: np.ndarray, review: np.ndarray, h_times: np.ndarray | None = None,
                   now: float | None = None, prior_mean: np.ndarray | None = None) -> Estimates:
    """Per unit: p now, the learner's mean calibrated p over the unit's rows (its items; -1 an item
    the model does not cover, scored as the average item; an empty list is the average item), its
    90 % interval and due time.

    The mean P = mean_i p_i is what a next item drawn from the unit would give: the median item's p
    is more extreme than that (the sigmoid of a spread of logits), and drifted from the learners'
    next attempts the further they practised (docs/benchmarks-log.md, issue 26). Its interval is
    the delta method again: dP/dtheta = mean_i p_i (1 - p_i) c_i x_i, so Var P = g' H^-1 g, plus the
    skill offsets' (dP/d delta_s = the same mean over the unit's items of skill s) and the items' own
    errors (independent per item, each p_i (1 - p_i) / n times its item_error_sd); then on logit P,
    whose sd is sd(P) / (P (1 - P)). The due time follows logit P along the unit's typical item's
    forecast (the learning terms move every item of a skill alike but for an item's own attempts).
    typical : (K,) each unit's typical row (the forecast's features); review : (K,) thresholds.
    """
    h_rows = np.asarray(h_rows, dtype=np.int64)
    unit_rows = [np.asarray(r, dtype=np.int64) if len(r) else np.array([-1]) for r in unit_rows]
    sizes = np.array([len(r) for r in unit_rows])
    rows, inverse = np.unique(np.concatenate(unit_rows), return_inverse=True)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    p, theta, _ = practice_probabilities(model, h_rows, h_out, rows, model.calibration.half_life,
                                         None, prior_mean, h_times, now)
    info = p * (1.0 - p)
    P = np.add.reduceat(p[inverse], starts) / sizes
    H, precision = _posterior(model, theta, h_rows, h_out)
    gain = info * _slopes(model, h_rows, h_out, rows)                       # dp_i / draw_i
    unit_of = np.repeat(np.arange(len(unit_rows)), sizes)
    mean_of = sp.csr_matrix((np.repeat(1.0 / sizes, sizes), (unit_of, inverse)), shape=(len(unit_rows), len(rows)))
    G = mean_of @ (gain[:, None] * _design(model, rows))                     # (K, d + 1): each unit's dP/dtheta
    var = np.einsum("kj,jk->k", G, np.linalg.solve(H, G.T))
    if precision is not None:
        skills = _skills_of(model, rows)[inverse]
        has = skills >= 0
        per_skill = np.zeros((len(unit_rows), len(precision)))
        np.add.at(per_skill, (unit_of[has], skills[has]), gain[inverse][has])
        var = var + ((per_skill / sizes[:, None]) ** 2) @ (1.0 / precision)
    item_sd = item_error_sd(model, logit(p), rows)
    var = var + np.bincount(unit_of, (info * item_sd)[inverse] ** 2, len(unit_rows)) / sizes ** 2
    z = logit(P)
    sd = np.sqrt(np.maximum(var, 0.0)) / np.maximum(P * (1.0 - P), 1e-12)
    due = np.full(len(unit_rows), np.nan)
    block = model.calibration.learning
    if block is not None and h_times is not None and now is not None and len(h_rows):
        due = _mean_due(block, h_rows, h_out, h_times, now, model.item_skills, rows, p, inverse, starts, sizes,
                        np.asarray(typical, dtype=np.int64), z, np.asarray(review, dtype=np.float64))
    return Estimates(P, sigmoid(z - Z90 * sd), sigmoid(z + Z90 * sd), due)


def _mean_due(block: LearningTerms, h_rows, h_out, h_times, now, item_skills, rows, p, inverse, starts, sizes,
              typical, z, review, rounds: int = DUE_ROUNDS) -> np.ndarray:
    """Days until each unit's mean p falls below its review threshold. The search runs on the
    typical item's forecast moved to logit P (due_in_days: a grid and a bisection); then Newton steps
    on the exact mean (every item's own forecast, learning.later), with the slope of that moved
    curve for the derivative (the learning terms move every item of a skill alike but for an item's
    own attempts, so the slopes agree closely): at most `rounds`, until the times move less than
    DUE_SETTLED. A time at or before the skill's last attempt (due at once) is left as it is."""
    x_typical = learning.features(h_rows, h_out, h_times, now, typical, item_skills)
    due = due_in_days(block, z, x_typical, review)
    col = learning.FEATURES.index
    start = -np.expm1(x_typical[:, col("skill_days_away")])
    moving = np.isfinite(due) & (due > start)
    if not moving.any():
        return due
    x_rows = learning.features(h_rows, h_out, h_times, now, rows, item_skills)
    base = logit(p) - learning.terms(block, x_rows)
    threshold = logit(review)
    x_flat = x_rows[inverse]

    def exact(days: np.ndarray) -> np.ndarray:   # logit of each unit's mean p `days` from now
        later = learning.later(x_flat, np.repeat(days, sizes)[:, None])[:, 0]
        return logit(np.add.reduceat(sigmoid(base[inverse] + learning.terms(block, later)), starts) / sizes)

    def typical_curve(days: np.ndarray) -> np.ndarray:
        return learning.terms(block, learning.later(x_typical, days[:, None]))[:, 0]

    for _ in range(rounds):
        t = np.where(moving, due, 0.0)
        h = np.maximum(np.abs(t) * 1e-3, 1e-3)
        slope = (typical_curve(t + h) - typical_curve(t - h)) / (2.0 * h)   # logits per day (< 0 when forgetting)
        step = np.where(moving & (slope < -1e-9), (exact(t) - threshold) / np.where(slope < -1e-9, slope, -1.0), 0.0)
        due = np.where(moving, np.maximum(t - step, start), due)
        if np.max(np.abs(step)) < DUE_SETTLED:
            break
    return due

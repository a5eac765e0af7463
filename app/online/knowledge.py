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
from app.online.rows import Attempted, RowIndex, attempted
from app.online.scoring import CandidateRows, ServingModel, practice_probabilities, previous_outcomes

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


def _slopes(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, rows: np.ndarray,
            found: Attempted | None = None) -> np.ndarray:
    """c = dz/draw of each row: the calibration's slope plus the retry slope of the learner's
    previous outcome there; `found`: the rows the learner attempted, when known. (k,)"""
    slope = np.full(len(rows), float(model.calibration.a))
    retry = model.calibration.retry
    if retry is not None:
        previous = previous_outcomes(h_rows, h_out, rows, found)
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


def item_error_sd(model: ServingModel, z: np.ndarray, cand_rows: np.ndarray,
                  population: np.ndarray | None = None) -> np.ndarray:
    """The sd of the model's error on each candidate item that every learner shares (the
    calibration's item_sd and item_slope_sd, measured by the nightly job on dev learners), for a
    learner whose calibrated logit there is `z`: it grows with their distance from the population's
    logit on the item (`population`: population_logits of cand_rows, when known). Zeros for a model
    stored without them. (k,)"""
    c = model.calibration
    if c.item_sd is None:
        return np.zeros(len(z))
    distance = z - (population_logits(model, cand_rows) if population is None else population)
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
    forecast = learning.Forecast(block, x_now)
    z_grid = base[:, None] + forecast.terms(days)
    below = z_grid < threshold[:, None]
    found = below.any(axis=1) & practised
    first = np.argmax(below, axis=1)
    rows = np.arange(len(z))
    lo, up = days[rows, np.maximum(first - 1, 0)], days[rows, first]
    for _ in range(REFINE):   # the crossing between the last time above and the first below
        mid = 0.5 * (lo + up)
        under = base + forecast.terms(mid[:, None])[:, 0] < threshold
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


@dataclass(frozen=True, eq=False)
class UnitLayout:
    """What estimate_units needs of a list of units under one model that does not depend on the
    learner, made once (app.serving.knowledge.KnowledgePlan keeps it per model and unit list): the
    units' distinct rows and where each unit's items sit among them, the sparse matrices that
    average over a unit's items, and the unit's items grouped by skill (the learning terms move
    every item of a skill alike as time passes, and the skill offset is per skill). Building these
    on every request (np.unique, sparse matrices, row gathers over 8,000 items of a 20-skill unit)
    and evaluating every item's forecast through (k, F) feature rows were most of the endpoint's
    time (docs/benchmarks-log.md, issue 26's cost).

    Entries: each unit's rows, one unit after another (N in all); groups: the distinct (unit, skill)
    pairs of the entries (skill -1: none, or an item the model does not cover)."""
    typical: np.ndarray             # (K,) each unit's typical row (the due time's forecast)
    laid: CandidateRows             # the R distinct rows (-1 first when any), skills, RowIndex; no vectors
    n_items: int                    # the model's item count it was made at (a hybrid model grows)
    sizes: np.ndarray               # (K,) entries per unit
    starts: np.ndarray              # (K,) each unit's first entry
    unit_of: np.ndarray             # (N,) each entry's unit
    inverse: np.ndarray             # (N,) each entry's position among the R rows
    mean_of: sp.csr_matrix          # (K, R) 1/size at each of a unit's rows (summed over duplicates): P = mean_of @ p
    square_of: sp.csr_matrix        # (K, R) 1/size^2 likewise: sum over a unit's entries of v / size^2
    covered_of: sp.csr_matrix       # (K, n_items) mean_of's covered rows, on the model's rows
    uncovered: np.ndarray           # (K,) mean_of's weight of the uncovered row (-1; 0 when none)
    nonzero_row: np.ndarray         # covered_of's stored values: each one's position among the R rows
    group_of: np.ndarray            # (N,) each entry's group
    group_unit: np.ndarray          # (Q,) each group's unit
    group_skill: np.ndarray         # (Q,) its skill (-1 none)
    group_row: np.ndarray           # (Q,) one of its rows (its learning features but item_attempts)
    group_mean: sp.csr_matrix       # (Q, R) 1/size of the group's unit at each of its rows
    population: np.ndarray          # (R,) population_logits of the rows

    @classmethod
    def of(cls, model: ServingModel, unit_rows: list[np.ndarray], typical: np.ndarray) -> UnitLayout:
        """The layout of `unit_rows` (each unit's rows, -1 an item the model does not cover; an
        empty list is the average item) with their `typical` rows, under `model` as it is now."""
        unit_rows = [np.asarray(r, dtype=np.int64) if len(r) else np.array([-1]) for r in unit_rows]
        k = len(unit_rows)
        sizes = np.array([len(r) for r in unit_rows])
        entries = np.concatenate(unit_rows)
        rows, inverse = np.unique(entries, return_inverse=True)
        unit_of = np.repeat(np.arange(k), sizes)
        n_items = len(model.item_ids)
        skills = _skills_of(model, rows)
        laid = CandidateRows(rows, None, None, skills if model.item_skills is not None else None, RowIndex.of(rows))

        def per_unit(values: np.ndarray, units: np.ndarray, cols: np.ndarray, shape: tuple) -> sp.csr_matrix:
            m = sp.csr_matrix((values, (units, cols)), shape=shape)   # duplicates summed
            m.sum_duplicates()
            return m

        weight = np.repeat(1.0 / sizes, sizes)
        mean_of = per_unit(weight, unit_of, inverse, (k, len(rows)))
        covered = entries >= 0
        covered_of = per_unit(weight[covered], unit_of[covered], entries[covered], (k, n_items))
        uncovered = np.bincount(unit_of[~covered], weight[~covered], k)
        # each stored value of covered_of sits at a model row: its position among the R rows
        nonzero_row = np.searchsorted(rows, covered_of.indices)
        entry_skill = skills[inverse]
        span = int(skills.max()) + 2 if len(skills) else 1
        groups, first, group_of = np.unique(unit_of * span + entry_skill + 1, return_index=True, return_inverse=True)
        group_mean = per_unit(weight, group_of, inverse, (len(groups), len(rows)))
        return cls(np.asarray(typical, dtype=np.int64), laid, n_items, sizes, np.r_[0, np.cumsum(sizes)[:-1]],
                   unit_of, inverse, mean_of, per_unit(weight / np.repeat(sizes, sizes), unit_of, inverse,
                                                       (k, len(rows))),
                   covered_of, uncovered, nonzero_row, group_of, unit_of[first], entry_skill[first],
                   entries[first], group_mean, population_logits(model, rows))

    def gradient(self, model: ServingModel, gain: np.ndarray) -> np.ndarray:
        """G = each unit's mean over its entries of gain_i x_i, x_i = [v_i, 1] (_design): (K, d + 1).
        On the model's rows directly (no (R, d) gather of the rows' vectors)."""
        weighted = self.covered_of.copy()
        weighted.data = weighted.data * gain[self.nonzero_row]
        G = np.empty((len(self.sizes), model.item_vectors.shape[1] + 1))
        G[:, :-1] = weighted @ model.item_vectors[:self.n_items]
        G[:, -1] = self.mean_of @ gain
        if self.laid.rows[0] < 0:   # the average item: every uncovered entry has the same gain
            G[:, :-1] += (self.uncovered * gain[0])[:, None] * model.mean_vector
        return G


def estimate_units(model: ServingModel, h_rows: np.ndarray, h_out: np.ndarray, unit_rows: list[np.ndarray] | UnitLayout,
                   typical: np.ndarray | None, review: np.ndarray, h_times: np.ndarray | None = None,
                   now: float | None = None, prior_mean: np.ndarray | None = None,
                   theta: np.ndarray | None = None, item_offsets: np.ndarray | None = None) -> Estimates:
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
    unit_rows : each unit's rows, or their UnitLayout (made once per model and units: the fast
    way, the same answers); typical : (K,) each unit's typical row (the forecast's features; None
    with a layout, which holds them); review : (K,) thresholds; theta : the live fit of this history,
    when already made (practice_probabilities); item_offsets : the layout's rows' item difficulty
    learned since training (app.serving.item_learning), as a recommendation scores them.
    """
    h_rows = np.asarray(h_rows, dtype=np.int64)
    layout = unit_rows if isinstance(unit_rows, UnitLayout) else UnitLayout.of(model, unit_rows, typical)
    laid = layout.laid
    p, theta, _ = practice_probabilities(model, h_rows, h_out, laid, model.calibration.half_life,
                                         None, prior_mean, h_times, now, theta, item_offsets)
    info = p * (1.0 - p)
    P = layout.mean_of @ p
    H, precision = _posterior(model, theta, h_rows, h_out)
    found = attempted(laid.index, h_rows, h_out) if len(h_rows) else None
    gain = info * _slopes(model, h_rows, h_out, laid.rows, found)             # dp_i / draw_i
    G = layout.gradient(model, gain)                                          # (K, d + 1): each unit's dP/dtheta
    var = np.einsum("kj,jk->k", G, np.linalg.solve(H, G.T))
    k = len(layout.sizes)
    if precision is not None:                                                 # dP/d delta_s, per (unit, skill)
        has = layout.group_skill >= 0
        by_group = layout.group_mean @ gain
        var = var + np.bincount(layout.group_unit[has], by_group[has] ** 2 / precision[layout.group_skill[has]], k)
    z_items = logit(p)
    item_sd = item_error_sd(model, z_items, laid.rows, layout.population)
    var = var + layout.square_of @ (info * item_sd) ** 2
    z = logit(P)
    sd = np.sqrt(np.maximum(var, 0.0)) / np.maximum(P * (1.0 - P), 1e-12)
    due = np.full(k, np.nan)
    block = model.calibration.learning
    if block is not None and h_times is not None and now is not None and len(h_rows):
        due = _mean_due(block, h_rows, h_out, h_times, now, model.item_skills, layout, z_items, z,
                        np.asarray(review, dtype=np.float64))
    return Estimates(P, sigmoid(z - Z90 * sd), sigmoid(z + Z90 * sd), due)


def _mean_due(block: LearningTerms, h_rows, h_out, h_times, now, item_skills, layout: UnitLayout, z_items, z, review,
              rounds: int = DUE_ROUNDS) -> np.ndarray:
    """Days until each unit's mean p falls below its review threshold. The search runs on the
    typical item's forecast moved to logit P (due_in_days: a grid and a bisection); then Newton steps
    on the exact mean (every item's own forecast), with the slope of that moved curve for the
    derivative (the learning terms move every item of a skill alike but for an item's own attempts,
    so the slopes agree closely): at most `rounds`, until the times move less than DUE_SETTLED. A
    time at or before the skill's last attempt (due at once) is left as it is.

    An item's forecast logit t days on is its logit now plus what the two days-away terms gain in
    t (learning.Forecast): only those move, and they are the same for every item of a skill
    (features differ within a skill by item_attempts alone). So each round evaluates them once per
    (unit, skill) group, not per item through its (F,) feature row."""
    x_typical = learning.features(h_rows, h_out, h_times, now, layout.typical, item_skills)
    due = due_in_days(block, z, x_typical, review)
    col = learning.FEATURES.index
    start = -np.expm1(x_typical[:, col("skill_days_away")])
    moving = np.isfinite(due) & (due > start)
    if not moving.any():
        return due
    threshold = logit(review)
    # the entries of the units that move, and each one's logit now less its group's days-away terms
    units = np.flatnonzero(moving)
    sizes = layout.sizes[units]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    entries = np.flatnonzero(moving[layout.unit_of])
    groups = learning.Forecast(block, learning.features(h_rows, h_out, h_times, now, layout.group_row, item_skills))
    group = layout.group_of[entries]
    base = z_items[layout.inverse[entries]] - groups.now[group]
    typical = learning.Forecast(block, x_typical)

    def exact(days: np.ndarray) -> np.ndarray:   # logit of each moving unit's mean p `days` (K,) from now
        moved = groups.days_terms(days[layout.group_unit][:, None])[:, 0]
        return logit(np.add.reduceat(sigmoid(base + moved[group]), starts) / sizes)

    def typical_curve(days: np.ndarray) -> np.ndarray:
        return typical.days_terms(days[:, None])[:, 0]

    for _ in range(rounds):
        t = np.where(moving, due, 0.0)
        h = np.maximum(np.abs(t) * 1e-3, 1e-3)
        slope = (typical_curve(t + h) - typical_curve(t - h)) / (2.0 * h)   # logits per day (< 0 when forgetting)
        falling = moving & (slope < -1e-9)
        step = np.zeros(len(t))
        step[units] = (exact(t) - threshold[units]) / np.where(slope[units] < -1e-9, slope[units], -1.0)
        step = np.where(falling, step, 0.0)
        due = np.where(moving, np.maximum(t - step, start), due)
        if np.max(np.abs(step)) < DUE_SETTLED:
            break
    return due

"""Experiments judged by learning (pure numpy/scipy): per variant, how much its learners learned,
not only how often they were right, each figure with a 95 % interval by resampling learners.

The input is one row per attempt of the experiment's learners since their first answer in it
(`Attempts`, learner by learner, oldest first). The item side comes from a model frozen at the
experiment's start: `logit` is the item's calibrated logit for the population's average learner,
so p_item = sigmoid(logit) says how hard the item is, whoever answers it, and a retraining
mid-run does not move the yardstick.

The measures, each a ratio of sums over learners (so resampling learners resamples the ratio):
- learning: the growth of a learner's ability on a skill per attempt at it, in logits, beyond
  what the items' difficulty explains. On first attempts at items the learner had never seen,
  logit p = logit_item + theta_(learner, skill) + g * x, x the learner's earlier attempts at the
  skill since they joined (centred per learner and skill), one ability theta per learner and skill
  (a N(0, PRIOR_SD^2) prior: the learner's level on the skill does not count, only its movement)
  and g shared by the variant's learners, fitted by Newton's method on the penalised likelihood.
  Why this form: the likelihood stays valid when the items served depend on the earlier answers
  (an adaptive policy), where a slope of residuals in probability points is moved by the policy
  homing in on the learner, and more by an easy target (the logistic's curvature); and the
  opportunity counts the skill's own attempts, so a variant that practises one skill at a time is
  not credited with faster learning than one that interleaves them (measured in the closed-loop
  simulation: with a global opportunity the slope ordered targets 0.55 / 0.7 / 0.85 opposite to
  the truth's gains; per skill it recovers the truth's gain per attempt). The interval resamples
  learners around one Newton step from the fit (the learner's score and information on g, with
  their abilities profiled out: a ratio of per-learner sums).
- attempts_to_mastery: attempts spent on units per unit mastered (sum of attempts until mastery,
  or all of them for a unit not mastered, over units mastered: the rate estimator, so units still
  being practised count as time at risk rather than being dropped). A unit is mastered at the
  first attempt where the 90 % lower end of p on its typical item reaches the unit's threshold, as
  GET /v1/users/{id}/knowledge says; the learner's offset on the unit (in logits, over the frozen
  items' logits) is followed attempt by attempt by one Newton step of the logistic's Laplace
  posterior from a N(0, 1) prior (the online Laplace / Elo-like update: info += p(1 - p),
  theta += (y - p) / info, sd = 1 / sqrt(info)), all sequences advanced together.
- retention: on the first attempt at a unit after at least a day away, outcome - p_item, averaged.
- success_rate: the share of attempts right; calibration: observed - predicted on the attempts
  paired with a logged p (the per-learner sums come from the caller).
Intervals are percentile intervals of `draws` bootstrap resamples of the variant's learners
(seeded); a difference between variants resamples each variant's learners independently (a
learner is in one variant).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaincc

Z90 = 1.6448536269514722
PRIOR_SD = 1.0           # the learner's offset on a unit, in logits, before any attempt
SRM_ALPHA = 0.001        # a sample-ratio mismatch is flagged below this p-value
MIN_LEARNERS = 100       # fewer learners than this in a variant: the verdict waits
DRAWS = 1000


@dataclass(frozen=True)
class Attempts:
    """One row per attempt, grouped by learner (contiguous) and oldest first within a learner. (n,) each."""
    learner: np.ndarray      # int, 0..L-1
    unit: np.ndarray         # int, the item's unit (the skill), 0..U-1
    first: np.ndarray        # bool, the learner's first attempt at an item never seen before
    outcome: np.ndarray      # 0/1
    logit: np.ndarray        # the item's logit from the frozen model (NaN: the model does not know it)
    unit_logit: np.ndarray   # the logit of the unit's typical (median-difficulty) item
    threshold: np.ndarray    # the unit's mastery threshold (p on its typical item)
    opportunity: np.ndarray  # attempts of the learner before this one since they joined
    days_away: np.ndarray    # days since the learner's previous attempt at the unit (NaN: none)


@dataclass(frozen=True)
class Ratio:
    """Per-learner numerators and denominators of a ratio estimator (L,) each, plus a constant
    (`base`: a fitted value the ratio is a one-step correction of)."""
    num: np.ndarray
    den: np.ndarray
    base: float = 0.0

    def estimate(self) -> float | None:
        d = float(self.den.sum())
        return self.base + float(self.num.sum()) / d if d > 0 else None

    def draws(self, counts: np.ndarray) -> np.ndarray:
        """The ratio under each resample: counts (B, L) of how often each learner is drawn."""
        den = counts @ self.den
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, self.base + (counts @ self.num) / den, np.nan)


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None

    def as_json(self, digits: int = 6) -> dict:
        def r(v):
            return None if v is None else round(v, digits)
        return {"estimate": r(self.estimate), "low": r(self.low), "high": r(self.high)}

    def clear_of_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


def resample_counts(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n): how often each of n learners is drawn in each bootstrap resample of size n."""
    if n == 0:
        return np.zeros((draws, 0))
    picks = rng.integers(0, n, size=(draws, n)) + (np.arange(draws) * n)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.float64)


def percentile_interval(estimate: float | None, draws: np.ndarray) -> Interval:
    draws = draws[np.isfinite(draws)]
    if estimate is None or len(draws) == 0:
        return Interval(estimate, None, None)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Interval(estimate, float(low), float(high))


def _per_learner(learner: np.ndarray, values: np.ndarray, n_learners: int) -> np.ndarray:
    return np.bincount(learner, weights=values, minlength=n_learners)


def skill_practice(a: Attempts) -> tuple[np.ndarray, np.ndarray]:
    """Per attempt: its (learner, skill) sequence number and the learner's earlier attempts at the
    skill in the rows (all attempts count, repeats too; the rows are oldest first per learner)."""
    if len(a.learner) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    key = a.learner.astype(np.int64) * (int(a.unit.max()) + 1) + a.unit
    order = np.argsort(key, kind="stable")            # time order kept within each (learner, skill)
    starts = np.r_[True, key[order][1:] != key[order][:-1]]
    seq_sorted = np.cumsum(starts) - 1
    seq, earlier = np.empty(len(key), dtype=np.int64), np.empty(len(key))
    seq[order] = seq_sorted
    earlier[order] = np.arange(len(key)) - np.flatnonzero(starts)[seq_sorted]
    return seq, earlier


LEARNING_ITERATIONS = 50


def learning(a: Attempts, n_learners: int) -> Ratio:
    """The growth in logits per attempt at a skill, beyond the items' difficulty (module docstring):
    g of logit p = logit_item + theta_(learner, skill) + g x on first attempts at new items."""
    seq_all, earlier = skill_practice(a)
    use = a.first & np.isfinite(a.logit)
    who, seq, x = a.learner[use], seq_all[use], earlier[use]
    y, offset = a.outcome[use].astype(np.float64), a.logit[use]
    if len(y) == 0:
        return Ratio(np.zeros(n_learners), np.zeros(n_learners))
    seq = np.unique(seq, return_inverse=True)[1]
    n_seq = int(seq.max()) + 1
    n = np.bincount(seq, minlength=n_seq)
    x = x - (np.bincount(seq, x, n_seq) / n)[seq]
    seq_learner = np.zeros(n_seq, dtype=np.int64)
    seq_learner[seq] = who
    prior = 1.0 / PRIOR_SD ** 2

    def terms(theta: np.ndarray, g: float):
        """Per attempt p and p(1 - p); per sequence theta's score, information and cross-information with g."""
        p = expit(offset + theta[seq] + g * x)
        w = p * (1.0 - p)
        return (p, w, np.bincount(seq, y - p, n_seq) - prior * theta, np.bincount(seq, w, n_seq) + prior,
                np.bincount(seq, w * x, n_seq))

    theta, g = np.zeros(n_seq), 0.0
    for _ in range(LEARNING_ITERATIONS):   # Newton on (theta, g): theta's block is diagonal, g's is one number
        p, w, s_theta, i_theta, i_cross = terms(theta, g)
        s_g, i_g = float(np.dot(y - p, x)), float(np.dot(w, x * x))
        schur = i_g - float(np.sum(i_cross ** 2 / i_theta))
        if schur <= 1e-12:             # no attempt moves along the opportunity: no slope to fit
            return Ratio(np.zeros(n_learners), np.zeros(n_learners))
        step = (s_g - float(np.sum(i_cross * s_theta / i_theta))) / schur
        theta += (s_theta - i_cross * step) / i_theta
        g += step
        if abs(step) < 1e-10:
            break
    # one Newton step on g from the fit, per learner (abilities profiled out): resampling learners
    # resamples these sums; at the fit the scores add up to zero, so the estimate is g itself
    p, w, s_theta, i_theta, i_cross = terms(theta, g)
    score = _per_learner(who, (y - p) * x, n_learners) - _per_learner(seq_learner, i_cross * s_theta / i_theta,
                                                                        n_learners)
    info = _per_learner(who, w * x * x, n_learners) - _per_learner(seq_learner, i_cross ** 2 / i_theta, n_learners)
    return Ratio(score, info, g)


def mastery(a: Attempts, n_learners: int) -> Ratio:
    """Per learner: attempts spent on units until mastered (or all, when not) and units mastered."""
    use = np.isfinite(a.logit)
    who, unit = a.learner[use], a.unit[use]
    if len(who) == 0:
        return Ratio(np.zeros(n_learners), np.zeros(n_learners))
    # the attempts are learner by learner, oldest first: a stable sort on (learner, unit) keeps time order
    order = np.lexsort((unit, who))
    who, unit = who[order], unit[order]
    logit, y = a.logit[use][order], a.outcome[use][order].astype(np.float64)
    typical, threshold = a.unit_logit[use][order], a.threshold[use][order]
    starts = np.r_[True, (who[1:] != who[:-1]) | (unit[1:] != unit[:-1])]
    seq = np.cumsum(starts) - 1                               # the (learner, unit) sequence of each attempt
    k = np.arange(len(who)) - np.flatnonzero(starts)[seq]     # the attempt's place in its sequence
    n_seq = int(seq[-1]) + 1
    theta, info = np.zeros(n_seq), np.full(n_seq, 1.0 / PRIOR_SD ** 2)
    hit = np.full(n_seq, -1)
    by_place = np.argsort(k, kind="stable")
    bounds = np.searchsorted(k[by_place], np.arange(int(k.max()) + 2))
    for place in range(int(k.max()) + 1):   # step `place` of every sequence at once (one Newton step each)
        rows = by_place[bounds[place]:bounds[place + 1]]
        s = seq[rows]
        p = expit(logit[rows] + theta[s])
        info[s] += p * (1.0 - p)
        theta[s] += (y[rows] - p) / info[s]
        low = expit(typical[rows] + theta[s] - Z90 / np.sqrt(info[s]))
        new = (hit[s] < 0) & (low >= threshold[rows])
        hit[s[new]] = place
    length = np.bincount(seq, minlength=n_seq)
    mastered = hit >= 0
    spent = np.where(mastered, hit + 1, length).astype(np.float64)
    seq_learner = who[starts]
    return Ratio(_per_learner(seq_learner, spent, n_learners),
                 _per_learner(seq_learner, mastered.astype(np.float64), n_learners))


def retention(a: Attempts, n_learners: int) -> Ratio:
    """outcome - p_item on the first attempt at a unit after at least a day away."""
    use = (a.days_away >= 1.0) & np.isfinite(a.logit)
    who = a.learner[use]
    return Ratio(_per_learner(who, a.outcome[use] - expit(a.logit[use]), n_learners),
                 _per_learner(who, np.ones(len(who)), n_learners))


def success(a: Attempts, n_learners: int) -> Ratio:
    return Ratio(_per_learner(a.learner, a.outcome.astype(np.float64), n_learners),
                 _per_learner(a.learner, np.ones(len(a.learner)), n_learners))


MEASURES = ("learning", "attempts_to_mastery", "retention", "success_rate", "calibration")
# which way is better for each learning measure (the verdict reads `learning`)
BETTER = {"learning": 1, "attempts_to_mastery": -1, "retention": 1}


@dataclass(frozen=True)
class VariantResult:
    learners: int
    attempts: int
    measures: dict[str, Interval]
    draws: dict[str, np.ndarray]     # each measure's bootstrap draws, for the differences


def analyse_variant(a: Attempts, n_learners: int, calibration: Ratio | None = None, draws: int = DRAWS,
                    seed: int = 0) -> VariantResult:
    """Every measure of one variant with its 95 % interval; `calibration`: per-learner sums of
    (outcome - logged p) and of paired attempts, aligned with the learner indices of `a`."""
    ratios = {"learning": learning(a, n_learners), "attempts_to_mastery": mastery(a, n_learners),
              "retention": retention(a, n_learners), "success_rate": success(a, n_learners),
              "calibration": calibration if calibration is not None else Ratio(np.zeros(n_learners),
                                                                                  np.zeros(n_learners))}
    counts = resample_counts(n_learners, draws, np.random.default_rng(seed))
    drawn = {k: r.draws(counts) for k, r in ratios.items()}
    return VariantResult(n_learners, len(a.learner),
                         {k: percentile_interval(r.estimate(), drawn[k]) for k, r in ratios.items()}, drawn)


def difference(a: VariantResult, b: VariantResult, measure: str) -> Interval:
    """b - a on a measure, with the percentile interval of the independent resamples' differences."""
    ea, eb = a.measures[measure].estimate, b.measures[measure].estimate
    est = None if ea is None or eb is None else eb - ea
    return percentile_interval(est, b.draws[measure] - a.draws[measure])


def sample_ratio_mismatch(observed: np.ndarray, weights: np.ndarray) -> dict:
    """Pearson's chi-square of the learners per variant against the variants' weights: p-value and flag."""
    observed = np.asarray(observed, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    total = observed.sum()
    if len(observed) < 2 or total == 0:
        return {"chi2": None, "p_value": None, "flagged": False}
    expected = total * weights / weights.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    p = float(gammaincc((len(observed) - 1) / 2.0, chi2 / 2.0))   # the chi-square survival function
    return {"chi2": round(chi2, 4), "p_value": p, "flagged": p < SRM_ALPHA}


def verdict(names: list[str], results: list[VariantResult], srm: dict, min_learners: int = MIN_LEARNERS) -> str:
    """One plain sentence: which variant teaches more by the learning measure, or why the data cannot tell yet."""
    if srm.get("flagged"):
        return (f"the data cannot tell yet: the learners are not split as the weights say (sample-ratio "
                f"mismatch, p = {srm['p_value']:.2g}); fix the routing before reading any figure.")
    if len(results) < 2:
        return "the data cannot tell yet: an experiment needs at least two variants with learners."
    few = [n for n, r in zip(names, results) if r.learners < min_learners]
    if few:
        return (f"the data cannot tell yet: {', '.join(few)} {'has' if len(few) == 1 else 'have'} fewer than "
                f"{min_learners} learners.")
    known = [(n, r) for n, r in zip(names, results) if r.measures["learning"].estimate is not None]
    if len(known) < 2:
        return "the data cannot tell yet: too few first attempts at new items to measure learning."
    known.sort(key=lambda nr: -nr[1].measures["learning"].estimate)
    (best, top), rest = known[0], known[1:]
    beaten = [(n, difference(r, top, "learning")) for n, r in rest]
    clear = [(n, d) for n, d in beaten if d.clear_of_zero()]
    if not clear:
        return (f"the data cannot tell yet: {best} leads on learning but every difference's 95 % interval "
                f"covers zero ({', '.join(_points(n, d) for n, d in beaten)}).")
    sentence = f"variant {best} teaches more: " + ", ".join(_points(n, d) for n, d in clear)
    unclear = [n for n, d in beaten if not d.clear_of_zero()]
    if unclear:
        sentence += f"; it cannot yet be told apart from {', '.join(unclear)}"
    return sentence + "."


def _points(name: str, d: Interval) -> str:
    """A difference in learning, in logits of ability per 10 attempts at a skill."""
    return (f"{10 * d.estimate:+.3f} logits per 10 attempts at a skill over {name} "
            f"(95 % interval {10 * d.low:+.3f} to {10 * d.high:+.3f})")


def item_logits(model) -> np.ndarray:
    """Each item's calibrated logit for the population's average learner (the prior mean): how hard
    the item is, whoever answers it, under a practice model (app.online.scoring.ServingModel). (n,)"""
    raw = model.item_vectors @ model.prior_mean[:-1] + model.prior_mean[-1] + model.item_biases
    return model.calibration.a * raw + model.calibration.b

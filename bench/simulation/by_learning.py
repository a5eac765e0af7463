"""Issue 27's measurement: GET /v1/experiments/{name}/results set against the simulation's truth.

The endpoint judges an experiment's variants by how much their learners learned, estimated from
the answers alone; the simulation knows it. Here (pure numpy, no HTTP):
- true_gains: per variant, the true ability gained per learner over their measured sessions
  (truth.ability, the mean over skills, in logits), with a 95 % interval by resampling learners,
  and per attempt (the variant's total gain over its attempts);
- judged: the endpoint's figures per variant beside the true gain, the variants in order by each
  measure and by the true gain, Spearman's rank correlation of each measure with the true gain,
  whether the truly best variant's learning interval is clear of the truly worst's (and their
  difference's interval where the endpoint gives it: versus_first names the first variant), and
  the success-rate order beside it (expected to be the opposite);
- aa_check: an A/A experiment (two identical variants): whether the learning difference's interval
  covers zero, the endpoint's sample-ratio guardrail, and the same test after moving SKEW of the
  first variant's learners into the second (done on the service's exposure counts: the service's
  routing is a stable hash, so a skewed router cannot be asked for over HTTP), with the number of
  learners at which such a skew is flagged.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2

from app.online.experiment_stats import SRM_ALPHA, sample_ratio_mismatch
from bench.simulation.figures import Attempt, Gain

SKEW = 0.05            # the share of one variant's learners that the A/A check moves into the other
DRAWS = 1000           # bootstrap resamples of the true gain
# which way is better for each of the endpoint's measures (the true gain: higher)
BETTER = {"learning": 1, "attempts_to_mastery": -1, "retention": 1, "success_rate": 1}


def _r(x, digits: int = 6):
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def true_gains(attempts: list[Attempt], gains: list[Gain], draws: int = DRAWS, seed: int = 0) -> dict:
    """Per variant: learners, attempts, the true gain per learner {estimate, low, high} (the mean over
    its learners of their gain summed over the measured sessions; 95 % percentile interval of
    `draws` resamples of the learners) and per attempt (all its gain over all its attempts)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted({g.variant for g in gains if g.variant is not None}):
        per: dict[tuple[bool, int], float] = {}
        for g in gains:
            if g.variant == name:
                per[(g.returning, g.learner)] = per.get((g.returning, g.learner), 0.0) + g.gain
        values = np.array(list(per.values()))
        n_attempts = sum(1 for a in attempts if a.variant == name)
        means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        out[name] = {"learners": len(values), "attempts": n_attempts,
                     "per_learner": {"estimate": _r(values.mean()), "low": _r(low), "high": _r(high)},
                     "per_attempt": _r(values.sum() / n_attempts) if n_attempts else None}
    return out


def ranked(values: dict[str, float | None], better: int = 1) -> list[str]:
    """The names best first (better=1: the highest value first; -1: the lowest); those without a value left out."""
    known = [(n, v) for n, v in values.items() if v is not None and math.isfinite(v)]
    return [n for n, _ in sorted(known, key=lambda nv: -better * nv[1])]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y) -> float | None:
    """Spearman's rank correlation of two equally long sequences; None below two values or when one is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman needs sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def clear_of(a: dict, b: dict) -> bool | None:
    """Whether two intervals {estimate, low, high} do not overlap (None when either has no interval)."""
    if None in (a.get("low"), a.get("high"), b.get("low"), b.get("high")):
        return None
    return a["low"] > b["high"] or a["high"] < b["low"]


def covers_zero(interval: dict | None) -> bool | None:
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return None
    return interval["low"] <= 0.0 <= interval["high"]


def judged(answer: dict, truth: dict, targets: dict[str, float]) -> dict:
    """The endpoint's answer (GET .../results) beside the truth (true_gains) and the variants' targets."""
    rows = {v["variant"]: v for v in answer["variants"]}
    names = [n for n in targets if n in rows and n in truth]
    variants = {}
    for n in names:
        v = rows[n]
        variants[n] = {"target": targets[n], "learners": v["learners"], "attempts": v["attempts"],
                       "attempts_simulated": truth[n].get("attempts"),
                       "learning": v["learning"], "attempts_to_mastery": v["attempts_to_mastery"],
                       "retention": v["retention"], "success_rate": v["success_rate_interval"],
                       "true_gain_per_learner": truth[n]["per_learner"],
                       "true_gain_per_attempt": truth[n]["per_attempt"]}
    true = {n: variants[n]["true_gain_per_learner"]["estimate"] for n in names}
    order = {"true_gain": ranked(true)}
    agreement = {}
    for measure, better in BETTER.items():
        values = {n: variants[n][measure]["estimate"] for n in names}
        order[measure] = ranked(values, better)
        both = [n for n in names if values[n] is not None and true[n] is not None]
        rho = spearman([better * values[n] for n in both], [true[n] for n in both])
        agreement[measure] = None if rho is None else round(rho, 4)
    best, worst = (order["true_gain"][0], order["true_gain"][-1]) if order["true_gain"] else (None, None)
    first = names[0] if names else None
    difference = None   # best - worst, when the endpoint gives it (versus_first: each variant minus the first)
    if best is not None and best != worst and first in (best, worst):
        other = worst if first == best else best
        d = (rows[other].get("versus_first") or {}).get("learning")
        if d and d.get("estimate") is not None:
            sign = 1 if first == worst else -1
            lo, hi = sign * d["low"], sign * d["high"]
            difference = {"estimate": sign * d["estimate"], "low": min(lo, hi), "high": max(lo, hi)}
    return {"experiment": answer["experiment"], "version": answer["version"],
            "true_gain": "true ability (truth.ability: the mean over skills, logits) gained per learner over "
                         "their measured sessions, 95 % interval by resampling learners; per attempt: the "
                         "variant's total gain over its attempts",
            "variants": variants, "order": order, "spearman_with_true_gain": agreement,
            "learning_orders_as_true_gain": order["learning"] == order["true_gain"],
            "success_rate_opposite_to_true_gain": order["success_rate"] == order["true_gain"][::-1],
            "best_versus_worst": {"best": best, "worst": worst,
                                  "learning_intervals_clear": clear_of(variants[best]["learning"],
                                                                       variants[worst]["learning"])
                                  if best is not None and best != worst else None,
                                  "learning_difference": difference,
                                  "difference_clear_of_zero": None if difference is None
                                  else not covers_zero(difference)},
            "guardrails": answer["guardrails"], "verdict": answer["verdict"]}


def skewed(counts, share: float = SKEW, whole: bool = True) -> np.ndarray:
    """Learners per variant after `share` of the first variant's learners landed in the second
    (whole: a whole number of them moved; else shares, moved exactly)."""
    counts = np.asarray(counts, dtype=np.float64).copy()
    moved = round(share * counts[0]) if whole else share * counts[0]
    counts[0] -= moved
    counts[1] += moved
    return counts


def learners_to_flag(shares, weights, alpha: float = SRM_ALPHA) -> int:
    """The fewest learners at which exactly these shares of the learners per variant give a
    sample-ratio test p below alpha (Pearson's chi-square grows with the count at fixed shares)."""
    shares, weights = np.asarray(shares, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    shares, weights = shares / shares.sum(), weights / weights.sum()
    per_learner = float(((shares - weights) ** 2 / weights).sum())
    if per_learner == 0:
        raise ValueError("the shares are the weights: no number of learners makes the test fire")
    return math.floor(chi2.isf(alpha, len(shares) - 1) / per_learner) + 1


def aa_check(answer: dict, share: float = SKEW) -> dict:
    """An A/A experiment's answer: the learning difference (second minus first) and whether its
    interval covers zero; the service's sample-ratio test; the same test after a skew of `share`."""
    first, second = answer["variants"][0], answer["variants"][1]
    difference = (second.get("versus_first") or {}).get("learning")
    counts = [v["learners"] for v in answer["variants"]]
    weights = [v["weight"] for v in answer["variants"]]
    moved = skewed(counts, share)
    srm = sample_ratio_mismatch(moved, np.array(weights))
    return {"experiment": answer["experiment"], "variants": [first["variant"], second["variant"]],
            "learners": counts, "learning": [first["learning"], second["learning"]],
            "learning_difference": difference, "difference_covers_zero": covers_zero(difference),
            "sample_ratio_mismatch": answer["guardrails"]["sample_ratio_mismatch"],
            "skewed": {"how": f"{share:.0%} of {first['variant']}'s learners moved into {second['variant']} "
                              "on the service's exposure counts (the statistics level: routing over HTTP "
                              "is a stable hash and cannot be skewed)",
                       "learners": [int(c) for c in moved], "p_value": srm["p_value"], "flagged": srm["flagged"],
                       "learners_to_flag": learners_to_flag(skewed(weights, share, whole=False), weights)},
            "verdict": answer["verdict"]}


def table(judgement: dict) -> str:
    """The variants as a markdown table: the endpoint's measures, the true gain, the orders."""
    def f(x, digits=4):
        return "-" if x is None else f"{x:.{digits}f}"

    def iv(m, digits=4):
        return f"{f(m['estimate'], digits)} [{f(m['low'], digits)}, {f(m['high'], digits)}]"
    rows = ["| variant | target | learners | learning / attempt [95 %] | attempts to mastery | retention "
            "| success rate | true gain / learner [95 %] | true gain / attempt |", "|---" * 9 + "|"]
    for n, v in judgement["variants"].items():
        rows.append(f"| {n} | {v['target']} | {v['learners']} | {iv(v['learning'], 5)} | "
                    f"{iv(v['attempts_to_mastery'], 1)} | {iv(v['retention'], 3)} | {iv(v['success_rate'], 3)} | "
                    f"{iv(v['true_gain_per_learner'], 3)} | {f(v['true_gain_per_attempt'], 5)} |")
    o = judgement["order"]
    rows.append(f"\norder by learning {' > '.join(o['learning'])}; by true gain {' > '.join(o['true_gain'])}; "
                f"by success rate {' > '.join(o['success_rate'])}")
    return "\n".join(rows)

"""Issue 26's measurement: what the service says a learner knows, set against the simulation's truth
(pure numpy; the learners are driven over HTTP by bench.simulate_knowledge).

- agreement: per (learner, skill), the knowledge endpoint's `p`, its 90 % interval [low, high] and
  `mastered` beside the true p it estimates (the learner's mean p over the skill's items):
  Spearman's rho of p with the true p, the share of intervals covering the truth (and on which side
  they miss), and of the skills reported mastered the share truly at the threshold;
- censored / ratio_interval: attempts until every skill is truly mastered, a learner who never gets
  there within the cap counted at the cap (a lower bound on their attempts), and the ratio of the
  mean attempts of two policies played by the same learners, with a 95 % interval by resampling
  learners (both policies' values of a learner resampled together);
- difference_interval: the mean of paired differences (review minus target) with a 95 % interval
  by resampling learners.
"""
from __future__ import annotations

import math

import numpy as np

from bench.simulation.by_learning import spearman
from bench.simulation.truth import Catalogue, Learners, probabilities

DRAWS = 2000       # bootstrap resamples of the learners
Z90 = 1.6448536269514722   # the standard normal's 95th percentile: the endpoint's intervals are central 90 %
TARGETS = {"spearman": 0.8, "coverage": (0.85, 0.95), "mastered_precision": 0.9}


def _r(x, digits: int = 4):
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def true_typical_p(catalogue: Catalogue, learners: Learners, u: int, typical: np.ndarray) -> np.ndarray:
    """(skills,) learner u's true p(correct) now on each skill's typical item (`typical`: catalogue indices)."""
    return probabilities(catalogue, learners, u, typical)


def true_unit_p(catalogue: Catalogue, learners: Learners, u: int, unit_items: list[np.ndarray]) -> np.ndarray:
    """(units,) learner u's true mean p(correct) now over each unit's items (what the knowledge
    endpoint's p estimates: the share of the unit's questions they would answer right)."""
    every = probabilities(catalogue, learners, u)
    return np.array([every[np.asarray(items)].mean() for items in unit_items])


def truly_mastered(true_p: np.ndarray, threshold: float) -> bool:
    """Every skill's true p (true_unit_p) at or above the threshold."""
    return bool(np.all(np.asarray(true_p) >= threshold))


def coverage(true_p, low, high) -> dict:
    """The share of intervals [low, high] holding the true p, and the shares missing below (the truth
    under low) and above (over high)."""
    t, lo, hi = (np.asarray(x, dtype=np.float64) for x in (true_p, low, high))
    if not (len(t) == len(lo) == len(hi)):
        raise ValueError(f"coverage needs sequences of one length, got {len(t)}, {len(lo)}, {len(hi)}")
    if not len(t):
        return {"covered": None, "truth_below": None, "truth_above": None}
    below, above = t < lo, t > hi
    return {"covered": float(np.mean(~below & ~above)), "truth_below": float(np.mean(below)),
            "truth_above": float(np.mean(above))}


def mastered_precision(mastered, true_p, threshold: float) -> dict:
    """Of the skills reported mastered, how many and the share whose true p is at or above the threshold;
    and of the skills truly at the threshold, the share reported mastered (recall)."""
    m = np.asarray(mastered, dtype=bool)
    truly = np.asarray(true_p, dtype=np.float64) >= threshold
    return {"reported": int(m.sum()), "truly": int(truly.sum()), "reported_and_truly": int((m & truly).sum()),
            "precision": float(truly[m].mean()) if m.any() else None,
            "recall": float(m[truly].mean()) if truly.any() else None}


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0 - 1e-9)
    return np.log(p) - np.log1p(-p)


def interval_scale(p, low, high, true_p) -> dict:
    """How the intervals miss, on the logit scale where they are symmetric (app.online.knowledge:
    logit(p) +- Z90 sd): z = (logit(true p) - logit(p)) / sd per answer; their mean (the bias in
    sds), their sd (1 when the sds are right) and `widen`, the factor by which every interval would
    have to grow to cover 90 % of the truths (the 90th percentile of |z| over Z90), with the median
    sd and the root mean square error of the logit itself."""
    center, error = logit(p), logit(true_p) - logit(p)
    sd = (logit(high) - logit(low)) / (2.0 * Z90)
    z = error / np.maximum(sd, 1e-12)
    return {"z_mean": _r(float(z.mean())), "z_sd": _r(float(z.std())),
            "widen": _r(float(np.percentile(np.abs(z), 90)) / Z90), "median_logit_sd": _r(float(np.median(sd))),
            "logit_rmse": _r(float(np.sqrt(np.mean(error ** 2)))), "logit_bias": _r(float(error.mean())),
            "center_mean": _r(float(center.mean()))}


def agreement(p, low, high, mastered, true_p, threshold: float) -> dict:
    """The endpoint's answers (one per learner and skill) beside the truth: the figures of the module's
    docstring, with the mean error, the mean interval width and whether each target is met."""
    p, low, high, true_p = (np.asarray(x, dtype=np.float64) for x in (p, low, high, true_p))
    if not len(p):
        return {"pairs": 0}
    rho = spearman(p, true_p)
    cov = coverage(true_p, low, high)
    prec = mastered_precision(mastered, true_p, threshold)
    lo_ok, hi_ok = TARGETS["coverage"]
    return {"pairs": len(p), "spearman": _r(rho), "coverage": {k: _r(v) for k, v in cov.items()},
            "mastered": {**prec, "precision": _r(prec["precision"]), "recall": _r(prec["recall"])},
            "threshold": threshold, "bias": _r(float(np.mean(p - true_p))),
            "mae": _r(float(np.mean(np.abs(p - true_p)))), "mean_width": _r(float(np.mean(high - low))),
            "mean_p": _r(float(p.mean())), "mean_true_p": _r(float(true_p.mean())),
            "logit_scale": interval_scale(p, low, high, true_p),
            "met": {"spearman": rho is not None and rho >= TARGETS["spearman"],
                    "coverage": cov["covered"] is not None and lo_ok <= cov["covered"] <= hi_ok,
                    "mastered_precision": None if prec["precision"] is None
                    else prec["precision"] >= TARGETS["mastered_precision"]}}


def censored(attempts, cap: int) -> tuple[np.ndarray, int]:
    """Attempts until mastery per learner, None for one who did not get there within `cap` attempts:
    those counted at the cap (a lower bound: the figures are restricted means). Returns the values and
    how many were censored."""
    values = np.array([cap if a is None else a for a in attempts], dtype=np.float64)
    if np.any(values > cap) or np.any(values < 0):
        raise ValueError(f"attempts must lie between 0 and the cap {cap}")
    return values, sum(a is None for a in attempts)


def _resampled(n: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def ratio_interval(a, b, draws: int = DRAWS, seed: int = 0) -> dict:
    """mean(a) / mean(b) of paired values (learner k's a[k] and b[k]), with a 95 % percentile interval
    of `draws` resamples of the learners."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b) or not len(a):
        raise ValueError(f"ratio_interval needs two non-empty sequences of one length, got {len(a)} and {len(b)}")
    if b.sum() <= 0:
        return {"estimate": None, "low": None, "high": None}
    idx = _resampled(len(a), draws, seed)
    den = b[idx].sum(axis=1)
    ratios = np.where(den > 0, a[idx].sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return {"estimate": _r(a.sum() / b.sum()), "low": _r(low), "high": _r(high)}


def difference_interval(a, b, draws: int = DRAWS, seed: int = 0) -> dict:
    """mean(a - b) of paired values, with a 95 % percentile interval of `draws` resamples of the learners."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not len(d):
        return {"estimate": None, "low": None, "high": None}
    means = d[_resampled(len(d), draws, seed)].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"estimate": _r(d.mean(), 5), "low": _r(low, 5), "high": _r(high, 5)}


def before_after(p: np.ndarray) -> dict:
    """(learners, 2) true p right after the sitting and a week later: their means."""
    p = np.asarray(p, dtype=np.float64)
    return {"right_after": _r(p[:, 0].mean()), "after_week": _r(p[:, 1].mean())}


def attempts_summary(values: np.ndarray, n_censored: int, cap: int) -> dict:
    return {"learners": len(values), "mean": _r(values.mean(), 1) if len(values) else None,
            "median": _r(float(np.median(values)), 1) if len(values) else None,
            "reached": len(values) - n_censored, "censored_at_cap": n_censored, "cap": cap}


def table(report: dict) -> str:
    """The figures as a markdown table: figure | measured | target."""
    def f(x, digits=3):
        return "-" if x is None else f"{x:.{digits}f}"

    def iv(m, digits=3):
        return f"{f(m['estimate'], digits)} [{f(m['low'], digits)}, {f(m['high'], digits)}]"
    rows = ["| figure | measured | target |", "|---|---|---|"]
    for key, label in (("after_practice", "after practice"), ("after_week_away", "a week later")):
        a = report.get(key) or {}
        if not a.get("pairs"):
            continue
        rows += [f"| {label}: Spearman p vs true p ({a['pairs']} learner-skills) | {f(a['spearman'])} | >= 0.8 |",
                 f"| {label}: 90 % interval covers the true p (below / above) | {f(a['coverage']['covered'])} "
                 f"({f(a['coverage']['truth_below'])} / {f(a['coverage']['truth_above'])}) | 0.85-0.95 |",
                 f"| {label}: reported mastered truly >= {a['threshold']} ({a['mastered']['reported']} reported, "
                 f"{a['mastered']['truly']} truly) | {f(a['mastered']['precision'])} | >= 0.9 |",
                 f"| {label}: p - true p (bias / MAE), interval width | {f(a['bias'])} / {f(a['mae'])}, "
                 f"{f(a['mean_width'])} | - |",
                 f"| {label}: intervals would need x{f(a['logit_scale']['widen'], 2)} to cover 90 % (z mean "
                 f"{f(a['logit_scale']['z_mean'], 2)}, z sd {f(a['logit_scale']['z_sd'], 2)}) | - | x1 |"]
    m = report.get("mastery_vs_target")
    if m:
        rows.append(f"| attempts to truly master every skill, mastery / target (cap {m['cap']}; censored "
                    f"{m['mastery']['censored_at_cap']} / {m['target']['censored_at_cap']} of {m['learners']}) | "
                    f"{iv(m['ratio'])} (means {f(m['mastery']['mean'], 1)} / {f(m['target']['mean'], 1)}) | < 1 |")
        if "skills_truly_mastered_at_stop" in m["mastery"]:
            rows.append(f"| skills truly mastered when stopped, mastery / target (of the unit's; served nothing: "
                        f"{m['mastery']['stopped_served_nothing']} / {m['target']['stopped_served_nothing']}) | "
                        f"{f(m['mastery']['skills_truly_mastered_at_stop'], 2)} / "
                        f"{f(m['target']['skills_truly_mastered_at_stop'], 2)} | - |")
        if (m["mastery"].get("knowledge_at_stop") or {}).get("pairs"):
            a, b = m["mastery"]["knowledge_at_stop"], m["target"]["knowledge_at_stop"]
            rows.append(f"| when stopped: of skills reported mastered, truly >= {a['threshold']}, mastery / target "
                        f"({a['mastered']['reported']} / {b['mastered']['reported']} reported) | "
                        f"{f(a['mastered']['precision'])} / {f(b['mastered']['precision'])} | >= 0.9 |")
    r = report.get("review")
    if r:
        rows.append(f"| true p after a further week, review - target ({r['learners']} learners, "
                    f"{r['attempts']} attempts each way) | {iv(r['difference'], 4)} "
                    f"(review {f(r['review']['after_week'])}, target {f(r['target']['after_week'])}) | > 0 |")
    return "\n".join(rows)

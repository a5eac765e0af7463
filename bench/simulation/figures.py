"""The figures of the simulation report, from the attempts served and the learning gains.

gap        mean |true p - target| of the items served (0 is perfect targeting)
success    the realised success rate (outcomes drawn from the truth)
prediction the service's predicted p minus the true p: MAE and bias (> 0: over-predicts)
gain       true ability at the end of a session minus at its start (logits)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

BAND_EDGES = (5, 10, 20, 40)  # attempt-number bands 1-5, 6-10, 11-20, 21-40, then doubling
WARM_UP = 5                   # a new learner's gap is also reported after their first 5 attempts


class Attempt(NamedTuple):
    learner: int          # index among the learners of its kind
    returning: bool       # has a history from earlier sessions (the model was trained on them)
    index: int            # 1-based attempt number of this learner within the measured run
    target: float         # the target it was served for (an A/B variant's own target)
    p_true: float
    p_pred: float         # the service's p; nan for the baselines
    outcome: int
    variant: str | None = None


class Gain(NamedTuple):
    learner: int
    returning: bool
    session: int
    gain: float
    variant: str | None = None


def bands(length: int) -> list[tuple[int, int]]:
    """Attempt-number bands covering 1..length: (1, 5), (6, 10), (11, 20), (21, 40), (41, 80), ..."""
    edges = list(BAND_EDGES)
    while edges[-1] < length:
        edges.append(edges[-1] * 2)
    out, lo = [], 1
    for hi in edges:
        if lo > length:
            break
        out.append((lo, hi))
        lo = hi + 1
    return out


def _r(x: float, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _mean(values) -> float | None:
    values = np.asarray(list(values), dtype=np.float64)
    return _r(values.mean()) if len(values) else None


def _split(attempts: list[Attempt]) -> dict[str, list[Attempt]]:
    return {"all": attempts, "new": [a for a in attempts if not a.returning],
            "returning": [a for a in attempts if a.returning]}


def gaps(attempts: list[Attempt], target: float | None = None) -> dict:
    """Mean |true p - target|: all, new, new after their first WARM_UP attempts, returning.
    target : None to use each attempt's own target."""
    def gap(rows):
        return _mean(abs(a.p_true - (a.target if target is None else target)) for a in rows)
    parts = _split(attempts)
    return {"all": gap(parts["all"]), "new": gap(parts["new"]),
            f"new_after_{WARM_UP}": gap(a for a in parts["new"] if a.index > WARM_UP),
            "returning": gap(parts["returning"])}


def prediction(attempts: list[Attempt]) -> dict:
    """Predicted minus true p, per learner kind: mean absolute error, bias, count."""
    out = {}
    for name, rows in _split(attempts).items():
        diff = np.array([a.p_pred - a.p_true for a in rows if math.isfinite(a.p_pred)])
        out[name] = {"mae": _mean(np.abs(diff)), "bias": _mean(diff), "n": len(diff)}
    return out


def error_by_attempt(attempts: list[Attempt], length: int) -> dict:
    """Prediction MAE by attempt-number band, new and returning learners: how fast it falls."""
    out = {}
    for name in ("new", "returning"):
        rows = _split(attempts)[name]
        out[name] = {f"{lo}-{hi}": _mean(abs(a.p_pred - a.p_true) for a in rows
                                         if lo <= a.index <= hi and math.isfinite(a.p_pred))
                     for lo, hi in bands(length)}
    return out


def success(attempts: list[Attempt]) -> dict:
    return {name: _mean(a.outcome for a in rows) for name, rows in _split(attempts).items()}


def learning_gain(gains: list[Gain]) -> dict:
    return {"all": _mean(g.gain for g in gains), "new": _mean(g.gain for g in gains if not g.returning),
            "returning": _mean(g.gain for g in gains if g.returning)}


def policy_figures(attempts: list[Attempt], gains: list[Gain], length: int, target: float | None = None,
                   predicts: bool = False) -> dict:
    """Every figure of one policy at one target (`length`: attempts per learner in the run)."""
    out = {"attempts": len(attempts), "learners": len({(a.returning, a.learner) for a in attempts}),
           "gap": gaps(attempts, target), "success_rate": success(attempts),
           "mean_true_p": _mean(a.p_true for a in attempts), "learning_gain": learning_gain(gains)}
    if predicts:
        out["mean_predicted_p"] = _mean(a.p_pred for a in attempts if math.isfinite(a.p_pred))
        out["prediction"] = prediction(attempts)
        out["error_by_attempt"] = error_by_attempt(attempts, length)
    return out


def variant_figures(attempts: list[Attempt], gains: list[Gain]) -> dict:
    """Per A/B variant: its target, learners, attempts, realised success rate, gap, gain."""
    out = {}
    for name in sorted({a.variant for a in attempts if a.variant is not None}):
        rows = [a for a in attempts if a.variant == name]
        mine = [g for g in gains if g.variant == name]
        out[name] = {"target": rows[0].target, "learners": len({(a.returning, a.learner) for a in rows}),
                     "attempts": len(rows), "success_rate": success(rows)["all"],
                     "mean_true_p": _mean(a.p_true for a in rows), "mean_predicted_p":
                     _mean(a.p_pred for a in rows if math.isfinite(a.p_pred)),
                     "gap": gaps(rows)["all"], "learning_gain": learning_gain(mine)["all"]}
    return out

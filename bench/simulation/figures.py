"""The figures of the simulation report, from the attempts served and the learning gains.

gap        mean |true p - target| of the items served (0 is perfect targeting)
success    the realised success rate (outcomes drawn from the truth)
prediction a policy's predicted p minus the true p: MAE and bias (> 0: over-predicts)
gain       true ability at the end of a session minus at its start (logits)
Slices: new learners (no history), new after their first WARM_UP attempts, returning learners
(from their first request), and returning learners back after WEEK_AWAY days or more.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

BAND_EDGES = (5, 10, 20, 40)  # attempt-number bands 1-5, 6-10, 11-20, 21-40, then doubling
WARM_UP = 5                   # a new learner's gap is also reported after their first 5 attempts
WEEK_AWAY = 7.0               # days: "after a week away"


class Attempt(NamedTuple):
    learner: int          # index among the learners of its kind
    returning: bool       # has a history from earlier sessions (the model was trained on them)
    index: int            # 1-based attempt number of this learner within the measured run
    target: float         # the target it was served for (an A/B variant's own target)
    p_true: float
    p_pred: float         # the service's p; nan for the baselines
    outcome: int
    variant: str | None = None
    away: float = math.nan  # days since the learner's previous session (nan: none before)


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


def _slices(attempts: list[Attempt]) -> dict[str, list[Attempt]]:
    """_split and the two slices the targets name: new after WARM_UP, returning after a week away."""
    parts = _split(attempts)
    parts[f"new_after_{WARM_UP}"] = [a for a in parts["new"] if a.index > WARM_UP]
    parts["returning_week_away"] = [a for a in parts["returning"] if a.away >= WEEK_AWAY]
    return parts


def gaps(attempts: list[Attempt], target: float | None = None) -> dict:
    """Mean |true p - target|: all, new, new after their first WARM_UP attempts, returning,
    returning after a week away. target : None to use each attempt's own target."""
    return {name: _mean(abs(a.p_true - (a.target if target is None else target)) for a in rows)
            for name, rows in _slices(attempts).items()}


def prediction(attempts: list[Attempt]) -> dict:
    """Predicted minus true p, per slice: mean absolute error, bias, count."""
    out = {}
    for name, rows in _slices(attempts).items():
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
           "returning_week_away_learners": len({a.learner for a in attempts if a.returning and a.away >= WEEK_AWAY}),
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


def versus(service: dict, ceiling: dict) -> dict:
    """The service against the ceiling: gap minus the ceiling's gap and prediction bias minus the
    ceiling's bias, per slice (policy_figures of both, the ceiling with predicts=True)."""
    def minus(x, y):
        return None if x is None or y is None else _r(x - y)
    return {"gap": {k: minus(v, ceiling["gap"][k]) for k, v in service["gap"].items()},
            "bias": {k: minus(v["bias"], ceiling["prediction"][k]["bias"])
                     for k, v in service["prediction"].items()}}


def table(results: dict, ab: dict | None) -> str:
    """The headline figures as a markdown table: per target every policy, then the service minus
    the ceiling (gaps and prediction biases; "-" where a slice has no attempts)."""
    rows = [f"| target | policy | gap all | gap new after {WARM_UP} | gap returning | gap returning ≥ 7 d away "
            f"| success | bias new after {WARM_UP} / returning / ≥ 7 d away | MAE new / returning | gain / session |",
            "|---|---|---|---|---|---|---|---|---|---|"]

    def f(x):
        return "-" if x is None else f"{x:.3f}"

    def signed(x):
        return "-" if x is None else f"{x:+.3f}"
    slices = ["all", f"new_after_{WARM_UP}", "returning", "returning_week_away"]
    for target, policies in results.items():
        for name, fig in policies.items():
            if name == "service vs ceiling":
                continue
            pred = fig.get("prediction")
            bias = " / ".join(signed(pred[k]["bias"]) for k in slices[1:]) if pred else "-"
            mae = f"{f(pred['new']['mae'])} / {f(pred['returning']['mae'])}" if pred else "-"
            gap = " | ".join(f(fig["gap"][k]) for k in slices)
            rows.append(f"| {target} | {name} | {gap} | {f(fig['success_rate']['all'])} | {bias} | {mae} | "
                        f"{f(fig['learning_gain']['all'])} |")
        vs = policies.get("service vs ceiling")
        if vs:
            gap = " | ".join(signed(vs["gap"][k]) for k in slices)
            bias = " / ".join(signed(vs["bias"][k]) for k in slices[1:])
            rows.append(f"| {target} | service − ceiling | {gap} | - | {bias} | - | - |")
    if ab:
        for name, v in ab["variants"].items():
            rows.append(f"| {v['target']} | A/B variant {name} ({v['learners']} learners) | {f(v['gap'])} | - | - | - "
                        f"| {f(v['success_rate'])} | - | - | {f(v['learning_gain'])} |")
    return "\n".join(rows)

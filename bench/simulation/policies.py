"""The baseline policies and a session run offline with the same learner dynamics as over HTTP.

Both baselines obey the rules the service's `target` strategy obeys: never an item the learner
has solved, never one answered wrongly earlier in the same sitting (the service's 30-minute
cool-down covers a whole simulated sitting); when nothing is left, any item.
  random : uniform over those items (what a platform without adaptivity serves)
  oracle : the item whose TRUE p(correct) is nearest the target (the best any model could do)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.simulation.truth import Catalogue, Learners, practise, probabilities

# (true p of every item (items,), eligible (items,) bool) -> the item served
Chooser = Callable[[np.ndarray, np.ndarray], int]


def random_chooser(rng: np.random.Generator) -> Chooser:
    def choose(p: np.ndarray, eligible: np.ndarray) -> int:
        return int(rng.choice(np.flatnonzero(eligible)))
    return choose


def oracle_chooser(target: float) -> Chooser:
    def choose(p: np.ndarray, eligible: np.ndarray) -> int:
        gap = np.where(eligible, np.abs(p - target), np.inf)
        return int(np.argmin(gap))  # ties: the lowest index
    return choose


def eligible_items(learners: Learners, u: int, cooling: np.ndarray) -> np.ndarray:
    """Items learner u may be served now: not solved, not cooling; all of them if none is left."""
    ok = ~learners.solved[u] & ~cooling
    return ok if ok.any() else np.ones_like(ok)


def run_session(catalogue: Catalogue, learners: Learners, u: int, choose: Chooser, uniforms: np.ndarray,
                rate: float, cooling: np.ndarray | None = None) -> list[tuple[int, float, int]]:
    """One sitting of len(uniforms) attempts of learner u (their state is updated in place).

    uniforms : (length,) draws in [0, 1); attempt k succeeds when uniforms[k] < its true p, so
    two policies given the same draws differ only by the items they serve.
    cooling : (items,) bool, items answered wrongly earlier in this sitting (updated in place).
    Returns [(item, true p, outcome)] in order.
    """
    cooling = np.zeros(catalogue.size, dtype=bool) if cooling is None else cooling
    served = []
    for draw in uniforms:
        p_all = probabilities(catalogue, learners, u)
        item = choose(p_all, eligible_items(learners, u, cooling))
        p = float(p_all[item])
        outcome = int(draw < p)
        practise(catalogue, learners, u, item, p, outcome, rate)
        if not outcome:
            cooling[item] = True
        served.append((item, p, outcome))
    return served

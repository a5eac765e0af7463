"""The baseline policies and a session run offline with the same learner dynamics as over HTTP.

Every baseline obeys the rules the service's `target` strategy obeys: never an item the learner
has solved, never one answered wrongly earlier in the same sitting (the service's 30-minute
cool-down covers a whole simulated sitting); when nothing is left, any item.
  random  : uniform over those items (what a platform without adaptivity serves)
  oracle  : the item whose TRUE p(correct) is nearest the target (the best any model could do)
  ceiling : bench.simulation.ceiling, the item nearest the target by a posterior over the
            learner (what is achievable from the answers alone)
A policy is told every answer of its learner (`observe`) and the time between sessions
(`elapse`); random and the oracle need neither.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bench.simulation.truth import Catalogue, Learners, practise, probabilities


class Policy:
    """Chooses one item from the eligible ones; `predicted`: its p of the last item chosen (nan
    when it makes no prediction of its own)."""
    predicted = math.nan

    def choose(self, p_true: np.ndarray, eligible: np.ndarray) -> int:
        """p_true : (items,) true p(correct) now (only the oracle may look); eligible : (items,) bool."""
        raise NotImplementedError

    def observe(self, item: int, outcome: int) -> None:
        """The learner answered `item` (outcome 0/1)."""

    def elapse(self, days: float) -> None:
        """The learner stayed away `days` before their next session."""


class RandomPolicy(Policy):
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def choose(self, p_true: np.ndarray, eligible: np.ndarray) -> int:
        return int(self.rng.choice(np.flatnonzero(eligible)))


class OraclePolicy(Policy):
    def __init__(self, target: float):
        self.target = target

    def choose(self, p_true: np.ndarray, eligible: np.ndarray) -> int:
        gap = np.where(eligible, np.abs(p_true - self.target), np.inf)
        return int(np.argmin(gap))  # ties: the lowest index


class Served(NamedTuple):
    item: int
    p_true: float
    outcome: int
    p_pred: float  # the policy's own p of the item (nan: it has none)


def eligible_items(learners: Learners, u: int, cooling: np.ndarray) -> np.ndarray:
    """Items learner u may be served now: not solved, not cooling; all of them if none is left."""
    ok = ~learners.solved[u] & ~cooling
    return ok if ok.any() else np.ones_like(ok)


def run_session(catalogue: Catalogue, learners: Learners, u: int, policy: Policy, uniforms: np.ndarray,
                rate: float, cooling: np.ndarray | None = None) -> list[Served]:
    """One sitting of len(uniforms) attempts of learner u (their state is updated in place).

    uniforms : (length,) draws in [0, 1); attempt k succeeds when uniforms[k] < its true p, so
    two policies given the same draws differ only by the items they serve.
    cooling : (items,) bool, items answered wrongly earlier in this sitting (updated in place).
    Returns the attempts in order.
    """
    cooling = np.zeros(catalogue.size, dtype=bool) if cooling is None else cooling
    served = []
    for draw in uniforms:
        p_all = probabilities(catalogue, learners, u)
        item = policy.choose(p_all, eligible_items(learners, u, cooling))
        predicted = policy.predicted
        p = float(p_all[item])
        outcome = int(draw < p)
        practise(catalogue, learners, u, item, p, outcome, rate)
        policy.observe(item, outcome)
        if not outcome:
            cooling[item] = True
        served.append(Served(item, p, outcome, predicted))
    return served

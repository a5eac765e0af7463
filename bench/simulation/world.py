"""The simulated world of one run: the catalogue, new and returning learners (the returning
ones after their earlier sessions and the time away since), when every session happens, the
shared draws of the measured run, the baselines played offline, and the catalogue and history
as JSON Lines records for the importer.

Time is in days on each learner's own clock, 0 being the start of their first measured session:
a returning learner's earlier sessions lie before it, separated by gaps drawn by
truth.away_days (hours to weeks), and the measured sessions after the first follow by such
gaps too. An attempt takes truth.ATTEMPT_DAYS (a minute).

Seeds: SeedSequence(seed).spawn(7) gives independent streams for the catalogue, the new
learners, the returning learners, the history (its policy and draws), the measured draws, the
random baseline and the gaps between sessions, so changing one size leaves the other streams
as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from bench.simulation.figures import Attempt, Gain
from bench.simulation.policies import Policy, RandomPolicy, run_session
from bench.simulation.truth import (
    ATTEMPT_DAYS,
    Catalogue,
    Learners,
    ability,
    away_days,
    forget,
    make_catalogue,
    make_learners,
)

ROOT = "sim"                      # the root unit every session asks for


@dataclass(frozen=True)
class Plan:
    seed: int = 0
    items: int = 600
    skills: int = 6
    learners: int = 200               # new
    returning_learners: int = 200
    history_sessions: int = 3
    sessions: int = 1                 # measured, per learner and setting
    session_length: int = 40
    learn_rate: float = 0.05
    half_life: float = 7.0            # days: the learned ability halves in a week away
    gap_median: float = 2.0           # days between a learner's sessions (median)


@dataclass
class World:
    plan: Plan
    catalogue: Catalogue
    new: Learners                  # as they arrive
    returning: Learners            # after their history and the forgetting since
    history: list                  # (learner, session, step, item, outcome) of the returning learners
    draws_new: np.ndarray          # (n_new, attempts) uniforms of the measured run, shared by policies
    draws_returning: np.ndarray
    random_seed: np.random.SeedSequence
    history_starts: np.ndarray     # (n_returning, history_sessions) days, < 0: when each earlier session began
    away_new: np.ndarray           # (n_new, sessions) days away before each measured session (nan: the first)
    away_returning: np.ndarray     # (n_returning, sessions): the first is the time since their last history session
    gains_history: list = field(default_factory=list)

    def learners(self, returning: bool) -> Learners:
        return self.returning if returning else self.new

    def draws(self, returning: bool) -> np.ndarray:
        return self.draws_returning if returning else self.draws_new

    def away(self, returning: bool) -> np.ndarray:
        return self.away_returning if returning else self.away_new

    def starts(self, returning: bool, u: int) -> np.ndarray:
        """(sessions,) days: when each measured session of learner u begins (the first at 0)."""
        away = np.nan_to_num(self.away(returning)[u])
        away[0] = 0.0
        spans = np.arange(len(away)) * (self.plan.session_length - 1) * ATTEMPT_DAYS
        return np.cumsum(away) + spans


def build_world(plan: Plan) -> World:
    """The catalogue, both groups of learners and the returning ones' history (served by the
    random policy: the platform before adaptivity), forgetting by the time away after every
    session (before the next one, and before the measured one)."""
    seeds = np.random.SeedSequence(plan.seed).spawn(7)
    rng = [np.random.default_rng(s) for s in seeds[:5]]
    times = np.random.default_rng(seeds[6])
    catalogue = make_catalogue(rng[0], plan.items, plan.skills)
    new = make_learners(rng[1], plan.learners, catalogue)
    returning = make_learners(rng[2], plan.returning_learners, catalogue)
    # gaps[:, s]: days away after history session s; the last one leads to the measured run
    gaps = away_days(times, (len(returning), plan.history_sessions), plan.gap_median)
    span = (plan.session_length - 1) * ATTEMPT_DAYS
    ends = -np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1] - span * np.arange(plan.history_sessions - 1, -1, -1)
    history_starts = ends - span
    history, gains = [], []
    chooser = RandomPolicy(rng[3])
    for u in range(len(returning)):
        for s in range(plan.history_sessions):
            before = ability(returning, u)
            served = run_session(catalogue, returning, u, chooser, rng[3].random(plan.session_length),
                                 plan.learn_rate)
            history += [(u, s, k, a.item, a.outcome) for k, a in enumerate(served)]
            gains.append(Gain(u, True, s, float(ability(returning, u) - before)))
            forget(returning, gaps[u, s], plan.half_life, u)
    attempts = plan.sessions * plan.session_length
    away_new = np.full((len(new), plan.sessions), np.nan)
    away_new[:, 1:] = away_days(times, (len(new), plan.sessions - 1), plan.gap_median)
    away_returning = np.empty((len(returning), plan.sessions))
    away_returning[:, 0] = gaps[:, -1]
    away_returning[:, 1:] = away_days(times, (len(returning), plan.sessions - 1), plan.gap_median)
    return World(plan, catalogue, new, returning, history, rng[4].random((len(new), attempts)),
                 rng[4].random((len(returning), attempts)), seeds[5], history_starts, away_new, away_returning,
                 gains)


def history_by_learner(world: World) -> dict[int, list]:
    out: dict[int, list] = {}
    for row in world.history:
        out.setdefault(row[0], []).append(row)
    return out


def replay_history(world: World, u: int, policy: Policy, rows: list) -> None:
    """Tell a policy returning learner u's earlier answers (`rows`, theirs of world.history) and the
    time away after each session but the last (run_baseline gives that one)."""
    plan = world.plan
    for _, s, k, item, outcome in rows:
        policy.observe(item, outcome)
        if k == plan.session_length - 1 and s < plan.history_sessions - 1:
            next_start = world.history_starts[u, s + 1]
            policy.elapse(next_start - world.history_starts[u, s] - (plan.session_length - 1) * ATTEMPT_DAYS)


def run_baseline(world: World, policy_for) -> tuple[list[Attempt], list[Gain]]:
    """A policy played offline on copies of the learners with the measured run's draws.
    policy_for(returning, u) gives the Policy of that learner; a returning learner's is first
    told their history and the time away since."""
    plan, attempts, gains = world.plan, [], []
    history = history_by_learner(world)
    for returning in (False, True):
        learners = world.learners(returning).copy()
        for u in range(len(learners)):
            draws, away = world.draws(returning)[u], world.away(returning)[u]
            cooling = np.zeros(world.catalogue.size, dtype=bool)  # one sitting: the cool-down spans it
            policy: Policy = policy_for(returning, u)
            if returning:
                replay_history(world, u, policy, history.get(u, []))
            for s in range(plan.sessions):
                if s:
                    forget(learners, away[s], plan.half_life, u)
                if np.isfinite(away[s]):
                    policy.elapse(away[s])
                before = ability(learners, u)
                part = draws[s * plan.session_length:(s + 1) * plan.session_length]
                served = run_session(world.catalogue, learners, u, policy, part, plan.learn_rate, cooling)
                for k, a in enumerate(served):
                    attempts.append(Attempt(u, returning, s * plan.session_length + k + 1, math.nan, a.p_true,
                                            a.p_pred, a.outcome, None, float(away[s])))
                gains.append(Gain(u, returning, s, float(ability(learners, u) - before)))
    return attempts, gains


# ---- the catalogue and history as JSON Lines records ---------------------------------------------
def item_id(i: int) -> str:
    return f"{ROOT}:q{i:05d}"


def user_id(arm: str | None, returning: bool, u: int) -> str:
    own = f"{'r' if returning else 'n'}{u}"
    return own if arm is None else f"{arm}/{own}"


def catalogue_lines(catalogue: Catalogue) -> list[dict]:
    """The root unit, a child unit per section, and the items with their truth in attrs."""
    sections = [f"{ROOT}:s{s + 1}" for s in range(catalogue.skills)]
    lines = [{"type": "unit", "unit_id": sid, "name": f"Section {s + 1}", "kind": "section"}
             for s, sid in enumerate(sections)]
    lines.append({"type": "unit", "unit_id": ROOT, "name": "Simulated course", "kind": "root", "children": sections})
    for i in range(catalogue.size):
        lines.append({"type": "item", "item_id": item_id(i), "units": [sections[catalogue.skill[i]]],
                      "attrs": {"true_difficulty": round(float(catalogue.difficulty[i]), 4),
                                "discrimination": round(float(catalogue.discrimination[i]), 4),
                                "skill": int(catalogue.skill[i])}})
    return lines


def at_time(start: datetime, days: float) -> datetime:
    """The wall-clock time `days` after `start` (a learner's clock's 0), to the second."""
    return start + timedelta(seconds=round(days * 86400.0))


def history_lines(world: World, arm: str | None, now: datetime, run: str) -> list[dict]:
    """The returning learners' earlier attempts (under the ids of `arm`), `now` being the start of
    their first measured session: at world.history_starts, a minute per attempt."""
    out = []
    for u, s, k, item, outcome in world.history:
        at = at_time(now, world.history_starts[u, s] + k * ATTEMPT_DAYS)
        uid = user_id(arm, True, u)
        out.append({"type": "interaction", "event_id": f"sim:{run}:{uid}:{s}:{k}", "user_id": uid,
                    "item_id": item_id(item), "kind": "attempt", "outcome": outcome, "occurred_at": at.isoformat()})
    return out

"""The simulated world of one run: the catalogue, new and returning learners (the returning
ones after their earlier sessions), the shared draws of the measured run, the baselines played
offline, and the catalogue and history as JSON Lines records for the importer.

Seeds: SeedSequence(seed).spawn(6) gives independent streams for the catalogue, the new
learners, the returning learners, the history (its policy and draws), the measured draws and
the random baseline, so changing one size leaves the other streams as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from bench.simulation.figures import Attempt, Gain
from bench.simulation.policies import Chooser, random_chooser, run_session
from bench.simulation.truth import Catalogue, Learners, ability, forget, make_catalogue, make_learners

ROOT = "sim"                      # the root unit every session asks for
SESSION_GAP = timedelta(days=2)   # between a returning learner's earlier sessions


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
    forget: float = 0.2


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
    gains_history: list = field(default_factory=list)

    def learners(self, returning: bool) -> Learners:
        return self.returning if returning else self.new

    def draws(self, returning: bool) -> np.ndarray:
        return self.draws_returning if returning else self.draws_new


def build_world(plan: Plan) -> World:
    """The catalogue, both groups of learners and the returning ones' history (served by the
    random policy: the platform before adaptivity), forgetting after every session."""
    seeds = np.random.SeedSequence(plan.seed).spawn(6)
    rng = [np.random.default_rng(s) for s in seeds[:5]]
    catalogue = make_catalogue(rng[0], plan.items, plan.skills)
    new = make_learners(rng[1], plan.learners, catalogue)
    returning = make_learners(rng[2], plan.returning_learners, catalogue)
    history, gains = [], []
    chooser = random_chooser(rng[3])
    for u in range(len(returning)):
        for s in range(plan.history_sessions):
            before = ability(returning, u)
            served = run_session(catalogue, returning, u, chooser, rng[3].random(plan.session_length),
                                 plan.learn_rate)
            history += [(u, s, k, item, outcome) for k, (item, _, outcome) in enumerate(served)]
            gains.append(Gain(u, True, s, float(ability(returning, u) - before)))
            forget(returning, plan.forget, u)  # before the next session, and before the measured one
    attempts = plan.sessions * plan.session_length
    return World(plan, catalogue, new, returning, history, rng[4].random((len(new), attempts)),
                 rng[4].random((len(returning), attempts)), seeds[5], gains)


def run_baseline(world: World, chooser_for) -> tuple[list[Attempt], list[Gain]]:
    """A policy played offline on copies of the learners with the measured run's draws.
    chooser_for(returning, u) gives the Chooser of that learner."""
    plan, attempts, gains = world.plan, [], []
    for returning in (False, True):
        learners = world.learners(returning).copy()
        for u in range(len(learners)):
            draws = world.draws(returning)[u]
            cooling = np.zeros(world.catalogue.size, dtype=bool)  # one sitting: the cool-down spans it
            choose: Chooser = chooser_for(returning, u)
            for s in range(plan.sessions):
                if s:
                    forget(learners, plan.forget, u)
                before = ability(learners, u)
                part = draws[s * plan.session_length:(s + 1) * plan.session_length]
                served = run_session(world.catalogue, learners, u, choose, part, plan.learn_rate, cooling)
                for k, (_, p, outcome) in enumerate(served):
                    attempts.append(Attempt(u, returning, s * plan.session_length + k + 1, math.nan, p, math.nan,
                                            outcome))
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


def history_lines(world: World, arm: str | None, now: datetime, run: str) -> list[dict]:
    """The returning learners' earlier attempts (under the ids of `arm`): session s of H happened
    (H - s) * SESSION_GAP before `now`, a minute per attempt."""
    out, sessions = [], world.plan.history_sessions
    for u, s, k, item, outcome in world.history:
        at = now - (sessions - s) * SESSION_GAP + timedelta(minutes=k)
        uid = user_id(arm, True, u)
        out.append({"type": "interaction", "event_id": f"sim:{run}:{uid}:{s}:{k}", "user_id": uid,
                    "item_id": item_id(item), "kind": "attempt", "outcome": outcome, "occurred_at": at.isoformat()})
    return out

"""The simulation's realistic ceiling (a posterior over the learner, the items and the truth's rules
known) and its time: gaps between sessions, forgetting with the time away, the events' times."""
from __future__ import annotations

from argparse import Namespace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest

from bench.simulate_service import Arm, drive_learner
from bench.simulation.ceiling import Belief, CeilingPolicy
from bench.simulation.figures import gaps, prediction
from bench.simulation.policies import OraclePolicy, RandomPolicy, run_session
from bench.simulation.truth import (
    ATTEMPT_DAYS,
    GAP_RANGE_DAYS,
    Learners,
    ability,
    away_days,
    forget,
    make_catalogue,
    make_learners,
    practise,
    probabilities,
    retained,
)
from bench.simulation.world import Plan, build_world, history_lines, item_id, run_baseline

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)  # a fixed clock: nothing here reads today's date


def _skill_abilities(learners: Learners, u: int) -> np.ndarray:
    return learners.theta[u] + learners.offset[u] + learners.learned[u]


def test_without_learning_the_ceilings_belief_closes_in_on_the_true_ability_of_every_skill():
    rng = np.random.default_rng(5)
    catalogue = make_catalogue(rng, 300, 3)
    learners = make_learners(rng, 6, catalogue)
    errors_prior, errors_after, sds = [], [], []
    for u in range(len(learners)):
        belief = Belief(catalogue.skills)
        truth = _skill_abilities(learners, u)
        errors_prior.append(np.abs(belief.ability()[0] - truth))
        for item in rng.integers(0, catalogue.size, 900):  # 300 answers per skill, nothing learned
            p = probabilities(catalogue, learners, u, [item])[0]
            belief.update(catalogue, int(item), int(rng.random() < p), rate=0.0)
        mean, var = belief.ability()
        errors_after.append(np.abs(mean - truth))
        sds.append(np.sqrt(var))
    assert np.mean(errors_after) < 0.2 < np.mean(errors_prior)
    assert np.max(errors_after) < 0.5
    assert np.max(sds) < 0.3  # the prior's is sqrt(1.25)
    z = np.array(errors_after) / np.array(sds)
    assert np.mean(z ** 2) < 2.5  # the belief is about as sure as it is right


def test_one_answer_moves_every_skill_through_the_general_ability():
    catalogue = make_catalogue(np.random.default_rng(0), 30, 3)
    belief = Belief(catalogue.skills)
    item = int(np.flatnonzero(catalogue.skill == 0)[0])
    belief.update(catalogue, item, outcome=1, rate=0.0)
    mean, var = belief.ability()
    assert mean[0] > mean[1] > 0 and mean[1] == pytest.approx(mean[2])  # skill 0 most, the others through theta
    assert var[0] < var[1] < 1.25


def _static_world(seed: int = 2) -> Plan:
    return Plan(seed=seed, items=240, skills=4, learners=30, returning_learners=20, history_sessions=2,
                session_length=30, learn_rate=0.0)


def test_without_learning_the_ceiling_targets_between_the_oracle_and_random_and_predicts_without_bias():
    world = build_world(_static_world())
    rng = np.random.default_rng(world.random_seed)
    rand, _ = run_baseline(world, lambda returning, u: RandomPolicy(rng))
    oracle, _ = run_baseline(world, lambda returning, u: OraclePolicy(0.7))
    ceiling, _ = run_baseline(world, lambda returning, u: CeilingPolicy(world.catalogue, 0.7, 0.0, 7.0))
    g_rand, g_oracle, g_ceiling = gaps(rand, 0.7), gaps(oracle, 0.7), gaps(ceiling, 0.7)
    assert g_oracle["all"] < g_ceiling["all"] < 0.5 * g_rand["all"]
    assert g_ceiling["new_after_5"] <= g_ceiling["new"]  # its first answers teach it the learner
    assert g_ceiling["returning"] < g_ceiling["new"]     # a history says more than the prior
    pred = prediction(ceiling)
    assert abs(pred["all"]["bias"]) < 0.03 and pred["all"]["n"] == len(ceiling)


def test_the_ceiling_that_knows_the_learning_rule_does_not_under_predict_learners_who_learn_fast():
    plan = Plan(seed=4, items=240, skills=4, learners=30, returning_learners=30, history_sessions=3,
                session_length=30, learn_rate=0.3, half_life=7.0)
    world = build_world(plan)
    knows, _ = run_baseline(world, lambda r, u: CeilingPolicy(world.catalogue, 0.7, plan.learn_rate, plan.half_life))
    static, _ = run_baseline(world, lambda r, u: CeilingPolicy(world.catalogue, 0.7, 0.0, plan.half_life))
    bias_knows, bias_static = prediction(knows)["all"]["bias"], prediction(static)["all"]["bias"]
    assert bias_static < -0.05  # ignoring practice, it believes them weaker than they became
    assert abs(bias_knows) < 0.5 * abs(bias_static)
    assert gaps(knows, 0.7)["all"] < gaps(static, 0.7)["all"]


def test_forgetting_lowers_the_true_p_more_the_longer_the_learner_stays_away():
    rng = np.random.default_rng(3)
    catalogue = make_catalogue(rng, 60, 2)
    learners = make_learners(rng, 1, catalogue)
    for _ in range(20):
        practise(catalogue, learners, 0, 0, 0.5, 0, rate=0.1)
    base = learners.copy()
    base.learned[:] = 0.0
    p_learned = probabilities(catalogue, learners, 0)
    p_after = {}
    for days in (0.0, 1.0, 7.0, 30.0, 365.0):
        copy = learners.copy()
        forget(copy, days, half_life_days=7.0)
        p_after[days] = probabilities(catalogue, copy, 0)
    skill0 = catalogue.skill == 0
    assert np.array_equal(p_after[0.0], p_learned)
    assert np.all(p_learned[skill0] > p_after[1.0][skill0])
    assert np.all(p_after[1.0][skill0] > p_after[7.0][skill0]) and np.all(p_after[7.0][skill0] > p_after[30.0][skill0])
    assert p_after[365.0] == pytest.approx(probabilities(catalogue, base, 0), abs=1e-6)  # back to the base
    assert retained(7.0, 7.0) == pytest.approx(0.5)
    belief = Belief(2)
    belief.learned[:] = 1.0
    belief.elapse(14.0, 7.0)  # the ceiling forgets by the same rule
    assert belief.learned == pytest.approx([0.25, 0.25])


def test_gaps_between_sessions_run_from_hours_to_weeks():
    days = away_days(np.random.default_rng(0), 20_000)
    assert days.min() >= GAP_RANGE_DAYS[0] and days.max() <= GAP_RANGE_DAYS[1]
    assert 1.5 < np.median(days) < 2.5
    assert 0.08 < np.mean(days >= 7.0) < 0.25 and np.mean(days < 0.5) > 0.05


def test_history_times_increase_per_learner_and_sessions_are_apart_by_their_drawn_gaps():
    plan = Plan(seed=1, items=60, skills=3, learners=3, returning_learners=5, history_sessions=3, session_length=6,
                sessions=2)
    world = build_world(plan)
    lines = history_lines(world, None, START, "run")
    for u in range(5):
        times = [datetime.fromisoformat(line["occurred_at"]) for line in lines if line["user_id"] == f"r{u}"]
        assert len(times) == 18 and all(b > a for a, b in pairwise(times))
        assert times[-1] < START
        steps = np.array([(b - a).total_seconds() / 86400.0 for a, b in pairwise(times)])
        away = steps[steps > 2 * ATTEMPT_DAYS]  # between sessions; a minute apart within one
        assert len(away) == 2 and np.all((away >= GAP_RANGE_DAYS[0] - 1e-5) & (away <= GAP_RANGE_DAYS[1] + 1e-5))
        assert (START - times[-1]).total_seconds() / 86400.0 == pytest.approx(world.away_returning[u, 0], abs=1e-4)
        starts = world.starts(True, u)
        assert starts[0] == 0.0 and starts[1] == pytest.approx(world.away_returning[u, 1] + 5 * ATTEMPT_DAYS)
    assert np.all(np.isnan(world.away_new[:, 0])) and np.all(world.away_new[:, 1] > 0)


class _FakeService:
    """Answers every recommendation with the next item of a list and records the events posted."""

    def __init__(self):
        self.events, self.next = [], 0

    def call(self, method, path, body=None):
        if path == "/v1/recommendations":
            self.next += 1
            return 200, {"items": [{"item_id": item_id(self.next % 60), "p": 0.6}], "variant": None}
        self.events.append(body)
        return 201, {}


def test_the_events_posted_carry_the_simulated_times_and_the_truth_forgets_between_sessions():
    plan = Plan(seed=2, items=60, skills=3, learners=2, returning_learners=2, history_sessions=2, session_length=5,
                sessions=2, learn_rate=0.2, half_life=3.0)
    world = build_world(plan)
    positions = {item_id(i): i for i in range(60)}

    def drive(half_life):
        service, learners = _FakeService(), world.returning.copy()
        args = Namespace(sessions=2, session_length=5, learn_rate=0.2, half_life=half_life)
        attempts, _, _ = drive_learner(service, world, learners, Arm("t70", target=0.7), True, 1, args, "run",
                                       positions, clock=lambda: START)
        return service, attempts, learners

    service, attempts, learners = drive(3.0)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in service.events]
    assert times[0] == START and times[4] == START + timedelta(minutes=4)
    away = (times[5] - times[4]).total_seconds() / 86400.0
    assert away == pytest.approx(world.away_returning[1, 1], abs=1e-4)
    assert [a.away for a in attempts] == [world.away_returning[1, 0]] * 5 + [world.away_returning[1, 1]] * 5
    # the same items served without forgetting leave the learner abler: the truth forgot between the sessions
    _, _, remembering = drive(float("inf"))
    assert ability(learners, 1) < ability(remembering, 1) - 0.01


def test_a_policy_is_told_each_answer():
    catalogue = make_catalogue(np.random.default_rng(0), 40, 2)
    learners = make_learners(np.random.default_rng(1), 1, catalogue)
    policy = CeilingPolicy(catalogue, 0.7, 0.05, 7.0)
    served = run_session(catalogue, learners, 0, policy, np.random.default_rng(2).random(10), rate=0.05)
    assert all(0 < s.p_pred < 1 for s in served)
    assert policy.belief.learned.sum() > 0 and np.diag(policy.belief.cov).sum() < 2 * 1.25

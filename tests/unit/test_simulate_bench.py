"""The closed-loop learner simulation: the truth and how learners change, the baselines, the
figures (a tiny run of the whole bench against a real service: tests/slow/test_simulate_bench.py)."""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from bench.simulation.figures import Attempt, Gain, bands, gaps, policy_figures, prediction, variant_figures
from bench.simulation.policies import OraclePolicy, RandomPolicy, run_session
from bench.simulation.truth import (
    Catalogue,
    Learners,
    ability,
    forget,
    make_catalogue,
    make_learners,
    practise,
    probabilities,
)
from bench.simulation.world import Plan, build_world, history_lines, run_baseline


def _tiny() -> tuple[Catalogue, Learners]:
    catalogue = Catalogue(difficulty=np.array([-1.0, 0.0, 1.0, 2.0]), discrimination=np.array([1.0, 2.0, 0.5, 1.0]),
                          skill=np.array([0, 0, 1, 1]), skills=2)
    learners = Learners(theta=np.array([0.5]), offset=np.array([[0.0, -0.5]]), learned=np.zeros((1, 2)),
                        solved=np.zeros((1, 4), dtype=bool))
    return catalogue, learners


def test_true_probability_is_the_two_parameter_logistic():
    catalogue, learners = _tiny()
    expected = [1 / (1 + math.exp(-a * (ab - b)))
                for a, ab, b in [(1.0, 0.5, -1.0), (2.0, 0.5, 0.0), (0.5, 0.0, 1.0), (1.0, 0.0, 2.0)]]
    assert probabilities(catalogue, learners, 0) == pytest.approx(expected)
    assert probabilities(catalogue, learners, 0, [2]) == pytest.approx(expected[2:3])


def test_practice_raises_the_skill_most_at_even_odds_and_forgetting_takes_a_share_back():
    catalogue, learners = _tiny()
    before = probabilities(catalogue, learners, 0).copy()
    practise(catalogue, learners, 0, 1, p=0.5, outcome=0, rate=0.1)
    assert learners.learned[0] == pytest.approx([0.1, 0.0])  # rate * 4 * 0.5 * 0.5, on skill 0 only
    assert not learners.solved[0].any()  # a wrong answer solves nothing
    after = probabilities(catalogue, learners, 0)
    assert np.all(after[:2] > before[:2]) and np.all(after[2:] == before[2:])
    practise(catalogue, learners, 0, 2, p=0.9, outcome=1, rate=0.1)
    assert learners.learned[0, 1] == pytest.approx(0.1 * 4 * 0.9 * 0.1)  # an easy item teaches little
    assert learners.solved[0, 2]
    assert ability(learners, 0) == pytest.approx(0.5 + (-0.5 + 0.1 + 0.036) / 2)
    forget(learners, days=14.0, half_life_days=7.0)  # two half-lives away: a quarter is left
    assert learners.learned[0] == pytest.approx([0.025, 0.009])


def test_a_session_of_practice_raises_every_learners_true_ability():
    rng = np.random.default_rng(1)
    catalogue = make_catalogue(rng, 120, 4)
    learners = make_learners(rng, 10, catalogue)
    assert catalogue.size == 120 and set(catalogue.skill) == {0, 1, 2, 3}
    assert np.all((catalogue.discrimination >= 0.4) & (catalogue.discrimination <= 2.5))
    assert catalogue.difficulty[catalogue.skill == 3].mean() > catalogue.difficulty[catalogue.skill == 0].mean()
    start = ability(learners).copy()
    for u in range(10):
        run_session(catalogue, learners, u, RandomPolicy(rng), rng.random(30), rate=0.05)
    assert np.all(ability(learners) > start)


def test_the_oracle_serves_the_unsolved_item_nearest_the_target_and_random_never_a_solved_one():
    catalogue, learners = _tiny()
    p = probabilities(catalogue, learners, 0)
    nearest = int(np.argmin(np.abs(p - 0.7)))
    assert OraclePolicy(0.7).choose(p, np.ones(4, dtype=bool)) == nearest
    eligible = np.ones(4, dtype=bool)
    eligible[nearest] = False
    assert OraclePolicy(0.7).choose(p, eligible) != nearest
    rng = np.random.default_rng(0)
    learners.solved[0, [0, 1, 3]] = True
    served = run_session(catalogue, learners, 0, RandomPolicy(rng), np.array([0.99, 0.99]), rate=0.0)
    # item 2 is the only unsolved one; answered wrongly (draw 0.99) it cools down, so the second
    # attempt finds nothing eligible and may be any item
    assert served[0][0] == 2 and served[0][2] == 0


def test_the_same_draws_give_the_same_outcomes_to_the_same_items():
    catalogue, learners = _tiny()
    draws = np.array([0.3, 0.6, 0.1])
    a = run_session(catalogue, learners.copy(), 0, OraclePolicy(0.5), draws, rate=0.05)
    b = run_session(catalogue, learners.copy(), 0, OraclePolicy(0.5), draws, rate=0.05)
    assert [x[:3] for x in a] == [x[:3] for x in b]  # p_pred is nan for the oracle: nan != nan
    assert all(x.outcome == int(draw < x.p_true) for x, draw in zip(a, draws))


def test_attempt_bands_and_the_figures_by_hand():
    def near(x):
        return pytest.approx(x, abs=1e-4)  # the figures are rounded to 4 digits

    assert bands(40) == [(1, 5), (6, 10), (11, 20), (21, 40)]
    assert bands(7) == [(1, 5), (6, 10)]
    assert bands(50) == [(1, 5), (6, 10), (11, 20), (21, 40), (41, 80)]
    attempts = [Attempt(0, False, 1, 0.7, 0.5, 0.6, 1), Attempt(0, False, 6, 0.7, 0.9, 0.8, 1),
                Attempt(1, True, 1, 0.7, 0.6, 0.4, 0, "t60")]
    g = gaps(attempts)
    assert g["all"] == near((0.2 + 0.2 + 0.1) / 3) and g["new_after_5"] == near(0.2)
    assert g["returning"] == near(0.1)
    assert gaps(attempts, target=0.5)["new"] == near(0.2)
    pred = prediction(attempts)
    assert pred["new"]["mae"] == near(0.1) and pred["new"]["bias"] == near(0.0)
    assert pred["returning"]["bias"] == near(-0.2)  # under-predicts
    fig = policy_figures(attempts, [Gain(0, False, 0, 0.3), Gain(1, True, 0, 0.1)], 10, predicts=True)
    assert fig["success_rate"]["all"] == near(2 / 3) and fig["learning_gain"]["all"] == near(0.2)
    assert fig["error_by_attempt"]["new"] == {"1-5": near(0.1), "6-10": near(0.1)}
    assert fig["error_by_attempt"]["returning"]["6-10"] is None  # no attempts there: no figure
    assert variant_figures(attempts, [Gain(1, True, 0, 0.1, "t60")])["t60"]["success_rate"] == 0.0


def test_a_seed_gives_one_world_and_offline_the_oracle_targets_far_better_than_random():
    plan = Plan(seed=3, items=90, skills=3, learners=5, returning_learners=4, history_sessions=2, session_length=10)
    world, again = build_world(plan), build_world(plan)
    assert world.history == again.history and np.array_equal(world.draws_new, again.draws_new)
    assert len(world.history) == 4 * 2 * 10 and world.draws_new.shape == (5, 10)
    assert world.returning.learned.any() and not world.new.learned.any()  # only history taught anything
    lines = history_lines(world, "t70", datetime(2025, 1, 6, tzinfo=UTC), "run")
    assert len(lines) == 80 and lines[0]["user_id"] == "t70/r0"
    assert len({line["event_id"] for line in lines}) == 80
    rand, _ = run_baseline(world, lambda returning, u: RandomPolicy(np.random.default_rng(u)))
    oracle, gains = run_baseline(world, lambda returning, u: OraclePolicy(0.7))
    assert len(rand) == len(oracle) == 9 * 10 and len(gains) == 9
    assert gaps(oracle, 0.7)["all"] < 0.5 * gaps(rand, 0.7)["all"]

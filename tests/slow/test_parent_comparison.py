"""The parent comparison of the practice job (jobs/training/practice_job.py) against a real Postgres:
parent and child are compared on learners neither model trained on."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import psycopg2
import pytest

from harness.databases import scratch_database
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TrainConfig
from jobs.training import practice_job, split
from jobs.training.job import JobState

pytestmark = pytest.mark.slow  # trains models

CONFIG = TrainConfig(max_trials=1, max_eval_users=1000, threads=1)


@pytest.fixture(scope="module")
def small_demo(servers):
    """A small synthetic platform: root `demo` above three subjects, 400 learners."""
    with scratch_database(servers[0], "adaptrec_parent") as url:
        conn = psycopg2.connect(url)
        generate_demo(conn, DemoConfig(seed=11, learners=400, attempts=24_000, engagements=0))
        yield conn
        conn.close()


def _subject(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT unit_id FROM units WHERE kind = 'subject' ORDER BY unit_id LIMIT 1")
        unit = cur.fetchone()[0]
    conn.rollback()
    return unit


def test_parent_and_child_are_compared_only_on_learners_neither_trained_on(small_demo):
    parent = practice_job.train_unit(small_demo, "demo", "mf", CONFIG)
    child = practice_job.train_unit(small_demo, _subject(small_demo), "mf", CONFIG)
    assert parent.outcome.status == child.outcome.status == "activated", (parent.outcome, child.outcome)

    compared = set(child.test_user_ids)
    comparison = child.metrics["parent"]
    assert comparison["unit_id"] == "demo" and comparison["held_out_from_both"] is True
    assert comparison["learners"] == len(compared) > 0 and comparison["attempts"] > comparison["learners"]
    # The learners compared are test learners of the split, in neither model's training learners ...
    assert (split.roles(sorted(compared)) == split.TEST).all()
    assert not compared & set(parent.user_ids) and not compared & set(child.user_ids)
    # ... though the parent's unit holds them: it held them out, as the split says.
    assert compared <= set(parent.test_user_ids)
    # The job's dev/test learners are exactly the id split's: trained = train + dev, then test.
    for result in (parent, child):
        assert (split.roles(result.user_ids) != split.TEST).all()
        assert len(result.user_ids) + len(result.test_user_ids) == result.counts["users"]
        assert len(result.test_user_ids) == result.counts["test_users"]


def test_a_parent_that_trained_on_the_test_learners_cannot_take_over_a_unit(small_demo, monkeypatch):
    config = replace(CONFIG, tag="leaky", prefer_parent=True)
    parent = practice_job.train_unit(small_demo, "demo", "mf", replace(config, hold_out_test_learners=False))
    monkeypatch.setattr(practice_job, "replay_auc", lambda *a, **k: 0.999)   # the parent would win
    child = practice_job.train_unit(small_demo, _subject(small_demo), "mf", config)
    assert set(child.test_user_ids) <= set(parent.user_ids)          # the parent has seen them
    assert child.metrics["parent"]["held_out_from_both"] is False
    assert child.outcome.status == "activated"          # a leaky comparison decides nothing


def test_the_ancestor_serves_a_unit_only_when_it_predicts_the_units_dev_attempts_better(small_demo):
    """The decision is made on dev learners, from this run's predictions of the unit above."""
    config = replace(CONFIG, tag="dev-choice")
    state = JobState()
    root = practice_job.train_unit(small_demo, "demo", "mf", config, state)
    assert root.outcome.status == "activated"
    predicted = state.dev_predictions["demo"]
    assert predicted and all(split.role(user) == "dev" for user, _ in predicted)   # dev learners only
    data = practice_job.load_practice_data(small_demo, "default", "demo", "mf")
    outcome_of = {(data.user_ids[u], data.item_ids[i]): int(y)
                  for u, i, y in zip(data.users.tolist(), data.items.tolist(), data.outcomes.tolist())}
    unit = _subject(small_demo)

    state.dev_predictions["demo"] = {k: 0.999 if outcome_of[k] else 0.001 for k in predicted}  # knew every answer
    child = practice_job.train_unit(small_demo, unit, "mf", config, state)
    assert child.outcome.status == "parent_serves", child.outcome
    ancestor = child.metrics["ancestor_dev"]
    assert ancestor["unit_id"] == "demo" and ancestor["logloss"] < ancestor["own_logloss"]
    assert state.dev_predictions[unit] is state.dev_predictions["demo"]    # its children meet the root

    state.dev_predictions = {"demo": dict.fromkeys(predicted, 0.5)}       # knows nothing
    child = practice_job.train_unit(small_demo, unit, "mf", config, state)
    assert child.outcome.status == "activated", child.outcome
    assert child.metrics["ancestor_dev"]["own_logloss"] < child.metrics["ancestor_dev"]["logloss"]
    assert set(state.dev_predictions[unit]) <= {k for k in outcome_of if k[1] in set(child.artifact.embedding.item_ids)}

    state.dev_predictions = {"demo": dict.fromkeys(list(predicted)[:5], 0.5)}   # 5 dev attempts in common
    child = practice_job.train_unit(small_demo, unit, "mf", config, state)
    assert child.outcome.status == "parent_serves" and "too few" in child.outcome.reason, child.outcome
    assert child.metrics["ancestor_dev"]["too_few"] is True


def test_every_unit_tries_the_1pl_and_records_the_candidates_it_chose_between(small_demo):
    config = replace(CONFIG, tag="candidates")
    result = practice_job.train_unit(small_demo, _subject(small_demo), "mf", config)
    search = result.metrics and modelstore_search(small_demo, result.outcome.model_id)
    kinds = {t["kind"] for t in search}
    assert kinds == {"embedding", "1pl"} and sum(t["chosen"] for t in search) == 1
    chosen = next(t for t in search if t["chosen"])
    assert chosen["val_logloss"] == min(t["val_logloss"] for t in search)
    assert result.metrics["candidate"] == chosen["kind"]
    assert set(result.metrics["dev"]) == {"embedding", "1pl"}


def modelstore_search(conn, model_id: int) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute("SELECT hyperparams FROM models WHERE model_id = %s", (model_id,))
        hyper = cur.fetchone()[0]
    conn.rollback()
    return hyper["search"]


def test_the_calibration_learns_retry_offsets_from_every_dev_attempt(small_demo):
    """Demo learners retry at once after a mistake: the chosen model replays all its dev learners'
    attempts, repeats included, and the calibration gains the two retry offsets."""
    config = replace(CONFIG, tag="retry")
    result = practice_job.train_unit(small_demo, "demo", "mf", config)
    info = result.metrics["dev_all_attempts"]
    assert info["retries"] >= 20 and info["attempts"] > info["retries"]
    assert info["logloss"] <= info["platt_logloss"] + 1e-9           # the fit nests the Platt pair
    with small_demo.cursor() as cur:
        cur.execute("SELECT a.calibration FROM model_arrays a WHERE a.model_id = %s", (result.outcome.model_id,))
        stored = cur.fetchone()[0]
    small_demo.rollback()
    assert set(stored["retry"]) == {"after_mistake", "after_success", "slope_after_mistake", "slope_after_success",
                                    "biases_after_mistake", "biases_after_success"} and stored["method"] == "platt"


def test_a_units_own_model_must_beat_its_ancestor_by_two_learner_clustered_standard_errors():
    rng = np.random.default_rng(0)
    learners = np.repeat(np.arange(40), 25)
    y = (rng.random(1000) < 0.6).astype(float)
    p_b = np.full(1000, 0.6)
    noise = 0.05 * rng.standard_normal(40)[learners]            # per-learner noise: clustered
    d, se = practice_job.paired_logloss_difference(y, np.clip(p_b + noise, 0.01, 0.99), p_b, learners)
    loss = lambda p: -(y * np.log(p) + (1 - y) * np.log(1 - p))  # noqa: E731
    per_learner = np.bincount(learners, loss(np.clip(p_b + noise, 0.01, 0.99)) - loss(p_b))
    assert d == pytest.approx(per_learner.sum() / 1000)
    assert se == pytest.approx(np.sqrt(40 / 39 * np.sum((per_learner - d * 25) ** 2)) / 1000)
    assert not d + 2 * se < 0                                   # noise: the ancestor keeps the unit
    knows = np.where(y == 1, 0.9, 0.1)
    d, se = practice_job.paired_logloss_difference(y, knows, p_b, learners)
    assert d + 2 * se < 0                                       # clearly better: its own model serves
    assert practice_job.paired_logloss_difference(y[:25], knows[:25], p_b[:25], learners[:25])[1] == np.inf

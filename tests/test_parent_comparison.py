"""The parent comparison of the practice job (jobs/training/practice_job.py) against a real Postgres:
parent and child are compared on learners neither model trained on."""
from __future__ import annotations

from dataclasses import replace

import psycopg2
import pytest

from harness.databases import scratch_database
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TrainConfig
from jobs.training import practice_job, split

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

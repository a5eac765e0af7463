"""Cold start in the hybrid modes, served: a partial-mode demo trained without a few questions, which are
then added, against real Postgres and Redis. A new learner's grade moves their first predictions; a
question newer than the model is scored from its metadata; the cold-start bench runs end to end.
(The maths without a database: tests/unit/test_cold_start.py.)"""
from __future__ import annotations

import uuid
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import psycopg2
import pytest

# ---- the service, on a trained hybrid demo ---------------------------------------------------
GRADE_EFFECT = 0.8


@pytest.fixture(scope="module")
def cold_db(servers):
    """A partial-mode demo root model trained without a few questions, which are then added."""
    from app.catalogue import catalog
    from app.catalogue.records import Item
    from bench.cold_start import new_questions, without
    from harness.databases import scratch_database
    from jobs import demo
    from jobs.importers.common import Loader
    from jobs.train import TrainConfig, run_training

    data = demo.build(demo.DemoConfig(seed=3, learners=600, attempts=50_000, engagements=0,
                                      grade_effect=GRADE_EFFECT))
    fresh = new_questions(data.catalogue.question_ids, 0.05)
    with scratch_database(servers[0], "adaptrec_cold") as url:
        conn = psycopg2.connect(url)
        loader = Loader(conn, tenant="default")
        demo.stage(loader, without(data, ~np.isin(data.attempts.item_ids, list(fresh)), fresh), False)
        loader.finish()
        conn.commit()
        report = run_training(url, TrainConfig(mode="partial", max_trials=1, max_eval_users=80), units=["demo"],
                              progress=False)
        assert {o.status for o in report.outcomes} == {"activated"}, report.table()
        rows = {r[0]: r for r in data.catalogue.items}
        units = {}
        for unit_id, item_id, _ in data.catalogue.unit_items:
            units.setdefault(item_id, []).append(unit_id)
        with conn:
            catalog.upsert_items(conn, "default", [Item(item_id=i, kind="question", title=rows[i][2], attrs=rows[i][4],
                                             units=units[i]) for i in sorted(fresh)])
        labels = {i: rows[i][4]["difficulty_label"] for i in fresh}
        conn.close()
        yield SimpleNamespace(url=url, fresh=sorted(fresh), labels=labels, metrics=report.outcomes[0].metrics)


@pytest.fixture
def cold_api(cold_db, settings):
    from app.api.factory import close as close_app
    from app.api.factory import create_app
    from tests.conftest import TEST_API_KEY

    application = create_app(replace(settings, database_url=cold_db.url))
    client = application.test_client()
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    yield SimpleNamespace(post=lambda path, body: client.post(path, json=body, headers=headers),
                          put=lambda path, body: client.put(path, json=body, headers=headers))
    close_app(application)


def test_a_new_learners_grade_moves_their_first_predictions(cold_db, cold_api):
    assert cold_db.metrics["metadata_prior"]["used"] is True, cold_db.metrics["metadata_prior"]
    items = ["demo.math.1.1.q1", "demo.phys.3.2.q2", "demo.chem.5.4.q3"]
    p = {}
    for grade in (9, 12, None):
        user = f"learner-{uuid.uuid4().hex[:8]}"
        if grade is not None:
            assert cold_api.put(f"/v1/users/{user}", {"attrs": {"grade": grade}}).status_code in (200, 201)
        answer = cold_api.post("/v1/predictions", {"user_id": user, "units": ["demo"], "item_ids": items}).json
        assert answer["history_rows"] == 0
        p[grade] = np.array([it["p"] for it in answer["items"]])
    assert (p[12] > p[None] + 0.03).all() and (p[None] > p[9] + 0.03).all(), p


def test_a_question_added_after_training_is_scored_from_its_metadata(cold_db, cold_api):
    easy = [i for i in cold_db.fresh if cold_db.labels[i] == "easy"]
    hard = [i for i in cold_db.fresh if cold_db.labels[i] == "hard"]
    assert easy and hard
    user = f"learner-{uuid.uuid4().hex[:8]}"
    answer = cold_api.post("/v1/predictions", {"user_id": user, "units": ["demo"], "item_ids": easy + hard}).json
    p = np.array([it["p"] for it in answer["items"]])
    assert p[:len(easy)].mean() > p[len(easy):].mean() + 0.1, p        # the label says what the model learned
    assert len(set(np.round(p, 6))) > 2                                 # not all the one average item
    section = easy[0].rsplit(".", 1)[0]                                 # ids are <section unit>.q<n>
    recs = cold_api.post("/v1/recommendations", {"user_id": user, "units": [section], "n": 100}).json
    served = {it["item_id"]: it["p"] for it in recs["items"]}
    assert served[easy[0]] == pytest.approx(p[0], abs=1e-6)            # a candidate, scored the same way


def test_the_cold_start_bench_runs_end_to_end_on_a_small_demo(servers, monkeypatch, tmp_path):
    from bench.cold_start import run

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    monkeypatch.setenv("ADAPTREC_HOME", str(tmp_path))
    monkeypatch.setenv("ADAPTREC_TRAIN_MAX_TRIALS", "1")
    report = run(learners=300, attempts=15_000, grade_effect=0.8, new_share=0.1)
    assert report["new_items"] > 0 and report["served_model"]["item_features"] is True
    for role in ("dev", "test"):
        slices = report[role]["slices"]
        assert set(slices) == {"first_10_attempts", "first_10_attempts_at_known_questions", "new_questions", "all"}
        assert all(set(s) == {"service", "population_prior", "truth"} for s in slices.values())
        assert slices["all"]["service"]["n"] == report[role]["attempts"] > 0
        new = slices["new_questions"]
        assert new["service"]["logloss"] != new["population_prior"]["logloss"]     # the two arms differ
    assert set(report["targets"]) >= {"test_first_10_attempts_auc_gain_over_population_prior", "met"}

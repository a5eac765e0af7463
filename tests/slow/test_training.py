"""The daily training job on the synthetic demo, against a real Postgres."""
from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import psycopg2
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from app.infra import queries as q
from app.model import store as modelstore
from cli.main import main
from harness.databases import scratch_database
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TRAIN_LOCK_KEY, TrainConfig, run_training
from jobs.training import practice_job, split

pytestmark = pytest.mark.slow  # trains models (make test-fast leaves it out)

FAST = TrainConfig(max_trials=1, min_interactions=200, max_eval_users=120)


@pytest.fixture(scope="module")
def demo_db(servers):
    """One database with the default demo (what `make run` loads), shared by this module's tests;
    tests that change models use their own tag so they cannot disturb each other."""
    with scratch_database(servers[0], "adaptrec_train") as url:
        conn = psycopg2.connect(url)
        generate_demo(conn, DemoConfig(seed=3))
        conn.close()
        yield url


@pytest.fixture
def db_url(demo_db):
    return demo_db


@pytest.fixture
def demo(demo_db):
    conn = psycopg2.connect(demo_db)
    yield conn
    conn.close()


def tagged(config: TrainConfig = FAST) -> TrainConfig:
    return replace(config, tag=f"t-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def root_trained(demo_db):
    """The demo's root unit trained once (both objectives) under a tag of its own, for the tests
    that read its models or train a unit beneath it (training the root takes the longest)."""
    config = tagged()
    return config, run_training(demo_db, config, units=["demo"], progress=False)


def subject(conn) -> str:
    return _first(conn, "SELECT unit_id FROM units WHERE kind = 'subject' ORDER BY unit_id LIMIT 1")


def chapter(conn) -> str:
    return _first(conn, "SELECT unit_id FROM units WHERE kind = 'chapter' ORDER BY unit_id LIMIT 1")


def _first(conn, sql, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def test_training_recovers_the_known_item_difficulties(demo, db_url):
    unit = subject(demo)
    report = run_training(db_url, FAST, units=[unit], progress=False)
    practice = [o for o in report.outcomes if o.objective == "practice"]
    assert [o.status for o in practice] == ["activated"], report.table()
    model = modelstore.load_active(demo, "default", unit, "practice")
    e = model.artifact.embedding
    with demo.cursor() as cur:
        cur.execute("SELECT item_id, (attrs->>'true_difficulty')::float FROM items WHERE item_id = ANY(%s)",
                    (e.item_ids,))
        truth = dict(cur.fetchall())
    # An average learner's logit for each item: the model's notion of easiness.
    easiness = e.item_vectors @ e.prior_mean[:-1] + e.item_biases
    questions = [i for i, item_id in enumerate(e.item_ids) if truth.get(item_id) is not None]
    rho = spearmanr(easiness[questions], [-truth[e.item_ids[i]] for i in questions]).statistic
    assert rho >= 0.9
    assert model.metrics["model"]["auc"] > model.metrics["baseline"]["auc"] - 0.01


def test_all_units_train_and_models_lists_them_beside_the_baseline(demo, db_url, redis_url, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    monkeypatch.setenv("ADAPTREC_TRAIN_MAX_TRIALS", "1")
    monkeypatch.setenv("ADAPTREC_TRAIN_MAX_EVAL_USERS", "60")
    monkeypatch.setenv("ADAPTREC_TRAIN_MIN_INTERACTIONS", "45000")
    assert main(["train", "--all", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "activated" in out
    assert main(["models", "--verbose"]) == 0
    listing = capsys.readouterr().out
    assert "practice" in listing and "engagement" in listing and "demo" in listing
    # how each practice model was chosen: its candidates on dev (in jsonb's key order)
    assert "dev log-loss / AUC: " in listing and "embedding 0." in listing and "1pl 0." in listing
    assert "skill offsets (sd, half-life): dev log-loss " in listing     # the demo root spans many sections
    active = q.fetch_all(demo, "list_models", tenant="default", include_retired=False)
    assert all(r["status"] == "active" for r in active)
    assert {"demo"} <= {r["unit_id"] for r in active}


def test_a_crash_mid_training_leaves_the_previous_model_active(demo, db_url, monkeypatch):
    unit, config = chapter(demo), tagged()
    run_training(db_url, config, units=[unit], progress=False)
    before = modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["model_id"]

    def crash(*args, **kwargs):
        raise MemoryError("simulated crash while training")

    monkeypatch.setattr(practice_job, "train_practice", crash)
    report = run_training(db_url, config, units=[unit], progress=False)
    failed = [o for o in report.outcomes if o.objective == "practice"]
    assert failed[0].status == "failed" and "simulated crash" in failed[0].reason
    assert modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["model_id"] == before


def test_a_crash_between_storing_and_activating_serves_the_old_model(demo, db_url, monkeypatch):
    unit, config = chapter(demo), tagged()
    run_training(db_url, config, units=[unit], progress=False)
    before = modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["model_id"]
    monkeypatch.setattr(modelstore, "activate",
                        lambda conn, tenant, model_id: (_ for _ in ()).throw(OSError("killed")))
    report = run_training(db_url, config, units=[unit], progress=False)
    assert any(o.status == "failed" and "killed" in o.reason for o in report.outcomes), report.table()
    assert modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["model_id"] == before
    monkeypatch.undo()
    # The next run succeeds. The margin keeps this about the crash, not about whether LightFM's
    # threads (not reproducible) trained a model a little worse than the last one.
    report = run_training(db_url, replace(config, margin=1.0), units=[unit], progress=False)
    assert modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["model_id"] != before, \
        report.table()


def test_a_worse_model_is_not_activated(demo, db_url):
    unit, config = chapter(demo), tagged()
    run_training(db_url, config, units=[unit], progress=False)
    active = modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)
    with demo.cursor() as cur:  # pretend the active model was excellent
        cur.execute("UPDATE models SET metrics = jsonb_set(metrics, '{model,auc}', '0.999') WHERE model_id = %s",
                    (active["model_id"],))
    demo.commit()
    report = run_training(db_url, config, units=[unit], progress=False)
    practice = next(o for o in report.outcomes if o.objective == "practice")
    assert practice.status == "kept_previous" and "worse than the active model" in practice.reason
    assert modelstore.active_model_summary(demo, "default", unit, "practice",
                                           config.tag)["model_id"] == active["model_id"]


def test_the_job_hands_each_units_fitted_arrays_and_trained_learner_vectors_to_on_result(demo, db_url):
    unit, config = chapter(demo), tagged()
    results = []
    report = run_training(db_url, config, units=[unit], progress=False, on_result=results.append)
    assert [r.outcome for r in results] == report.outcomes
    practice = next(r for r in results if r.outcome.objective == "practice")
    stored = modelstore.load_model(demo, "default", practice.outcome.model_id)
    demo.rollback()
    assert practice.artifact == stored.artifact            # every part, as the job fitted it
    # One trained vector per learner of the final refit, whose [u, b_u] the stored prior averages:
    # the unit's train and dev learners (its test learners are held out of the stored model).
    n_users, dim = practice.counts["trained_users"], stored.artifact.embedding.dim
    assert len(set(practice.user_ids)) == n_users and practice.user_vectors.shape == (n_users, dim)
    assert n_users == practice.counts["train_users"] + practice.counts["dev_users"] < practice.counts["users"]
    assert (split.roles(practice.user_ids) != split.TEST).all()
    learners_mean = np.r_[practice.user_vectors.mean(axis=0), practice.user_biases.mean()]
    np.testing.assert_allclose(stored.artifact.embedding.prior_mean, learners_mean, rtol=1e-5, atol=1e-6)


def test_only_one_training_job_runs_at_a_time(demo, db_url, redis_url, monkeypatch, capsys):
    holder = psycopg2.connect(db_url)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
    try:
        assert run_training(db_url, FAST, units=[chapter(demo)], progress=False).locked_out
        monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
        monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
        assert main(["train", "--all", "--quiet"]) == 0
        assert "another training job is running" in capsys.readouterr().err
    finally:
        holder.close()


@pytest.mark.parametrize("mode", ["mf", "partial", "full"])
def test_each_mode_serves_vectors_for_every_item_under_the_unit(demo, db_url, mode):
    unit = _first(demo, "SELECT unit_id FROM units WHERE kind = 'chapter' ORDER BY unit_id LIMIT 1")
    # an item nobody has touched yet, under that unit
    with demo.cursor() as cur:
        section = _first(demo, "SELECT child FROM unit_children WHERE parent = %s ORDER BY child LIMIT 1", unit)
        cur.execute("INSERT INTO items (item_id, kind, title, attrs) VALUES ('fresh-q', 'question', 'Fresh', "
                    "'{\"difficulty_label\": \"hard\"}') ON CONFLICT DO NOTHING")
        cur.execute("INSERT INTO unit_items (unit_id, item_id) VALUES (%s, 'fresh-q') ON CONFLICT DO NOTHING",
                    (section,))
    demo.commit()
    config = tagged(TrainConfig(max_trials=1, mode=mode, max_eval_users=60))
    report = run_training(db_url, config, units=[unit], progress=False)
    assert {o.status for o in report.outcomes} == {"activated"}, report.table()
    model = modelstore.load_active(demo, "default", unit, "practice", config.tag)
    expected = [r["item_id"] for r in q.fetch_all(demo, "unit_items_for_training", tenant="default", unit_id=unit)]
    e = model.artifact.embedding
    assert e.item_ids == expected and "fresh-q" in e.item_ids
    assert model.mode == mode and np.isfinite(e.item_vectors).all() and np.isfinite(e.item_biases).all()
    assert e.item_vectors.shape == (len(expected), e.dim)


def test_calibration_lowers_held_out_ece(demo, root_trained):
    unit, (config, _) = "demo", root_trained
    metrics = modelstore.active_model_summary(demo, "default", unit, "practice", config.tag)["metrics"]
    assert metrics["model"]["ece"] < metrics["model_uncalibrated_ece"]


def test_engagement_model_stores_the_blend_and_beats_popularity(demo, root_trained):
    config, report = root_trained
    engagement = next(o for o in report.outcomes if o.objective == "engagement")
    assert engagement.status == "activated", report.table()
    model = modelstore.load_active(demo, "default", "demo", "engagement", config.tag)
    m = model.metrics
    assert m["model"]["precision_at_10"] >= m["baseline"]["precision_at_10"]
    blend = model.artifact.blend
    assert 0.0 <= blend.weight <= 1.0
    if blend.weight < 1.0:
        n = len(model.artifact.embedding.item_ids)      # EASE as each item's top-k source items (issue 15)
        assert sp.isspmatrix_csr(blend.item_weights) and blend.item_weights.shape == (n, n)
        assert blend.item_weights.nnz == n * min(config.ease_neighbours, n - 1)


def test_a_unit_is_served_by_its_ancestor_when_that_predicts_its_dev_learners_better(demo, db_url, root_trained):
    """One run trains the root, then a chapter under it: the chapter's model and the root's are
    compared on the chapter's dev attempts, and the better one serves the chapter."""
    config = root_trained[0]
    unit = chapter(demo)
    report = run_training(db_url, config, units=["demo", unit], progress=False)
    outcome = next(o for o in report.outcomes if o.objective == "practice" and o.unit_id == unit)
    ancestor = outcome.metrics["ancestor_dev"]
    assert ancestor["unit_id"] == "demo" and ancestor["attempts"] >= practice_job.MIN_DEV_ATTEMPTS
    assert 0 < ancestor["learners"] <= ancestor["attempts"]
    nearest = q.fetch_one(demo, "nearest_active_models", tenant="default", unit_ids=[unit], objective="practice",
                          tag=config.tag)
    if not ancestor["own_serves"]:
        assert outcome.status == "parent_serves" and "'demo'" in outcome.reason and nearest["unit_id"] == "demo"
        assert modelstore.active_model_summary(demo, "default", unit, "practice", config.tag) is None
    else:
        assert outcome.status == "activated" and nearest["unit_id"] == unit
    assert not report.failed  # a decision, not a failure: the job exits 0
    assert outcome.metrics["parent"]["unit_id"] == "demo"    # the test-learner comparison, for the record


def test_a_unit_trained_alone_keeps_its_own_model(demo, db_url, root_trained, monkeypatch):
    """Without tonight's dev predictions of the unit above, nothing decides against the unit's own
    model: the test-learner comparison is recorded, never used to choose."""
    config = root_trained[0]
    unit = chapter(demo)
    monkeypatch.setattr(practice_job, "replay_auc", lambda *a, **k: 0.999)
    report = run_training(db_url, config, units=[unit], progress=False)
    outcome = next(o for o in report.outcomes if o.objective == "practice")
    assert outcome.status == "activated" and outcome.metrics["parent"]["auc"] == 0.999
    assert "ancestor_dev" not in outcome.metrics


def test_an_engagement_model_needs_enough_engaged_items(demo):
    """A section has two lessons (the only items anyone engages with): practice model only; a
    subject's 48 lessons make an engagement model too; a unit asked for by name trains anyway."""
    from jobs.train import model_units

    section = _first(demo, "SELECT unit_id FROM units WHERE kind = 'section' ORDER BY unit_id LIMIT 1")
    chosen = model_units(demo, TrainConfig(min_interactions=100))
    assert (section, "practice", "mf") in chosen and (section, "engagement", "mf") not in chosen
    assert (subject(demo), "engagement", "mf") in chosen
    assert (section, "engagement", "mf") in model_units(demo, TrainConfig(), requested=[section])
    assert (section, "engagement", "mf") in model_units(demo, TrainConfig(min_engaged_items=2))


def test_a_unit_over_the_attempt_cap_trains_on_a_sample_of_its_learners(demo, db_url):
    """ADAPTREC_TRAIN_MAX_ATTEMPTS: a hash sample of learners, about the cap's worth of attempts;
    the same learners on every run; the share is recorded with the model's counts."""
    unit = chapter(demo)
    counts = []
    for cap in (0, 3000, 3000):
        run_training(db_url, replace(tagged(), max_attempts=cap, prefer_parent=False), units=[unit], progress=False,
                     on_result=lambda r: counts.append(r.counts) if r.outcome.objective == "practice" else None)
    full, sampled, again = counts
    assert full["learner_share"] == 1.0 and 0 < sampled["learner_share"] < 1
    assert sampled["attempts"] < full["attempts"] and sampled["users"] < full["users"]
    assert abs(sampled["users"] / full["users"] - sampled["learner_share"]) < 0.15   # a fair sample of learners
    assert again == sampled

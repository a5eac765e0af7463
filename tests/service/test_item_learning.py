"""Item difficulty learned between trainings (issue 25): the numbers (app.online.item_offsets), the
Redis step (app.serving.item_learning) and the service that learns from its events routes and
serves what every worker learned, against real Postgres and Redis; bench.replay's replay applies
the same steps as the API."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from app.catalogue import catalog
from app.catalogue.ingest import ingest_interactions
from app.catalogue.records import Interaction, Item, Unit
from app.infra.cache import Cache
from app.model import store as modelstore
from app.model.artifact import Calibration, Embedding, ModelArtifact
from app.model.store import StoredModel
from app.online import item_offsets
from app.online.scoring import ServingModel
from app.serving import item_learning
from app.serving.model_cache import ModelCache
from app.serving.recommend import RequestContext, predict
from bench.replay.setup import ROOT, attempt_time

BIASES = np.array([1.0, 0.5, 0.0, -0.5, 1.0, 0.5, 0.0, -0.5])   # the model's (calibrated) logit of each item
KNOWN, NEW = ("k0", "k1", "k2", "k3"), ("n0", "n1", "n2", "n3")  # trained on 5,000 attempts each / on none
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def course_artifact(item_sd: float | None = 0.3) -> ModelArtifact:
    n = len(BIASES)
    embedding = Embedding([*KNOWN, *NEW], np.zeros((n, 1)), BIASES, np.zeros(2), np.diag([0.01, 0.25]))
    return ModelArtifact(embedding, Calibration("platt", 1.0, 0.0, item_sd=item_sd),
                         item_attempts=np.array([5000] * 4 + [0] * 4))


# ---- the numbers -----------------------------------------------------------------------------------
def test_the_prior_is_the_models_error_plus_what_training_left_unknown():
    p0 = item_offsets.prior_precision(np.array([0, 10, 100, 10_000]), spread=1.5, item_sd=0.3)
    assert np.all(np.diff(p0) > 0)                                       # more attempts, a firmer prior
    np.testing.assert_allclose(1 / p0[0], 0.09 + 1.5)                    # never seen: the whole spread
    assert 1 / p0[-1] == pytest.approx(0.09, abs=0.001)                   # well known: the model's own error
    assert item_offsets.prior_precision(np.array([0]), 2.0, None)[0] == pytest.approx(0.5)
    assert item_offsets.difficulty_spread(np.array([0.3])) == 1.0


def test_the_steps_find_an_items_true_offset():
    rng = np.random.default_rng(3)
    for true in (-1.5, 0.0, 0.8):
        delta, precision = 0.0, float(item_offsets.prior_precision(np.array([0]), 1.0, 0.3)[0])
        for z in rng.normal(0.5, 1.0, 3000):                # learners' logits on the item as the model has it
            p = 1 / (1 + np.exp(-(z + delta)))
            y = float(rng.random() < 1 / (1 + np.exp(-(z + true))))
            delta, precision = item_offsets.update(delta, precision, y, p)
        assert delta == pytest.approx(true, abs=0.12)
        assert 1 / np.sqrt(precision) < 0.05


def test_the_redis_step_is_the_numpy_step(servers, redis_prefix):
    cache = Cache(servers[1], prefix=redis_prefix)
    model = course_model_served(cache)
    rng = np.random.default_rng(1)
    batch = [(f"n{k % 4}", int(rng.random() < 0.4), float(rng.uniform(0.2, 0.9)), 0.7) for k in range(40)]
    item_learning._step(cache, "default", model, batch)
    expected: dict[str, tuple[float, float]] = {}
    for item, y, p, p0 in batch:
        expected[item] = item_offsets.update(*expected.get(item, (0.0, p0)), y, p)
    held = cache.client.hgetall(item_learning._keys(cache, "default", model.identity)[0])
    for item, (delta, precision) in expected.items():
        got = [float(x) for x in held[item.encode()].split()]
        np.testing.assert_allclose(got, [delta, precision], rtol=0, atol=1e-12)
        assert model.item_offsets[model.index[item]] == pytest.approx(delta, abs=1e-12)   # this worker has it at once
    cache.close()


def course_model_served(cache):
    return ServingModel.from_stored(StoredModel(77, "course", "practice", "mf", "default", course_artifact()))


# ---- the service -------------------------------------------------------------------------------------
@pytest.fixture
def course(app, conn):
    with conn:
        catalog.upsert_units(conn, "default", [Unit(unit_id=ROOT, children=["chapter"]), Unit(unit_id="chapter")])
        catalog.upsert_items(conn, "default", [Item(item_id=i, units=["chapter"]) for i in (*KNOWN, *NEW, "later")])
        model_id = modelstore.save_model(conn, "default", course_artifact(),
                                         modelstore.ModelMeta(ROOT, "practice", "mf"))
        modelstore.activate(conn, "default", model_id)
    return model_id


def attempts(users: list[str], item: str, outcome: int, start: datetime = T0) -> dict:
    return {"interactions": [{"event_id": f"{u}-{item}-{start.isoformat()}", "user_id": u, "item_id": item,
                              "kind": "attempt", "outcome": outcome,
                              "occurred_at": (start + timedelta(minutes=k)).isoformat()} for k, u in enumerate(users)]}


def p_of(client, auth, user: str, items: list[str]) -> dict[str, float]:
    r = client.post("/v1/predictions", json={"user_id": user, "units": [ROOT], "item_ids": items}, headers=auth)
    assert r.status_code == 200, r.get_json()
    return {i["item_id"]: i["p"] for i in r.get_json()["items"]}


def test_a_cohort_failing_a_new_item_makes_it_hard_for_the_next_learner(app, client, auth, course):
    before = p_of(client, auth, "fresh", [*KNOWN, *NEW, "later"])
    assert before["n0"] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.02)    # as trained: an easy item
    cohorts = {item: [f"{item}-learner{k}" for k in range(30)] for item in ("n0", "k0", "later")}   # all new
    for hours, (item, cohort) in enumerate(cohorts.items()):
        r = client.post("/v1/interactions", json=attempts(cohort, item, 0, T0 + timedelta(hours=hours)), headers=auth)
        assert r.status_code == 201
    after = p_of(client, auth, "fresh", [*KNOWN, *NEW, "later"])
    # a learner without history is predicted at sigmoid(the item's logit + its offset so far)
    for item, n in (("n0", 0), ("k0", 5000), ("later", 0)):
        z = BIASES[0] if item != "later" else BIASES.mean()      # "later": the average item
        delta, precision = 0.0, float(item_offsets.prior_precision(np.array([n]), np.var(BIASES), 0.3)[0])
        for _ in cohorts[item]:
            delta, precision = item_offsets.update(delta, precision, 0.0, 1 / (1 + np.exp(-(z + delta))))
        assert after[item] == pytest.approx(1 / (1 + np.exp(-(z + delta))), abs=1e-6)   # the API rounds p
    assert after["n0"] < before["n0"] - 0.4          # 30 failures on an item the model never saw: now a hard one
    # the same on an item trained on 5,000 attempts: it moves by the model's own error (item_sd), less
    assert 0 < before["k0"] - after["k0"] < before["n0"] - after["n0"]
    assert after["later"] < before["later"] - 0.3    # an item newer than the model learns too
    for item in ("k1", "k2", "n1", "n2"):             # nobody attempted these since training
        assert after[item] == pytest.approx(before[item], abs=1e-9)


def test_every_worker_serves_what_one_learned_and_repeats_teach_nothing(app, client, auth, conn, course):
    services = app.extensions["adaptrec"]
    client.post("/v1/interactions", json=attempts([f"c{k}" for k in range(20)], "n1", 1), headers=auth)
    other = ModelCache()      # another worker's models: it reads the offsets from Redis
    with conn:
        mine = predict(RequestContext(conn, "default", services.cache, services.models), "fresh", [ROOT], ["n1"])
        theirs = predict(RequestContext(conn, "default", services.cache, other), "fresh", [ROOT], ["n1"])
    assert mine.as_json()["items"][0]["p"] == pytest.approx(theirs.as_json()["items"][0]["p"], abs=1e-12)
    assert mine.as_json()["items"][0]["p"] > 1 / (1 + np.exp(-0.5)) + 0.1
    with conn:
        key = item_learning._keys(services.cache, "default", services.models.get(conn, "default", course).identity)[0]
    held = services.cache.client.hget(key, "n1")
    again = attempts([f"c{k}" for k in range(20)], "n1", 0, T0 + timedelta(days=1))   # the same learners, again
    assert client.post("/v1/interactions", json=again, headers=auth).status_code == 201
    assert services.cache.client.hget(key, "n1") == held


def test_a_new_training_starts_from_its_own_knowledge(app, client, auth, conn, course):
    client.post("/v1/interactions", json=attempts([f"c{k}" for k in range(30)], "n2", 0), headers=auth)
    learned = p_of(client, auth, "fresh", ["n2"])["n2"]
    with conn:
        retrained = modelstore.save_model(conn, "default", course_artifact(),
                                          modelstore.ModelMeta(ROOT, "practice", "mf"))
        modelstore.activate(conn, "default", retrained)
    app.extensions["adaptrec"].models.clear()
    assert learned < 0.3
    assert p_of(client, auth, "fresh", ["n2"])["n2"] == pytest.approx(0.5, abs=1e-6)   # bias 0, as trained


def test_without_redis_the_attempts_are_stored_and_nothing_is_learned(app, conn, course):
    services = app.extensions["adaptrec"]
    down = Cache("redis://127.0.0.1:1/0", timeout_s=0.05)
    events = [Interaction(event_id="e1", user_id="u1", item_id="n3", kind="attempt", outcome=1, occurred_at=T0)]
    with conn:
        results = ingest_interactions(conn, "default", events)
    ctx = RequestContext(conn, "default", down, services.models)
    assert item_learning.learn(ctx, events, results) == 0
    assert item_learning.learn(RequestContext(conn, "default", services.cache, services.models), events, results) == 1
    down.close()


def test_a_model_trained_before_item_attempts_were_stored_learns_nothing(app, client, auth, conn):
    with conn:
        catalog.upsert_units(conn, "default", [Unit(unit_id=ROOT)])
        catalog.upsert_items(conn, "default", [Item(item_id=i, units=[ROOT]) for i in (*KNOWN, *NEW)])
        old = replace(course_artifact(), item_attempts=None)
        modelstore.activate(conn, "default", modelstore.save_model(conn, "default", old,
                                                                   modelstore.ModelMeta(ROOT, "practice", "mf")))
    before = p_of(client, auth, "fresh", ["n0"])["n0"]
    client.post("/v1/interactions", json=attempts([f"c{k}" for k in range(30)], "n0", 0), headers=auth)
    assert p_of(client, auth, "fresh", ["n0"])["n0"] == pytest.approx(before, abs=1e-12)


def test_the_replay_takes_the_steps_the_api_takes(app, client, auth, conn, course):
    """bench.replay predicts then ingests and learns, attempt by attempt, as a platform calling the
    API would: the same p for every attempt."""
    from bench.replay.service import replay_service

    rng = np.random.default_rng(5)
    rows = [(f"r{k % 6}", int(seq), str(rng.choice([*KNOWN, *NEW])), int(rng.random() < 0.5))
            for k, seq in enumerate(range(1, 61))]
    frame = pd.DataFrame(rows, columns=["user_id", "seq", "problem_id", "correct"])
    services = app.extensions["adaptrec"]
    replayed, _, timing, _ = replay_service(conn, services.cache, services.models, frame)
    assert timing["item_learning_steps"] > 10
    with conn:   # the same sequence through the API, for other learners on a fresh model and a fresh hash
        retrained = modelstore.save_model(conn, "default", course_artifact(),
                                          modelstore.ModelMeta(ROOT, "practice", "mf"))
        modelstore.activate(conn, "default", retrained)
    services.models.clear()
    through_api = []
    for user, seq, item, y in rows:
        through_api.append(p_of(client, auth, f"api-{user}", [item])[item])
        body = {"event_id": f"api-{user}-{seq}", "user_id": f"api-{user}", "item_id": item, "kind": "attempt",
                "outcome": y, "occurred_at": attempt_time(seq).isoformat()}
        assert client.post("/v1/interactions", json=body, headers=auth).status_code == 201
    np.testing.assert_allclose(replayed, through_api, atol=1e-12)


def test_the_models_command_says_what_each_model_learned(app, client, auth, course, db_url, redis_url, redis_prefix,
                                                         monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    monkeypatch.setenv("ADAPTREC_REDIS_PREFIX", redis_prefix)
    assert main(["models", "-v"]) == 0
    assert "items learned since training: 0" in capsys.readouterr().out
    client.post("/v1/interactions", json=attempts([f"c{k}" for k in range(10)], "n3", 0), headers=auth)
    client.post("/v1/interactions", json=attempts([f"c{k}" for k in range(10)], "k3", 1), headers=auth)
    assert main(["models", "-v"]) == 0
    out = capsys.readouterr().out
    assert "items learned since training: 2; most moved: n3 -" in out and ", k3 +" in out


def test_what_a_learner_knows_moves_with_the_items_as_recommendations_do(app, client, auth, course):
    # names of their own: learners' cached histories outlive each test's database (one Redis prefix a session)
    user = f"L-{uuid.uuid4().hex[:8]}"
    assert client.post("/v1/interactions", json=attempts([user], "k1", 1), headers=auth).status_code == 201

    def known() -> float:
        r = client.get(f"/v1/users/{user}/knowledge?units=chapter", headers=auth)
        assert r.status_code == 200, r.get_json()
        return next(u["p"] for u in r.get_json()["units"] if u["unit_id"] == "chapter")

    before = known()
    cohort = [f"{user}-cohort{k}" for k in range(30)]
    client.post("/v1/interactions", json=attempts(cohort, "n0", 0, T0 + timedelta(hours=1)), headers=auth)
    after = known()
    assert after < before - 0.03
    # the unit's p is the mean of the p a prediction gives each of its items
    assert after == pytest.approx(np.mean(list(p_of(client, auth, user, [*KNOWN, *NEW, "later"]).values())), abs=2e-6)


@pytest.mark.parametrize("mode", ["few", "off"])
def test_the_operator_chooses_which_items_learn(app, conn, course, mode):
    """ADAPTREC_ITEM_LEARNING: `few` moves only what training left unknown, `off` nothing."""
    from app.config import Settings

    assert Settings.from_env({"ADAPTREC_ITEM_LEARNING": mode}).item_learning == mode
    services = app.extensions["adaptrec"]
    models = ModelCache(mode)
    events = [Interaction(event_id=f"{mode}-{k}-{item}", user_id=f"{mode}-u{k}-{uuid.uuid4().hex[:6]}",
                          item_id=item, kind="attempt", outcome=0, occurred_at=T0) for k in range(20)
              for item in ("k2", "n2")]
    with conn:
        results = ingest_interactions(conn, "default", events)
    steps = item_learning.learn(RequestContext(conn, "default", services.cache, models), events, results)
    with conn:
        p = predict(RequestContext(conn, "default", services.cache, models), "fresh", [ROOT], ["k2", "n2"]).p
    if mode == "off":
        assert steps == 0 and p == pytest.approx([0.5, 0.5], abs=1e-12)
        return
    assert steps == 40
    assert p[0] == pytest.approx(0.5, abs=0.01)    # 5,000 training attempts: a prior sd of 0.03, barely moved
    assert p[1] < 0.25                             # never trained on: moved by its 20 failures (from 0.5)


def test_a_bad_setting_says_what_to_write():
    from app.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="ADAPTREC_ITEM_LEARNING must be one of all, few, off"):
        Settings.from_env({"ADAPTREC_ITEM_LEARNING": "some"})


def test_a_backfill_batch_is_left_to_the_nightly_job(app, client, auth, course):
    """More than LEARN_MAX_EVENTS events in one request: stored, not learned from (a live fit per
    attempt would hold a worker; the next training sees them)."""
    cohort = [f"backfill-{uuid.uuid4().hex[:6]}-{k}" for k in range(item_learning.LEARN_MAX_EVENTS + 1)]
    before = p_of(client, auth, "fresh", ["n1"])["n1"]
    r = client.post("/v1/interactions", json=attempts(cohort, "n1", 0), headers=auth)
    assert r.status_code == 201 and r.get_json()["created"] == len(cohort)
    assert p_of(client, auth, "fresh", ["n1"])["n1"] == pytest.approx(before, abs=1e-12)


def test_which_models_serve_and_learn_is_read_again_only_when_the_catalogue_or_the_models_change(
        conn, course, monkeypatch):
    from app.catalogue.candidates import catalog_version
    from app.infra import queries as q
    from app.serving import model_cache

    recursive = []
    real_tuples, real_one = q.fetch_tuples, q.fetch_one
    monkeypatch.setattr(q, "fetch_tuples", lambda c, name, **kw: (recursive.append(name) if name ==
                        "practice_models_of_items" else None) or real_tuples(c, name, **kw))
    monkeypatch.setattr(q, "fetch_one", lambda c, name, **kw: (recursive.append(name) if name ==
                        "nearest_active_models" else None) or real_one(c, name, **kw))
    monkeypatch.setattr(model_cache, "ACTIVE_TTL_S", 0.0)    # the active models re-read at every call
    models = ModelCache()

    def serving(unit):
        return models.nearest(conn, "default", [unit], "practice", catalogue_version=catalog_version(conn, "default"))

    with conn:
        for _ in range(3):
            assert models.practice_models_of(conn, "default", ["n0", "k0"], catalog_version(conn, "default")) \
                == {"n0": (course,), "k0": (course,)}
            assert serving("chapter").model_id == course
    assert recursive == ["practice_models_of_items", "nearest_active_models"]   # once, however many requests
    with conn:   # a model of the chapter: the items under it now teach two models
        chapter = modelstore.save_model(conn, "default", course_artifact(), modelstore.ModelMeta("chapter", "practice",
                                                                                                 "mf"))
        modelstore.activate(conn, "default", chapter)
        assert models.practice_models_of(conn, "default", ["n0"], catalog_version(conn, "default")) \
            == {"n0": (course, chapter)}
        assert serving("chapter").model_id == chapter
        catalog.upsert_units(conn, "default", [Unit(unit_id="aside")])   # a new unit with an item of its own
        catalog.upsert_items(conn, "default", [Item(item_id="n0", units=["chapter", "aside"])])
        version = catalog_version(conn, "default")
        assert models.practice_models_of(conn, "default", ["n0", "k0"], version) == {"n0": (course, chapter),
                                                                                     "k0": (course, chapter)}
    assert recursive.count("practice_models_of_items") == 3 and recursive.count("nearest_active_models") == 2

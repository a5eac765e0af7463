"""GET /v1/experiments/{name}/results (issue 27) on real Postgres: an experiment of three learners
whose every figure is worked out by hand below, the yardstick frozen at the version's start, a
change of variants starting a new version, and clear 404s."""
from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.catalogue import catalog
from app.catalogue.ingest import record_interactions
from app.catalogue.records import Interaction, Item, Unit, User
from app.model import store as modelstore
from app.model.artifact import Embedding, ModelArtifact
from tests.unit.test_experiment_stats import attempts, reference_learning

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)    # the experiment's version 1 starts
ITEMS = ("i0", "i1", "i2", "i3", "i4", "i5")
LN3 = math.log(3.0)                             # i4's logit: p = 0.75 for the average learner


def model(biases) -> ModelArtifact:
    """A 1PL-like practice model: no vector dimension to speak of, calibration a = 1, b = 0, so an
    item's logit for the average learner is its bias."""
    n = len(ITEMS)
    embedding = Embedding(list(ITEMS), np.zeros((n, 1)), np.array(biases, dtype=float), np.zeros(2),
                          np.diag([0.01, 1.0]))
    return ModelArtifact.from_json(embedding, {"a": 1.0, "b": 0.0}, {}, "practice")


def at(minutes: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def log(conn, user: str, variant: str, when: datetime, items: dict[str, float], experiment: str = "exp") -> None:
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO recommendation_log (tenant, request_id, user_id, units, experiment, variant, strategy,"
                    " item_ids, scores, created_at) VALUES ('default', 'r', %s, ARRAY['u'], %s, %s, 'target', %s, %s,"
                    " %s)", (user, experiment, variant, list(items), list(items.values()), when))


@pytest.fixture
def experiment(app, client, auth, conn):
    """Unit u (items i0..i5, mastery threshold 0.4) under `course`, which holds the practice model,
    with a cycle back (u is course's parent too); experiment `exp`, variants a and b, from T0."""
    cache = app.extensions["adaptrec"].cache
    with conn:
        catalog.upsert_units(conn, "default", [Unit(unit_id="course", children=["u"]),
                                               Unit(unit_id="u", attrs={"mastery": {"threshold": 0.4}})])
        catalog.upsert_items(conn, "default", [Item(item_id=i, units=["u"]) for i in ITEMS])
        catalog.upsert_users(conn, "default", [User(user_id=u) for u in ("a1", "a2", "b1", "c1")])
        with conn.cursor() as cur:
            cur.execute("INSERT INTO unit_children (tenant, parent, child) VALUES ('default', 'u', 'course')")
        frozen = modelstore.save_model(conn, "default", model([0, 0, 0, 0, LN3, 0]),
                                       modelstore.ModelMeta("course", "practice", "mf"))
        modelstore.activate(conn, "default", frozen)
        with conn.cursor() as cur:
            cur.execute("UPDATE models SET activated_at = %s WHERE model_id = %s", (at(days=-5), frozen))
    # retrained mid-run: every item 2 logits easier; the yardstick must not move
    with conn:
        later = modelstore.save_model(conn, "default", model([2.0] * 6),
                                      modelstore.ModelMeta("course", "practice", "mf"))
        modelstore.activate(conn, "default", later)
        with conn.cursor() as cur:
            cur.execute("UPDATE models SET activated_at = %s WHERE model_id = %s", (at(days=1), later))
    answer = client.put("/v1/experiments/exp", headers=auth, json={"variants": [
        {"name": "a", "weight": 1, "strategy": "target"}, {"name": "b", "weight": 1, "strategy": "target"}]})
    assert answer.status_code == 200, answer.json
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE experiment_versions SET started_at = %s WHERE name = 'exp'", (T0,))

    log(conn, "a1", "a", at(1), {"i0": 0.6})
    log(conn, "a1", "a", at(10), {"i9": 0.5})            # a second answer (exposure), its item never attempted
    log(conn, "a2", "a", at(1), {"i1": 0.5})
    log(conn, "b1", "b", at(1), {"i0": 0.7})
    events = [("a1", "i5", 1, at(days=-2)),                                   # before joining: not counted
              ("a1", "i0", 0, at(2)), ("a1", "i1", 0, at(3)), ("a1", "i2", 1, at(4)), ("a1", "i3", 1, at(5)),
              ("a1", "i5", 1, at(6)),                                         # a repeat: not a first attempt
              ("a2", "i0", 1, at(2)), ("a2", "i1", 1, at(3)),
              ("a2", "i4", 0, at(3, days=2)),                                 # back after two days
              ("b1", "i0", 1, at(2)), ("b1", "i1", 1, at(3)), ("b1", "i2", 1, at(4)), ("b1", "i3", 1, at(5))]
    record_interactions(conn, "default", cache, [
        Interaction(event_id=f"{u}-{k}", user_id=u, item_id=i, outcome=o, occurred_at=t)
        for k, (u, i, o, t) in enumerate(events)], now=at(days=30))
    return {"frozen": frozen, "later": later, "cache": cache}


def results(client, auth, query: str = "") -> dict:
    answer = client.get(f"/v1/experiments/exp/results{query}", headers=auth)
    assert answer.status_code == 200, answer.json
    return answer.json


def test_results_give_the_hand_worked_figures_of_each_variant(client, auth, experiment):
    got = results(client, auth)
    a, b = got["variants"]
    assert (got["experiment"], got["version"]) == ("exp", 1)
    assert got["yardstick"]["model_ids"] == [experiment["frozen"]]   # active at T0, not the retrained one
    assert (a["variant"], a["learners"], a["answers"], a["attempts"]) == ("a", 2, 3, 8)
    assert (b["variant"], b["learners"], b["answers"], b["attempts"]) == ("b", 1, 1, 4)
    assert a["success_rate"] == pytest.approx(5 / 8) and b["success_rate"] == 1.0
    # learning, on first attempts at new items (a1's repeat of i5 left out) against the earlier attempts at
    # the skill: the penalised likelihood's slope, by the plain reference fit of the unit tests
    a_rows = attempts(learner=[0, 0, 0, 0, 0, 1, 1, 1], first=[True] * 4 + [False] + [True] * 3,
                      outcome=[0, 0, 1, 1, 1, 1, 1, 0], logit=[0, 0, 0, 0, 0, 0, 0, LN3])
    a_learning = reference_learning(a_rows)
    assert a_learning > 0                                       # a1 went from wrong to right on p .5 items
    assert a["learning"]["estimate"] == pytest.approx(a_learning, abs=1e-5)
    assert b["learning"]["estimate"] == pytest.approx(0.0, abs=1e-9)   # always right on p .5 items: flat
    # retention: a1's first attempt in u after two days away (i0, wrong, p .5) and a2's return (i4, wrong, p .75)
    assert a["retention"]["estimate"] == pytest.approx((-0.5 - 0.75) / 2, abs=1e-6)
    assert b["retention"]["estimate"] is None
    # mastery at u's threshold 0.4: b1 right three times (theta .867, info 1.714: low sigmoid(-.389) = .404);
    # a's learners never (8 attempts, none mastered)
    assert b["attempts_to_mastery"]["estimate"] == 3.0
    assert a["attempts_to_mastery"]["estimate"] is None
    # calibration, observed - logged p on the recommended items attempted within 24 h
    assert a["calibration"]["estimate"] == pytest.approx(((0 - 0.6) + (1 - 0.5)) / 2, abs=1e-6)
    assert b["calibration"]["estimate"] == pytest.approx(1 - 0.7, abs=1e-6)
    assert a["versus_first"] is None
    assert b["versus_first"]["learning"]["estimate"] == pytest.approx(-a_learning, abs=1e-5)
    srm = got["guardrails"]["sample_ratio_mismatch"]
    assert srm["chi2"] == pytest.approx(1 / 3, abs=1e-4) and not srm["flagged"]
    assert srm["p_value"] == pytest.approx(math.erfc(math.sqrt(1 / 6)), rel=1e-6)
    assert got["guardrails"]["too_few_learners"] == ["a", "b"]
    assert got["guardrails"]["attempts_without_frozen_difficulty"] == 0
    assert got["verdict"] == "the data cannot tell yet: a, b have fewer than 100 learners."


def test_a_change_of_variants_starts_a_version_and_results_split_by_it(client, auth, conn, experiment):
    same = client.put("/v1/experiments/exp", headers=auth, json={"variants": [
        {"name": "a", "weight": 1, "strategy": "target"}, {"name": "b", "weight": 1, "strategy": "target"}]})
    assert same.status_code == 200
    assert [v["version"] for v in results(client, auth)["versions"]] == [1]   # same variants: same version
    changed = client.put("/v1/experiments/exp", headers=auth, json={"variants": [
        {"name": "a", "weight": 1, "strategy": "target"}, {"name": "c", "weight": 3, "strategy": "target"}]})
    assert changed.status_code == 200
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE experiment_versions SET started_at = %s WHERE name = 'exp' AND version = 2", (at(days=10),))
    log(conn, "c1", "c", at(days=11), {"i0": 0.5})
    record_interactions(conn, "default", experiment["cache"], [
        Interaction(event_id="c1-0", user_id="c1", item_id="i0", outcome=1, occurred_at=at(days=11, minutes=1)),
        Interaction(event_id="a1-late", user_id="a1", item_id="i4", outcome=1, occurred_at=at(days=12))],
        now=at(days=30))
    latest = results(client, auth)
    assert latest["version"] == 2 and [v["variants"] for v in latest["versions"]] == [["a", "b"], ["a", "c"]]
    assert [(v["variant"], v["learners"], v["attempts"]) for v in latest["variants"]] == [("a", 0, 0), ("c", 1, 1)]
    assert latest["guardrails"]["sample_ratio_mismatch"]["expected_shares"] == {"a": 0.25, "c": 0.75}
    first = results(client, auth, "?version=1")
    # a1's attempt after version 2 began is not version 1's: the figures stay the hand-worked ones
    assert [v["attempts"] for v in first["variants"]] == [8, 4]
    assert first["ended_at"] == at(days=10).isoformat()


def test_unknown_experiments_and_versions_are_clear_404s(client, auth, experiment):
    missing = client.get("/v1/experiments/nope/results", headers=auth)
    assert missing.status_code == 404 and "no experiment 'nope'" in missing.json["detail"]
    version = client.get("/v1/experiments/exp/results?version=7", headers=auth)
    assert version.status_code == 404 and "its versions are 1" in version.json["detail"]
    bad = client.get("/v1/experiments/exp/results?version=first", headers=auth)
    assert bad.status_code == 422 and "version" in json.dumps(bad.json)

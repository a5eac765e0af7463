"""Online recommendations on the demo data with trained models, against real Postgres and Redis."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import numpy as np
import psycopg2
import pytest

from app.api.factory import close as close_app
from app.api.factory import create_app
from harness.databases import scratch_database
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TrainConfig, run_training
from tests.conftest import TEST_API_KEY

pytestmark = pytest.mark.slow  # trains the models it serves


@pytest.fixture(scope="module")
def served_db(servers):
    """A database with a small demo and trained root models (practice and engagement)."""
    with scratch_database(servers[0], "adaptrec_rec") as url:
        conn = psycopg2.connect(url)
        generate_demo(conn, DemoConfig(seed=5, learners=800, attempts=80_000, engagements=20_000))
        conn.close()
        report = run_training(url, TrainConfig(max_trials=1, max_eval_users=60), units=["demo"], progress=False)
        assert {o.status for o in report.outcomes} == {"activated"}, report.table()
        yield url


@pytest.fixture
def rec_app(served_db, settings):
    application = create_app(replace(settings, database_url=served_db))
    yield application
    close_app(application)


@pytest.fixture
def api(rec_app):
    client = rec_app.test_client()
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}

    class Api:
        def post(self, path, body, **kw):
            return client.post(path, json=body, headers={**headers, **kw.get("headers", {})})

        def get(self, path, **kw):
            return client.get(path, headers={**headers, **kw.get("headers", {})})

        def put(self, path, body):
            return client.put(path, json=body, headers=headers)

        def delete(self, path):
            return client.delete(path, headers=headers)

    return Api()


def a_section(served_db) -> str:
    conn = psycopg2.connect(served_db)
    with conn.cursor() as cur:
        cur.execute("SELECT unit_id FROM units WHERE kind = 'section' ORDER BY unit_id LIMIT 1")
        unit = cur.fetchone()[0]
    conn.close()
    return unit


def fresh_user() -> str:
    return f"learner-{uuid.uuid4().hex[:8]}"


def test_a_new_learner_gets_calibrated_probabilities_from_the_prior(api, served_db):
    unit = a_section(served_db)
    r = api.post("/v1/recommendations", {"user_id": fresh_user(), "units": [unit], "n": 5})
    assert r.status_code == 200, r.json
    body = r.json
    assert len(body["items"]) == 5 and all(0 < it["p"] < 1 for it in body["items"])
    assert body["model"]["unit_id"] == "demo" and body["model"]["objective"] == "practice"
    assert body["strategy"] == "target" and body["fallback"] == "no_history" and body["history_rows"] == 0
    ps = [it["p"] for it in body["items"]]
    assert [abs(p - 0.5) for p in ps] == sorted(abs(p - 0.5) for p in ps)


def test_a_posted_attempt_changes_the_very_next_answer(api, served_db):
    unit, user = a_section(served_db), fresh_user()
    first = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 3}).json
    item = first["items"][0]["item_id"]
    for k in range(3):  # three wrong answers in a row
        r = api.post("/v1/interactions", {"event_id": f"{user}-{k}", "user_id": user, "item_id": item, "outcome": 0})
        assert r.status_code in (200, 201)
    after = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 3,
                                              "strategy": "target", "target": 0.5}).json
    assert after["history_rows"] == 3 and after["fallback"] is None
    assert item not in [it["item_id"] for it in after["items"]]  # answered wrongly moments ago: cooling down
    # the learner now looks weaker: the same item set, re-scored, has lower probabilities
    everything_before = api.post("/v1/recommendations", {"user_id": fresh_user(), "units": [unit], "n": 100}).json
    everything_after = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 100}).json
    before = {it["item_id"]: it["p"] for it in everything_before["items"]}
    later = {it["item_id"]: it["p"] for it in everything_after["items"]}
    common = set(before) & set(later)
    assert np.mean([later[i] - before[i] for i in common]) < -0.02


def test_items_solved_are_skipped_and_excluded_items_never_returned(api, served_db):
    unit, user = a_section(served_db), fresh_user()
    first = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 2}).json
    solved, excluded = first["items"][0]["item_id"], first["items"][1]["item_id"]
    assert api.post("/v1/interactions", {"event_id": f"{user}-s", "user_id": user, "item_id": solved,
                                         "outcome": 1}).status_code == 201
    again = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 10, "exclude": [excluded]}).json
    ids = [it["item_id"] for it in again["items"]]
    assert solved not in ids and excluded not in ids


def test_top_n_and_engagement_scores(api, served_db):
    r = api.get("/v1/users/demo.u0001/recommendations?n=5")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["strategy"] == "top" and len(body["items"]) == 5
    assert body["model"]["objective"] == "engagement" and all("score" in it for it in body["items"])
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_similar_items_come_from_the_model_and_exclude_the_item(api, served_db):
    unit = a_section(served_db)
    answer = api.post("/v1/recommendations", {"user_id": fresh_user(), "units": [unit], "n": 1}).json
    item = answer["items"][0]["item_id"]
    r = api.get(f"/v1/items/{item}/similar?n=5")
    assert r.status_code == 200, r.json
    sims = [it["similarity"] for it in r.json["items"]]
    assert len(sims) == 5 and sims == sorted(sims, reverse=True) and item not in [i["item_id"] for i in r.json["items"]]
    assert api.get("/v1/items/no-such-item/similar").status_code == 404


def test_trending_counts_recent_interactions(api, served_db):
    user = fresh_user()
    unit = a_section(served_db)
    item = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 1}).json["items"][0]["item_id"]
    for k in range(5):
        api.post("/v1/interactions", {"event_id": f"{user}-t{k}", "user_id": f"{user}-{k}", "item_id": item,
                                      "kind": "view"})
    r = api.get(f"/v1/trending?n=3&units={unit}&days=1")
    assert r.status_code == 200 and r.json["items"][0]["item_id"] == item
    assert r.json["items"][0]["users"] >= 5  # (other tests may have touched it too)


def test_trending_is_computed_once_a_minute_and_shared(api, served_db):
    user = fresh_user()
    unit = a_section(served_db)
    item = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 1}).json["items"][0]["item_id"]
    query = f"/v1/trending?n=2&units={unit}&days=2&half_life_days=2"
    first = api.get(query).json
    for k in range(8):  # enough fresh views to put the item on top of a fresh answer
        api.post("/v1/interactions", {"event_id": f"{user}-late{k}", "user_id": f"{user}-{k}", "item_id": item,
                                      "kind": "view"})
    assert api.get(query).json == first  # the shared answer of the last minute, not a new scan
    fresh = api.get(query.replace("days=2", "days=3")).json  # other parameters: computed now
    assert fresh["items"][0]["item_id"] == item and fresh["items"][0]["users"] >= 8


def test_experiment_routes_learners_to_named_variants_stably(api, served_db):
    unit = "demo"  # the whole catalogue: items near both targets exist
    name = f"exp-{uuid.uuid4().hex[:6]}"
    r = api.put(f"/v1/experiments/{name}", {"variants": [
        {"name": "easy", "weight": 1, "strategy": "target", "params": {"target": 0.8}},
        {"name": "hard", "weight": 1, "strategy": "target", "params": {"target": 0.3}}]})
    assert r.status_code == 200 and r.json["active"]
    seen = {}
    for k in range(20):
        user = f"exp-user-{k}"
        a = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 3, "experiment": name}).json
        b = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 3, "experiment": name}).json
        assert a["variant"] == b["variant"] and a["experiment"] == name
        seen[a["variant"]] = seen.get(a["variant"], 0) + 1
        mean_p = np.mean([it["p"] for it in a["items"]])
        assert (mean_p > 0.5) == (a["variant"] == "easy")
    assert set(seen) == {"easy", "hard"}
    assert api.post(f"/v1/experiments/{name}/stop", {}).json["active"] is False
    stopped = api.post("/v1/recommendations", {"user_id": "exp-user-1", "units": [unit], "experiment": name}).json
    assert stopped["variant"] is None


def test_every_answer_is_logged_within_a_second_at_the_time_it_was_given(api, served_db):
    user, unit = fresh_user(), a_section(served_db)
    conn = psycopg2.connect(served_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT now()")
        before = cur.fetchone()[0]
        r = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 4},
                     headers={"X-Request-Id": "req-123"})
        answered = time.monotonic()
        assert r.json["request_id"] == "req-123"
        row = None
        while row is None and time.monotonic() - answered < 3:  # written off the request path
            cur.execute("SELECT item_ids, scores, strategy, fallback, created_at, clock_timestamp() "
                        "FROM recommendation_log WHERE request_id = 'req-123'")
            row = cur.fetchone()
            time.sleep(0.02)
        waited = time.monotonic() - answered
    conn.close()
    assert row is not None and waited < 1.5, f"the answer's row took {waited:.2f} s to be written"
    items, scores, strategy, fallback, created_at, _ = row
    assert items == [it["item_id"] for it in r.json["items"]] and strategy == "target" and fallback == "no_history"
    assert np.allclose(scores, [it["p"] for it in r.json["items"]], atol=1e-5)
    assert before <= created_at <= before + timedelta(seconds=1)  # when it was answered, not written


def test_a_catalogue_change_reaches_the_next_answer(api, served_db):
    unit = a_section(served_db)
    user = fresh_user()
    before = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 100}).json
    gone = before["items"][0]["item_id"]
    assert api.get(f"/v1/items/{gone}").status_code == 200
    r = api.delete(f"/v1/items/{gone}")
    assert r.status_code == 200
    after = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 100}).json
    assert gone not in [it["item_id"] for it in after["items"]] and after["candidates"] == before["candidates"] - 1
    api.put(f"/v1/items/{gone}", {"title": "back", "active": True})


def test_redis_down_still_serves_from_postgres(served_db, settings, auth):
    app = create_app(replace(settings, database_url=served_db, redis_url="redis://127.0.0.1:1/0"))
    client = app.test_client()
    unit = a_section(served_db)
    r = client.post("/v1/recommendations", json={"user_id": "demo.u0001", "units": [unit], "n": 3}, headers=auth)
    assert r.status_code == 200 and len(r.json["items"]) == 3
    assert r.json["history_rows"] > 0           # the learner's history, read from Postgres without Redis
    ingest = client.post("/v1/interactions", json={"user_id": "demo.u0001", "item_id": r.json["items"][0]["item_id"],
                                                    "outcome": 1}, headers=auth)
    assert ingest.status_code == 201
    close_app(app)


@pytest.mark.parametrize("body, status, fragment", [
    ({"user_id": "u", "units": ["no-such-unit"]}, 422, "no-such-unit"),
    ({"user_id": "u", "units": []}, 422, "units"),
    ({"user_id": "u", "units": ["demo"], "n": 0}, 422, "n"),
    ({"user_id": "u", "units": ["demo"], "n": 101}, 422, "n"),
    ({"user_id": "u", "units": ["demo"], "strategy": "magic"}, 422, "unknown strategy"),
    ({"user_id": "u", "units": ["demo"], "target": 1.5}, 422, "target"),
    ({"user_id": "u", "units": ["demo"], "band": [0.8, 0.2]}, 422, "band"),
    ({"user_id": "u", "units": ["demo"], "experiment": "nope"}, 404, "nope"),
])
def test_bad_recommendation_requests_are_4xx(api, body, status, fragment):
    r = api.post("/v1/recommendations", body)
    assert r.status_code == status, r.json
    assert fragment in r.json["detail"] or any(fragment in e["field"] for e in r.json.get("errors", []))


@pytest.mark.parametrize("path", ["/v1/trending?n=0", "/v1/trending?days=abc", "/v1/users/u/recommendations?n=1000"])
def test_bad_query_parameters_are_422(api, path):
    r = api.get(path)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"


def test_predictions_move_after_an_attempt_is_ingested(api, served_db):
    unit, user = a_section(served_db), fresh_user()
    item = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": 1}).json["items"][0]["item_id"]
    before = api.post("/v1/predictions", {"user_id": user, "units": [unit], "item_ids": [item]}).json
    assert before["fallback"] == "no_history"
    api.post("/v1/interactions", {"event_id": f"{user}-p", "user_id": user, "item_id": item, "outcome": 1})
    after = api.post("/v1/predictions", {"user_id": user, "units": [unit], "item_ids": [item]}).json
    assert after["history_rows"] == 1 and after["items"][0]["p"] > before["items"][0]["p"]


def test_exploration_draws_the_learner_from_the_posterior_and_reports_the_estimate(api, served_db):
    """explore: the choice comes from a posterior draw seeded by the request id (the same id, the
    same answer; different ids, different answers for an unknown learner), while the p returned
    for each item is the live fit's estimate, as without exploring."""
    unit, user = a_section(served_db), fresh_user()
    body = {"user_id": user, "units": [unit], "n": 3, "target": 0.7}
    plain = api.post("/v1/recommendations", {**body, "n": 100}).json
    estimate = {it["item_id"]: it["p"] for it in plain["items"]}
    assert plain["explored"] is False
    answers = []
    for k in range(12):
        r = api.post("/v1/recommendations", {**body, "explore": True}, headers={"X-Request-Id": f"{user}-x{k}"})
        assert r.status_code == 200 and r.json["explored"] is True
        assert all(it["p"] == estimate[it["item_id"]] for it in r.json["items"])   # the estimate, not the draw
        answers.append(tuple(it["item_id"] for it in r.json["items"]))
    again = api.post("/v1/recommendations", {**body, "explore": True}, headers={"X-Request-Id": f"{user}-x0"}).json
    assert tuple(it["item_id"] for it in again["items"]) == answers[0]                # reproducible
    assert len(set(answers)) > 1                                                      # a new learner is explored
    bad = api.post("/v1/recommendations", {**body, "explore": "yes"})
    assert bad.status_code == 422 and "explore" in str(bad.json)


def test_posterior_draws_narrow_as_attempts_accumulate():
    from app.online.fit import fit_user, posterior_sample

    rng = np.random.default_rng(0)
    d = 3
    vectors = rng.normal(size=(400, d))
    biases = rng.normal(size=400)
    truth = np.array([0.5, -0.3, 0.2, 0.4])
    y = (rng.random(400) < 1 / (1 + np.exp(-(vectors @ truth[:-1] + truth[-1] + biases)))).astype(float)
    prior_mean, prior_precision = np.zeros(d + 1), np.eye(d + 1)

    def spread(n):
        theta = fit_user(vectors[:n], biases[:n], y[:n], prior_mean, prior_precision)
        draws = np.array([posterior_sample(theta, vectors[:n], biases[:n], y[:n], prior_precision, rng)
                          for _ in range(400)])
        return theta, draws

    theta0, draws0 = spread(0)
    assert np.allclose(theta0, prior_mean) and np.allclose(np.cov(draws0, rowvar=False), np.eye(d + 1), atol=0.2)
    theta, draws = spread(400)
    assert np.allclose(draws.mean(axis=0), theta, atol=0.05)
    assert np.trace(np.cov(draws, rowvar=False)) < 0.2 * np.trace(np.cov(draws0, rowvar=False))


def serve_stored(served_db, settings, conn, model_id: int, calls, **columns):
    """Store `columns` (calibration and / or extra, the JSON columns of model_arrays) on the model,
    then run `calls(post)` against a fresh app (so a fresh model cache) and return its result."""
    assert set(columns) <= {"calibration", "extra"}
    with conn, conn.cursor() as cur:
        for column, value in columns.items():
            cur.execute(f"UPDATE model_arrays SET {column} = %s WHERE model_id = %s", (json.dumps(value), model_id))
    application = create_app(replace(settings, database_url=served_db))
    try:
        client = application.test_client()
        return calls(lambda path, body: client.post(path, json=body,
                                                    headers={"Authorization": f"Bearer {TEST_API_KEY}"}).json)
    finally:
        close_app(application)


def test_the_service_applies_the_stored_half_life_and_retry_terms(served_db, settings):
    """What the nightly job stores in a model's calibration changes the live answer: a half-life
    makes recent attempts count more, retry offsets move only items the learner attempted before."""
    conn = psycopg2.connect(served_db)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.model_id, a.calibration FROM models m JOIN model_arrays a USING (model_id) "
                    "WHERE m.unit_id = 'demo' AND m.objective = 'practice' AND m.status = 'active'")
        model_id, stored = cur.fetchone()
    base = {k: v for k, v in stored.items() if k not in ("half_life", "retry")}
    unit, user = a_section(served_db), fresh_user()

    def served(calibration: dict, calls):
        return serve_stored(served_db, settings, conn, model_id, calls, calibration=calibration)

    try:
        items = served(base, lambda post: [it["item_id"] for it in post(
            "/v1/recommendations", {"user_id": user, "units": [unit], "n": 13})["items"]])
        right, wrong, fresh = items[:8], items[8:12], items[12]
        history = [(i, 1) for i in right] + [(i, 0) for i in wrong]        # 8 old successes, 4 recent mistakes
        served(base, lambda post: [post("/v1/interactions", {"event_id": f"{user}-{k}", "user_id": user,
                                                             "item_id": i, "outcome": y})
                                   for k, (i, y) in enumerate(history)])
        asked = [right[0], wrong[-1], fresh]

        def p(calibration):
            answer = served(calibration, lambda post: post("/v1/predictions", {"user_id": user, "units": [unit],
                                                                               "item_ids": asked}))
            assert answer["history_rows"] == 12
            return [it["p"] for it in answer["items"]]

        plain = p(base)
        recent = p({**base, "half_life": 2})
        retry = p({**base, "retry": {"after_mistake": 2.0, "after_success": -2.0}})
        assert recent[2] < plain[2] - 0.01                    # the recent mistakes weigh more
        assert retry[1] > plain[1] + 0.1 and retry[0] < plain[0] - 0.1   # after a mistake up, after a success down
        assert retry[2] == pytest.approx(plain[2])            # an item never attempted: no retry term
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE model_arrays SET calibration = %s WHERE model_id = %s", (json.dumps(stored), model_id))
        conn.close()


def test_the_service_applies_stored_skill_offsets_and_retry_slopes(served_db, settings):
    """The second part of what the job may store: per-skill offsets (with each item's skill in
    extra.item_skills) move only the candidates of skills the learner has attempted, and a retry
    slope changes an item the learner retried, through the API on real Postgres and Redis."""
    conn = psycopg2.connect(served_db)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.model_id, a.calibration, a.extra, a.item_ids FROM models m JOIN model_arrays a "
                    "USING (model_id) WHERE m.unit_id = 'demo' AND m.objective = 'practice' AND m.status = 'active'")
        model_id, stored_cal, stored_extra, item_ids = cur.fetchone()
        cur.execute("SELECT item_id, min(unit_id) FROM unit_items WHERE item_id = ANY(%s) GROUP BY item_id",
                    (item_ids,))
        section_of = dict(cur.fetchall())
    sections = sorted(set(section_of.values()))
    item_skills = [sections.index(section_of[i]) for i in item_ids]
    base = {k: v for k, v in stored_cal.items() if k not in ("half_life", "retry", "skill")}
    unit, user = a_section(served_db), fresh_user()

    def served(calibration: dict, extra: dict, calls):
        return serve_stored(served_db, settings, conn, model_id, calls, calibration=calibration, extra=extra)

    extra = {**stored_extra, "item_skills": item_skills}
    try:
        items = served(base, extra, lambda post: [it["item_id"] for it in post(
            "/v1/recommendations", {"user_id": user, "units": [unit], "n": 6})["items"]])
        other = next(i for i in item_ids if section_of[i] != unit)         # a skill the learner never tried
        history = [(i, 0) for i in items[:5]] + [(items[0], 0)]             # five mistakes in this skill, one retry
        served(base, extra, lambda post: [post("/v1/interactions", {"event_id": f"{user}-{k}", "user_id": user,
                                                                    "item_id": i, "outcome": y})
                                          for k, (i, y) in enumerate(history)])
        asked = [items[5], other, items[0]]

        def p(calibration):
            answer = served(calibration, extra, lambda post: post("/v1/predictions", {
                "user_id": user, "units": ["demo"], "item_ids": asked}))
            return [it["p"] for it in answer["items"]]

        plain = p(base)
        traced = p({**base, "skill": {"sd": 1.0, "half_life": 5}})
        assert traced[0] < plain[0] - 0.02                     # its skill went badly: lower than the overall fit
        assert traced[1] == pytest.approx(plain[1])            # a skill without attempts: no offset
        offsets = {"after_mistake": 1.0, "after_success": 0.0}
        sloped = p({**base, "retry": {**offsets, "slope_after_mistake": -1.0, "slope_after_success": 0.0}})
        flat = p({**base, "retry": offsets})
        assert sloped[2] != pytest.approx(flat[2], abs=1e-4)   # the retried item: the slope counts
        assert sloped[0] == pytest.approx(flat[0]) == pytest.approx(plain[0])   # never attempted: no retry term
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE model_arrays SET calibration = %s, extra = %s WHERE model_id = %s",
                        (json.dumps(stored_cal), json.dumps(stored_extra), model_id))
        conn.close()


def test_a_long_past_counts_beyond_the_cached_history(api, served_db):
    """A learner with more events than the cache keeps (500): what they did before it still rules
    the answer (a question solved long ago is not offered again), read from Postgres."""
    unit, user = a_section(served_db), fresh_user()
    conn = psycopg2.connect(served_db)
    with conn.cursor() as cur:
        cur.execute("SELECT item_id FROM unit_items WHERE unit_id = %s ORDER BY item_id", (unit,))
        section = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT item_id FROM items WHERE item_id <> ALL(%s) AND kind = 'question' ORDER BY item_id "
                    "LIMIT 50", (section,))
        elsewhere = [r[0] for r in cur.fetchall()]
    conn.close()
    old = section[:3]  # solved first, then 600 attempts elsewhere push them out of the cached window
    events = [{"event_id": f"{user}-old-{k}", "user_id": user, "item_id": i, "kind": "attempt", "outcome": 1,
               "occurred_at": f"2026-01-01T00:00:0{k}Z"} for k, i in enumerate(old)]
    events += [{"event_id": f"{user}-{k}", "user_id": user, "item_id": elsewhere[k % len(elsewhere)],
                "kind": "attempt", "outcome": k % 2, "occurred_at": f"2026-01-02T{k // 60:02d}:{k % 60:02d}:00Z"}
               for k in range(600)]
    assert api.post("/v1/interactions", {"interactions": events}).status_code == 201
    n = len(section) - len(old)
    answer = api.post("/v1/recommendations", {"user_id": user, "units": [unit], "n": n}).json
    assert answer["history_rows"] > 0 and answer["fallback"] is None
    assert not set(old) & {it["item_id"] for it in answer["items"]}
    assert len(answer["items"]) == n


def test_mastery_serves_the_weakest_unmastered_section_and_review_needs_forgetting(api, served_db):
    conn = psycopg2.connect(served_db)
    with conn.cursor() as cur:
        cur.execute("""SELECT c.parent FROM unit_children c JOIN units u ON u.unit_id = c.child AND u.kind = 'section'
                       GROUP BY c.parent HAVING count(*) >= 3 ORDER BY c.parent LIMIT 1""")
        chapter = cur.fetchone()[0]
        cur.execute("SELECT item_id, unit_id FROM unit_items")
        section_of = dict(cur.fetchall())
    conn.close()
    user = fresh_user()
    known = api.get(f"/v1/users/{user}/knowledge?units={chapter}").json
    sections = {u["unit_id"]: u for u in known["units"] if u["skill"]}
    answer = api.post("/v1/recommendations", {"user_id": user, "units": [chapter], "n": 3, "strategy": "mastery"}).json
    assert answer["strategy"] == "mastery" and len(answer["items"]) == 3
    served = {section_of[i["item_id"]] for i in answer["items"]}
    weakest = min((u for u in sections.values() if not u["mastered"]), key=lambda u: (u["p"], u["unit_id"]))
    assert served == {weakest["unit_id"]}
    review = api.post("/v1/recommendations", {"user_id": user, "units": [chapter], "strategy": "review"}).json
    if not known["model"]["forgetting"]:    # the demo's learners do not forget: nothing is ever due
        assert review["items"] == [] and review["fallback"] == "no_history+nothing_due"

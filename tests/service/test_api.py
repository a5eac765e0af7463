"""The HTTP API against a real Postgres and Redis: catalogue, ingest, auth and every bad input."""
from __future__ import annotations

import json

import pytest

from tests.conftest import TEST_API_KEY
from tests.seed import seed


def put(client, auth, path, body):
    return client.put(path, json=body, headers=auth)


def post(client, auth, path, body):
    return client.post(path, json=body, headers=auth)


@pytest.fixture
def catalogue(client, auth):
    """math > algebra > {q1, q2}; math > geometry > {q3}."""
    seed(client, auth, items=[{"item_id": f"q{i}", "title": f"Q{i}"} for i in (1, 2, 3)], units=[
        {"unit_id": "math", "name": "Mathematics", "kind": "subject", "children": ["algebra", "geometry"]},
        {"unit_id": "algebra", "kind": "chapter", "items": ["q1", "q2"]},
        {"unit_id": "geometry", "kind": "chapter", "items": ["q3"]},
    ])


# ---- health and auth --------------------------------------------------------------------
def test_health_endpoints_are_open_and_ready(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "postgres": "ok", "redis": "ok", "migrations_pending": 0}


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer wrong-key", f"Token {TEST_API_KEY}"])
def test_requests_without_a_valid_key_are_refused(client, header):
    headers = {"Authorization": header} if header else {}
    r = client.get("/v1/users/u1", headers=headers)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json["detail"] or "not valid" in r.json["detail"]


def test_any_configured_key_is_accepted(client):
    r = client.get("/v1/users/nobody", headers={"Authorization": "Bearer second-key"})
    assert r.status_code == 404  # authenticated, then not found


# ---- catalogue --------------------------------------------------------------------------
def test_user_upsert_then_read(client, auth):
    r = put(client, auth, "/v1/users/42", {"attrs": {"grade": 9}})
    assert r.status_code == 200
    assert r.json == {"user_id": "42", "attrs": {"grade": 9}, "interactions": 0}
    put(client, auth, "/v1/users/42", {"attrs": {"grade": 10}})
    assert client.get("/v1/users/42", headers=auth).json["attrs"] == {"grade": 10}


def test_unit_lists_children_items_and_items_under_it(client, auth, catalogue):
    unit = client.get("/v1/units/math", headers=auth).json
    assert unit["children"] == ["algebra", "geometry"]
    assert unit["items_under"] == 3
    assert client.get("/v1/units/algebra", headers=auth).json["parents"] == ["math"]


def test_put_unit_replaces_its_children(client, auth, catalogue):
    r = put(client, auth, "/v1/units/math", {"name": "Mathematics", "children": ["geometry"]})
    assert r.status_code == 200
    assert r.json["children"] == ["geometry"] and r.json["items_under"] == 1


def test_item_membership_via_units_field(client, auth, catalogue):
    r = put(client, auth, "/v1/items/q4", {"title": "Q4", "units": ["geometry"]})
    assert r.status_code == 200 and r.json["units"] == ["geometry"]
    assert client.get("/v1/units/math", headers=auth).json["items_under"] == 4


def test_deactivated_item_is_no_longer_under_its_units(client, auth, catalogue):
    r = client.delete("/v1/items/q3", headers=auth)
    assert r.status_code == 200 and r.json["active"] is False
    assert client.get("/v1/units/math", headers=auth).json["items_under"] == 2
    assert client.delete("/v1/items/nope", headers=auth).status_code == 404


def test_a_cycle_in_the_hierarchy_is_refused_and_nothing_changes(client, auth, catalogue):
    r = put(client, auth, "/v1/units/geometry", {"children": ["math"]})
    assert r.status_code == 422
    assert "acyclic" in r.json["detail"]
    assert client.get("/v1/units/geometry", headers=auth).json["children"] == []


def test_unknown_children_and_items_are_named(client, auth):
    r = put(client, auth, "/v1/units/u", {"children": ["ghost"], "items": []})
    assert r.status_code == 422 and "'ghost'" in r.json["detail"]
    r = put(client, auth, "/v1/units/u", {"items": ["nope1", "nope2"]})
    assert r.status_code == 422 and "'nope1'" in r.json["detail"]
    assert client.get("/v1/units/u", headers=auth).status_code == 404  # rolled back


# ---- interactions -----------------------------------------------------------------------
def test_single_interaction_creates_user_and_is_idempotent(client, auth, catalogue):
    event = {"event_id": "e1", "user_id": "learner", "item_id": "q1", "outcome": 1}
    first = post(client, auth, "/v1/interactions", event)
    assert first.status_code == 201
    assert first.json == {"created": 1, "duplicates": 0, "events": [{"event_id": "e1", "status": "created"}]}
    again = post(client, auth, "/v1/interactions", event)
    assert again.status_code == 200 and again.json["duplicates"] == 1
    assert client.get("/v1/users/learner", headers=auth).json["interactions"] == 1


def test_batch_with_repeats_stores_each_event_once(client, auth, catalogue, conn):
    batch = {"interactions": [
        {"event_id": "a", "user_id": 7, "item_id": "q1", "outcome": 0, "occurred_at": "2026-01-01T10:00:00"},
        {"event_id": "b", "user_id": 7, "item_id": "q2", "outcome": True},
        {"event_id": "a", "user_id": 7, "item_id": "q1", "outcome": 0},
        {"user_id": 7, "item_id": "q3", "kind": "view"},
    ]}
    r = post(client, auth, "/v1/interactions", batch)
    assert r.status_code == 201
    assert [e["status"] for e in r.json["events"]] == ["created", "created", "duplicate", "created"]
    with conn.cursor() as cur:
        cur.execute("SELECT event_id, user_id, outcome, occurred_at::text FROM interactions ORDER BY id")
        rows = cur.fetchall()
    assert len(rows) == 3
    assert rows[0] == ("a", "7", 0, "2026-01-01 10:00:00+00")


def test_unknown_item_refuses_the_whole_batch(client, auth, catalogue, conn):
    r = post(client, auth, "/v1/interactions", {"interactions": [
        {"event_id": "x1", "user_id": "u", "item_id": "q1", "outcome": 1},
        {"event_id": "x2", "user_id": "u", "item_id": "ghost", "outcome": 1}]})
    assert r.status_code == 422 and "ghost" in r.json["detail"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM interactions")
        assert cur.fetchone()[0] == 0


# ---- bad input: always a 4xx problem that says what to fix ---------------------------------
@pytest.mark.parametrize("body, fragment", [
    ({"user_id": "u", "item_id": "q1"}, "needs an outcome"),
    ({"user_id": "u", "item_id": "q1", "outcome": 2}, "outcome"),
    ({"user_id": "u", "item_id": "q1", "outcome": 1, "duration_ms": -5}, "duration_ms"),
    ({"user_id": "", "item_id": "q1", "outcome": 1}, "user_id"),
    ({"user_id": "u" * 300, "item_id": "q1", "outcome": 1}, "user_id"),
    ({"user_id": ["u"], "item_id": "q1", "outcome": 1}, "user_id"),
    ({"user_id": "u", "item_id": "q1", "outcome": 1, "colour": "red"}, "colour"),
    ({"user_id": "u", "item_id": "q1", "outcome": 1, "occurred_at": "yesterday"}, "occurred_at"),
    ({"user_id": "u", "item_id": "q1", "kind": "Attempt!", "outcome": 1}, "kind"),
    ({"interactions": []}, "interactions"),
    ({"interactions": [{"user_id": "u"}] * 1001}, "interactions"),
])
def test_invalid_interactions_are_422_with_the_field_named(client, auth, catalogue, body, fragment):
    r = post(client, auth, "/v1/interactions", body)
    assert r.status_code == 422, r.json
    assert r.mimetype == "application/problem+json"
    assert fragment in r.json["detail"]
    assert r.json["errors"] and all({"field", "message"} <= set(e) for e in r.json["errors"])


def test_malformed_json_is_400_with_position(client, auth):
    r = client.post("/v1/interactions", data='{"user_id": "u",', headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON at line 1" in r.json["detail"]


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null"])
def test_a_body_that_is_not_an_object_is_422(client, auth, body):
    r = client.post("/v1/users", data=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON object" in r.json["detail"]


def test_wrong_content_type_is_415(client, auth):
    r = client.post("/v1/interactions", data="user_id=u",
                    headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json["detail"]


def test_empty_body_is_400(client, auth):
    r = client.post("/v1/interactions", data="", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json["detail"]


def test_body_over_the_limit_is_413(client, auth, settings):
    big = json.dumps({"users": [{"user_id": f"u{i}", "attrs": {"pad": "x" * 1000}} for i in range(1200)]})
    assert len(big) > settings.max_body_bytes
    r = client.post("/v1/users", data=big, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.mimetype == "application/problem+json"


def test_unknown_route_and_method_are_problems(client, auth):
    assert client.get("/v1/nothing", headers=auth).status_code == 404
    r = client.patch("/v1/interactions", headers=auth)
    assert r.status_code == 405 and r.mimetype == "application/problem+json"


def test_identifiers_that_look_like_sql_or_paths_are_just_identifiers(client, auth):
    for weird in ["1; DROP TABLE users;--", "../../etc/passwd", "99999999999999999999999", "ünïcode ✓"]:
        r = post(client, auth, "/v1/users", {"users": [{"user_id": weird}]})
        assert r.status_code == 200
    r = post(client, auth, "/v1/users", {"users": [{"user_id": 10**30}]})
    assert r.status_code == 200
    assert client.get("/v1/users/" + str(10**30), headers=auth).json["user_id"] == str(10**30)


def test_every_answer_carries_a_request_id(client, auth):
    given = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    made = client.get("/v1/users/none", headers=auth)
    assert made.status_code == 404 and len(made.headers["X-Request-Id"]) == 32


# ---- defects the schemathesis run (tests/slow/test_fuzz.py) found: each is a 4xx now, never a 500 ----
def test_a_405_names_the_methods_allowed(client, auth):
    r = client.patch("/v1/users/u1", headers=auth)
    assert r.status_code == 405 and r.mimetype == "application/problem+json"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT"}


@pytest.mark.parametrize("method, path", [
    ("PUT", "/v1/users/" + "x" * 257),
    ("PUT", "/v1/items/a%00b"),
    ("GET", "/v1/users/a%00b"),
    ("GET", "/v1/units/" + "x" * 257),
    ("DELETE", "/v1/items/a%00b"),
    ("GET", "/v1/users/a%00b/recommendations"),
    ("GET", "/v1/items/a%00b/similar"),
    ("GET", "/v1/experiments/a%00b"),
    ("POST", "/v1/experiments/a%00b/stop"),
    ("GET", "/v1/trending?units=math,a%00b"),
    ("GET", "/v1/trending?units=,"),
    ("GET", "/v1/trending?units="),
])
def test_ids_in_paths_and_queries_are_checked_like_ids_in_bodies(client, auth, catalogue, method, path):
    r = client.open(path, method=method, json={} if method == "PUT" else None, headers=auth)
    assert r.status_code == 422, r.json
    assert r.mimetype == "application/problem+json"


@pytest.mark.parametrize("path, body", [
    ("/v1/users", '{"users": [{"user_id": "u", "attrs": {"a\\u0000b": 1}}]}'),
    ("/v1/users", '{"users": [{"user_id": "u", "attrs": {"a": [{"b": "c\\u0000"}]}}]}'),
    ("/v1/users", '{"users": [{"user_id": "u", "attrs": {"a": "\\ud800"}}]}'),
    ("/v1/users", '{"users": [{"user_id": "u", "attrs": {"a": NaN}}]}'),
    ("/v1/items", '{"items": [{"item_id": "q9", "title": "a\\u0000b"}]}'),
    ("/v1/units", '{"units": [{"unit_id": "x", "name": "\\u0000"}]}'),
    ("/v1/interactions", '{"user_id": "u", "item_id": "q1", "outcome": 1, "response": {"text": "\\u0000"}}'),
])
def test_text_and_metadata_postgres_cannot_store_are_422(client, auth, catalogue, path, body):
    r = client.post(path, data=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422, r.json
    assert "NUL" in r.json["detail"] or "finite" in r.json["detail"]


def test_experiment_text_postgres_cannot_store_is_422(client, auth):
    r = client.put("/v1/experiments/e1", headers={**auth, "Content-Type": "application/json"},
                   data='{"variants": [{"name": "a", "weight": 1, "params": {"\\u0000": 1}}]}')
    assert r.status_code == 422 and "variants[0].params" in r.json["detail"]


@pytest.mark.parametrize("path, body, field", [
    ("/v1/items", {"items": [{"item_id": "q9", "active": 0}]}, "active"),
    ("/v1/interactions", {"user_id": "u", "item_id": "q1", "kind": "rating", "value": "4"}, "value"),
    ("/v1/interactions", {"user_id": "u", "item_id": "q1", "outcome": 1, "duration_ms": "5"}, "duration_ms"),
    ("/v1/interactions", {"user_id": "u", "item_id": "q1", "outcome": 1, "occurred_at": 1700000000}, "occurred_at"),
    ("/v1/recommendations", {"user_id": "u", "units": ["math"], "n": "5"}, "n"),
])
def test_values_are_taken_only_as_their_documented_json_types(client, auth, catalogue, path, body, field):
    r = post(client, auth, path, body)
    assert r.status_code == 422 and field in r.json["detail"], r.json


def test_documented_lenient_inputs_still_work(client, auth, catalogue):
    r = post(client, auth, "/v1/interactions", {"user_id": 7, "item_id": "q1", "outcome": True, "kind": "attempt",
                                                "value": 1, "occurred_at": "2024-05-01T12:00:00"})
    assert r.status_code == 201, r.json
    r = post(client, auth, "/v1/recommendations", {"user_id": "7", "units": ["math"], "band": [0, 1]})
    assert r.status_code == 200, r.json


@pytest.mark.parametrize("event, status", [
    ({"kind": "rating", "value": 1e308}, 422),              # overflows the real column
    ({"kind": "rating", "value": 1e-50}, 201),              # below a real: stored as 0, not an underflow error
    ({"outcome": 1, "occurred_at": "0001-01-01T00:00:00+01:00"}, 422),   # year 0 in UTC: unreadable
    ({"outcome": 1, "occurred_at": "9999-12-31T23:59:59-14:00"}, 422),   # year 10000 in UTC
])
def test_interactions_the_database_could_not_store_or_read_back_are_refused(client, auth, catalogue, event, status):
    r = post(client, auth, "/v1/interactions", {"user_id": "u", "item_id": "q1", **event})
    assert r.status_code == status, r.json
    if status == 201:
        assert client.get("/v1/users/u/recommendations", headers=auth).status_code == 200


def test_experiment_timestamps_are_iso_8601(client, auth):
    from datetime import datetime

    r = put(client, auth, "/v1/experiments/e1", {"variants": [{"name": "a", "weight": 1}]})
    assert r.status_code == 200
    assert datetime.fromisoformat(r.json["created_at"]).tzinfo is not None and r.json["stopped_at"] is None
    stopped = client.post("/v1/experiments/e1/stop", headers=auth).json
    assert datetime.fromisoformat(stopped["stopped_at"]).tzinfo is not None
    listed = client.get("/v1/experiments", headers=auth).json["experiments"]
    assert listed[0]["created_at"] == r.json["created_at"]


@pytest.mark.parametrize("raw", ['{"user_id": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000])
def test_json_too_deep_or_with_a_huge_number_is_400(client, auth, raw):
    r = client.post("/v1/interactions", data=raw, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert "nested too deeply" in r.json["detail"]


def test_a_repeated_exclusion_does_not_exhaust_the_candidates(client, auth, catalogue):
    r = post(client, auth, "/v1/recommendations", {"user_id": "u", "units": ["algebra"], "n": 5,
                                                   "exclude": ["q1", "q1"]})
    assert r.status_code == 200
    assert [i["item_id"] for i in r.json["items"]] == ["q2"] and "no_candidates" not in (r.json["fallback"] or "")


# ---- strict query strings -------------------------------------------------------------------
@pytest.mark.parametrize("path, field", [
    ("/v1/users/u1/recommendations?limit=5", "limit"),
    ("/v1/users/u1/recommendations?n=3&n=4", "n"),
    ("/v1/trending?unit=algebra", "unit"),
    ("/v1/items/q1?verbose=1", "verbose"),
    ("/v1/experiments?page=2", "page"),
    ("/healthz?probe=1", "probe"),
])
def test_undocumented_or_repeated_query_parameters_are_400(client, auth, catalogue, path, field):
    r = client.get(path, headers=auth)
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.json
    assert r.json["errors"][0]["field"] == field and field in r.json["detail"]


@pytest.mark.parametrize("raw", [" 3", "+3", "1_0", "٣", "3.5", "0x3", "", "3 "])
def test_query_integers_are_plain_digits(client, auth, catalogue, raw):
    r = client.get("/v1/users/u1/recommendations", query_string={"n": raw}, headers=auth)
    assert r.status_code == 422 and r.json["errors"] == [{"field": "n", "message": "not an integer"}], r.json


def test_documented_query_forms_are_accepted(client, auth, catalogue):
    for query in ("n=2", "n=2.0", "units=algebra,geometry", "units=algebra&units=geometry&n=2"):
        r = client.get(f"/v1/users/u1/recommendations?{query}", headers=auth)
        assert r.status_code == 200, (query, r.json)
    assert len(client.get("/v1/users/u1/recommendations?n=2.0", headers=auth).json["items"]) <= 2


def test_integer_fields_take_integral_numbers_as_json_schema_does(client, auth, catalogue):
    r = post(client, auth, "/v1/recommendations", {"user_id": 7.0, "units": ["math"], "n": 2.0})
    assert r.status_code == 200 and r.json["user_id"] == "7" and len(r.json["items"]) <= 2, r.json
    assert post(client, auth, "/v1/recommendations", {"user_id": "u", "units": ["math"], "n": 2.5}).status_code == 422


# ---- rules the schema cannot state ---------------------------------------------------------------
def test_an_experiment_naming_an_unknown_strategy_is_refused_when_saved(client, auth):
    r = put(client, auth, "/v1/experiments/e1", {"variants": [{"name": "a", "weight": 1, "strategy": "magic"}]})
    assert r.status_code == 422 and "unknown strategy 'magic'" in r.json["detail"], r.json
    assert r.json["errors"][0]["field"] == "variants"
    assert client.get("/v1/experiments/e1", headers=auth).status_code == 404


def test_an_unordered_band_names_the_band(client, auth, catalogue):
    r = post(client, auth, "/v1/recommendations", {"user_id": "u", "units": ["math"], "band": [0.9, 0.1]})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "band", r.json


def test_recommendations_without_any_unit_name_the_units(client, auth):
    r = client.get("/v1/users/u1/recommendations", headers=auth)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "units", r.json


# ---- deactivated items ---------------------------------------------------------------------------
def test_a_deactivated_item_still_has_similar_items_but_is_never_one(client, auth, catalogue):
    assert client.delete("/v1/items/q1", headers=auth).json["active"] is False
    r = client.get("/v1/items/q1/similar", headers=auth)
    assert r.status_code == 200, r.json
    assert [i["item_id"] for i in r.json["items"]] == ["q2"]  # its replacements: active items only
    assert "q1" not in [i["item_id"] for i in client.get("/v1/items/q2/similar", headers=auth).json["items"]]
    assert client.get("/v1/items/never-made/similar", headers=auth).status_code == 404


def test_ids_with_slashes_are_read_back_by_path_when_escaped(client, auth, catalogue):
    for item_id in ("course/7/q3", "/leading", "50%2Fliteral"):
        assert put(client, auth, "/v1/units/algebra", {"items": ["q1"]}).status_code == 200
        body = {"items": [{"item_id": item_id, "units": ["algebra"]}]}
        assert post(client, auth, "/v1/items", body).status_code == 200
        escaped = item_id.replace("%", "%25").replace("/", "%2F")
        r = client.get(f"/v1/items/{escaped}", headers=auth)
        assert r.status_code == 200 and r.json["item_id"] == item_id, (item_id, r.json)
        similar = client.get(f"/v1/items/{escaped}/similar", headers=auth)
        assert similar.status_code == 200 and similar.json["item_id"] == item_id
        assert client.put(f"/v1/items/{escaped}/similar", json={}, headers=auth).status_code == 405
    assert client.get("/v1/items/course/7/q3", headers=auth).status_code == 404  # an unescaped '/' separates
    assert client.get("/v1/items//leading", headers=auth).status_code == 404    # never a redirect

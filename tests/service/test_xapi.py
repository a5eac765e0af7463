"""xAPI statements in (issue 28), through the app as a learning record store is called: one and many
statements, PUT, idempotence and conflicts, every validation rule, the version header, HTTP Basic
keys, the tenant's rules, tenants kept apart, unmappable statements kept with their reason, and
recommendations moving as statements arrive."""
from __future__ import annotations

import base64
import uuid

import pytest

from app.access import keys, tenants
from app.infra import metrics
from tests.seed import seed

V = {"X-Experience-API-Version": "1.0.3"}
ADL = "http://adlnet.gov/expapi/verbs/"
SITE = "https://lms.example.org"


def basic(key: str, username: str = "moodle") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()}


def new_tenant(conn, scopes=("ingest",), settings: dict | None = None) -> tuple[str, dict]:
    """A fresh tenant (Redis outlives a test's rows) and the headers of a key of it."""
    name = "x" + uuid.uuid4().hex[:10]
    with conn:
        tenants.ensure(conn, name)
        if settings:
            tenants.set_settings(conn, name, settings)
        _, key = keys.create_key(conn, "lms", list(scopes), tenant=name)
    return name, {**basic(key), **V}


def statement(verb: str = "answered", activity: str = f"{SITE}/question/1", success: bool | None = True,
              user: str = "ann", **extra) -> dict:
    body = {"id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "account": {"homePage": SITE, "name": user}},
            "verb": {"id": verb if ":" in verb else ADL + verb, "display": {"en-US": verb}},
            "object": {"objectType": "Activity", "id": activity,
                       "definition": {"name": {"en-US": "Question 1"},
                                      "type": "http://adlnet.gov/expapi/activities/question"}},
            "timestamp": "2026-12-01T10:00:00Z"}
    if success is not None:
        body["result"] = {"success": success, "score": {"scaled": 1.0 if success else 0.25}}
    body.update(extra)
    return body


def rows(conn, sql: str, *args) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        out = cur.fetchall()
    conn.rollback()
    return out


def interactions(conn, tenant: str) -> list[tuple]:
    return rows(conn, "SELECT event_id, user_id, item_id, kind, outcome, value, occurred_at::text FROM interactions "
                      "WHERE tenant = %s ORDER BY occurred_at, event_id", tenant)


def stored_statements(conn, tenant: str) -> int:
    return rows(conn, "SELECT count(*) FROM xapi_statements WHERE tenant = %s", tenant)[0][0]


# ---- the LRS conventions ----------------------------------------------------------------------
def test_one_statement_becomes_an_attempt_on_an_item_created_on_first_sight(client, conn):
    tenant, h = new_tenant(conn)
    s = statement(context={"contextActivities": {
        "parent": [{"id": f"{SITE}/quiz/7", "definition": {"name": {"en": "Fractions quiz"},
                                                            "type": "http://adlnet.gov/expapi/activities/assessment"}}],
        "grouping": [{"id": f"{SITE}/course/3", "definition": {"name": {"en-US": "Maths"}}}]}})
    answer = client.post("/xapi/statements", json=s, headers=h)
    assert answer.status_code == 200 and answer.json == [s["id"]]
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"
    assert interactions(conn, tenant) == [(s["id"], "ann", f"{SITE}/question/1", "attempt", 1, 1.0,
                                          "2026-12-01 10:00:00+00")]
    assert rows(conn, "SELECT kind, title FROM items WHERE tenant = %s", tenant) == [("question", "Question 1")]
    assert rows(conn, "SELECT unit_id, name, kind FROM units WHERE tenant = %s ORDER BY unit_id", tenant) == [
        (f"{SITE}/course/3", "Maths", "activity"), (f"{SITE}/quiz/7", "Fractions quiz", "assessment")]
    assert rows(conn, "SELECT unit_id, item_id FROM unit_items WHERE tenant = %s", tenant) == [
        (f"{SITE}/quiz/7", f"{SITE}/question/1")]
    assert rows(conn, "SELECT parent, child FROM unit_children WHERE tenant = %s", tenant) == [
        (f"{SITE}/course/3", f"{SITE}/quiz/7")]
    assert rows(conn, "SELECT activity_id, item_id FROM xapi_activities WHERE tenant = %s", tenant) == [
        (f"{SITE}/question/1", f"{SITE}/question/1")]


def test_a_list_answers_the_ids_in_order_and_a_statement_without_id_gets_one(client, conn):
    tenant, h = new_tenant(conn)
    batch = [statement(user=f"u{k}", activity=f"{SITE}/question/{k % 3}") for k in range(5)]
    del batch[2]["id"]
    answer = client.post("/xapi/statements", json=batch, headers=h)
    assert answer.status_code == 200
    ids = answer.json
    assert len(ids) == 5 and [ids[k] for k in (0, 1, 3, 4)] == [batch[k]["id"] for k in (0, 1, 3, 4)]
    assert uuid.UUID(ids[2]).version == 4
    assert sorted(r[0] for r in interactions(conn, tenant)) == sorted(ids)
    assert client.post("/xapi/statements", json=[], headers=h).json == []


def test_put_stores_under_the_statement_id_and_answers_204(client, conn):
    tenant, h = new_tenant(conn)
    s = statement()
    sid = s.pop("id")
    answer = client.put(f"/xapi/statements?statementId={sid}", json=s, headers=h)
    assert answer.status_code == 204 and answer.data == b""
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"
    assert [r[0] for r in interactions(conn, tenant)] == [sid]
    missing = client.put("/xapi/statements", json=s, headers=h)
    assert missing.status_code == 400 and "statementId" in missing.json["detail"]
    other = client.put(f"/xapi/statements?statementId={uuid.uuid4()}", json={**s, "id": str(uuid.uuid4())}, headers=h)
    assert other.status_code == 400 and "is not the statementId" in other.json["detail"]
    bad = client.put("/xapi/statements?statementId=not-a-uuid", json=s, headers=h)
    assert bad.status_code == 400 and "uuid" in bad.json["detail"]


def test_a_resent_statement_is_stored_once_by_post_and_by_put(client, conn):
    tenant, h = new_tenant(conn)
    s = statement()
    for _ in range(2):
        assert client.post("/xapi/statements", json=[s], headers=h).json == [s["id"]]
        assert client.put(f"/xapi/statements?statementId={s['id'].upper()}", json=s, headers=h).status_code == 204
    # an LRS sets stored, authority and version: a forwarder resending them is still the same statement
    same = {**s, "stored": "2026-12-02T00:00:00Z", "version": "1.0.3"}
    assert client.post("/xapi/statements", json=same, headers=h).status_code == 200
    assert len(interactions(conn, tenant)) == 1 and stored_statements(conn, tenant) == 1


def test_a_known_id_with_other_content_is_409_and_nothing_of_the_batch_is_stored(client, conn):
    tenant, h = new_tenant(conn)
    s = statement()
    client.post("/xapi/statements", json=s, headers=h)
    changed = {**s, "result": {"success": False}}
    fresh = statement(user="bob")
    answer = client.post("/xapi/statements", json=[fresh, changed], headers=h)
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
    assert "statement 1" in answer.json["detail"] and s["id"] in answer.json["detail"]
    assert client.put(f"/xapi/statements?statementId={s['id']}", json=changed, headers=h).status_code == 409
    assert [r[0] for r in interactions(conn, tenant)] == [s["id"]] and stored_statements(conn, tenant) == 1


# ---- the version header and the key ------------------------------------------------------------
@pytest.mark.parametrize("version, answered", [("1.0.0", "1.0.3"), ("1.0", "1.0.3"), ("1.0.3", "1.0.3"),
                                               ("2.0.0", "2.0.0")])
def test_supported_versions_are_accepted_and_answered(client, conn, version, answered):
    _, h = new_tenant(conn)
    answer = client.post("/xapi/statements", json=statement(), headers={**h, "X-Experience-API-Version": version})
    assert answer.status_code == 200 and answer.headers["X-Experience-API-Version"] == answered


@pytest.mark.parametrize("version", [None, "", "0.95", "1.1.0", "2.1.0", "3.0.0", "banana"])
def test_a_missing_or_unsupported_version_is_400_saying_what_to_send(client, conn, version):
    tenant, h = new_tenant(conn)
    headers = {k: v for k, v in h.items() if k != "X-Experience-API-Version"}
    if version is not None:
        headers["X-Experience-API-Version"] = version
    answer = client.post("/xapi/statements", json=statement(), headers=headers)
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json"
    assert "X-Experience-API-Version" in answer.json["detail"] and "2.0.0" in answer.json["detail"]
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"
    assert stored_statements(conn, tenant) == 0


def test_about_needs_no_key_and_lists_the_versions(client):
    answer = client.get("/xapi/about")
    assert answer.status_code == 200 and answer.json["version"] == ["1.0.3", "2.0.0"]
    assert answer.headers["X-Experience-API-Version"] == "2.0.0"


def test_the_key_comes_as_basic_password_or_username_or_bearer(client, conn):
    tenant, h = new_tenant(conn)
    key = base64.b64decode(h["Authorization"].split()[1]).decode().split(":", 1)[1]
    for auth in ({"Authorization": f"Bearer {key}"}, basic(key, ""),
                 {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}):
        assert client.post("/xapi/statements", json=statement(), headers={**auth, **V}).status_code == 200
    assert len(interactions(conn, tenant)) == 3
    wrong = client.post("/xapi/statements", json=statement(), headers={**basic("nope"), **V})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    none = client.post("/xapi/statements", json=statement(), headers=V)
    assert none.status_code == 401 and "password is an adaptrec API key" in none.json["detail"]
    garbled = client.post("/xapi/statements", json=statement(), headers={"Authorization": "Basic %%%", **V})
    assert garbled.status_code == 401
    # Basic is for the xAPI endpoints only
    assert client.get("/v1/experiments", headers=basic(key)).status_code == 401


def test_statements_need_the_ingest_scope(client, conn):
    _, serve = new_tenant(conn, scopes=("serve",))
    refused = client.post("/xapi/statements", json=statement(), headers=serve)
    assert refused.status_code == 403 and "needs 'ingest'" in refused.json["detail"]


# ---- validation: every rule, the index named, nothing of the batch stored -----------------------
def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


AGENT = {"objectType": "Agent", "mbox": "mailto:ann@example.org"}
INVALID = {  # rule -> a change that breaks it
    "no-unknown-properties": lambda s: {**s, "colour": "red"},
    "uuid": lambda s: {**s, "id": "1234"},
    "required": lambda s: _without(s, "verb"),
    "agent-ifi": lambda s: {**s, "actor": {**AGENT, "openid": "https://id.example.org/ann"}},
    "agent-ifi ": lambda s: {**s, "actor": {"objectType": "Agent", "name": "Ann"}},
    "mbox": lambda s: {**s, "actor": {"mbox": "ann@example.org"}},
    "mbox_sha1sum": lambda s: {**s, "actor": {"mbox_sha1sum": "xyz"}},
    "iri ": lambda s: {**s, "actor": {"openid": "not an iri"}},
    "account": lambda s: {**s, "actor": {"account": {"name": "ann"}}},
    "agent": lambda s: {**s, "actor": {"objectType": "Person", "mbox": "mailto:a@b.c"}},
    "verb-id": lambda s: {**s, "verb": {"display": {"en-US": "answered"}}},
    "iri": lambda s: {**s, "verb": {"id": "answered"}},
    "activity-id": lambda s: {**s, "object": {"objectType": "Activity"}},
    "object-type": lambda s: {**s, "object": {"objectType": "Thing", "id": "https://x.org/1"}},
    "language-map": lambda s: {**s, "verb": {"id": ADL + "answered", "display": {"not a tag!": "x"}}},
    "boolean": lambda s: {**s, "result": {"success": "yes"}},
    "score-scaled": lambda s: {**s, "result": {"success": True, "score": {"scaled": 1.5}}},
    "score-range": lambda s: {**s, "result": {"score": {"raw": 12, "min": 0, "max": 10}}},
    "number": lambda s: {**s, "result": {"score": {"raw": "12"}}},
    "duration": lambda s: {**s, "result": {"duration": "90 seconds"}},
    "timestamp": lambda s: {**s, "timestamp": "yesterday"},
    "timestamp ": lambda s: {**s, "timestamp": "2026-13-40T10:00:00Z"},
    "timestamp  ": lambda s: {**s, "timestamp": "2026-12-01T10:00:00-00:00"},
    "version": lambda s: {**s, "version": "0.95"},
    "context-revision-platform": lambda s: {**s, "object": AGENT, "context": {"platform": "Moodle"}},
    "json-object": lambda s: {**s, "result": []},
    "string": lambda s: {**s, "result": {"response": "x" * 100_001}},
}


@pytest.mark.parametrize("rule", list(INVALID), ids=[r.strip() + str(len(r) - len(r.strip())) for r in INVALID])
def test_each_rule_refuses_the_whole_request_naming_the_rule_and_the_index(client, conn, rule):
    tenant, h = new_tenant(conn)
    batch = [statement(), statement(user="bob"), INVALID[rule](statement(user="cat"))]
    answer = client.post("/xapi/statements", json=batch, headers=h)
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json", answer.json
    assert answer.json["detail"].startswith("statement 2: ")
    assert f"(rule: {rule.strip()})" in answer.json["detail"], answer.json["detail"]
    assert answer.json["errors"][0]["field"].startswith("[2]")
    assert stored_statements(conn, tenant) == 0 and interactions(conn, tenant) == []
    single = client.post("/xapi/statements", json=batch[2], headers=h)
    assert single.status_code == 400 and single.json["detail"].startswith("the statement: ")


def test_two_statements_with_one_id_in_a_request_are_400(client, conn):
    tenant, h = new_tenant(conn)
    s = statement()
    answer = client.post("/xapi/statements", json=[s, statement(), {**s}], headers=h)
    assert answer.status_code == 400 and "statement 2" in answer.json["detail"]
    assert "unique-ids" in answer.json["detail"]
    assert stored_statements(conn, tenant) == 0


@pytest.mark.parametrize("body, status", [(b"{", 400), (b"", 400), (b"42", 400)])
def test_malformed_bodies_are_refused(client, conn, body, status):
    _, h = new_tenant(conn)
    answer = client.post("/xapi/statements", data=body, headers={**h, "Content-Type": "application/json"})
    assert answer.status_code == status and answer.mimetype == "application/problem+json"


def test_a_valid_statement_of_every_object_kind_is_accepted(client, conn):
    tenant, h = new_tenant(conn)
    ref = statement(verb="voided", object={"objectType": "StatementRef", "id": str(uuid.uuid4())}, success=None)
    sub = statement(verb="planned", success=None, object={
        "objectType": "SubStatement", "actor": AGENT, "verb": {"id": ADL + "attempted"},
        "object": {"id": f"{SITE}/question/9"}})
    group = statement(actor={"objectType": "Group", "member": [AGENT, {"openid": "https://id.example.org/b"}]})
    agent_object = statement(object={"objectType": "Agent", "account": {"homePage": SITE, "name": "bob"}},
                             verb="http://id.tincanapi.com/verb/mentored")
    batch = [ref, sub, group, agent_object]
    assert client.post("/xapi/statements", json=batch, headers=h).status_code == 200
    assert stored_statements(conn, tenant) == 4 and interactions(conn, tenant) == []


# ---- mapping: unmappable kept with the reason; the tenant's rules ------------------------------
def test_valid_statements_that_cannot_be_mapped_are_accepted_and_kept_with_the_reason(client, conn):
    tenant, h = new_tenant(conn)
    before = metrics.XAPI_STATEMENTS.labels("unmappable", "unknown_verb")._value.get()
    batch = [statement(verb="https://example.org/verbs/pondered"),
             statement(success=None),                                                # answered without success
             statement(object={"objectType": "Agent", "mbox": "mailto:bob@example.org"}),
             statement(actor={"objectType": "Group", "mbox": "mailto:class@example.org"}),
             statement(verb="completed", success=None),                              # mapped: complete
             statement(verb="experienced", success=None)]                            # mapped: view
    answer = client.post("/xapi/statements", json=batch, headers=h)
    assert answer.status_code == 200 and answer.json == [s["id"] for s in batch]
    kept = rows(conn, "SELECT statement_id::text, reason, detail, statement ->> 'id' FROM xapi_unmappable "
                      "WHERE tenant = %s", tenant)
    reasons = {sid: reason for sid, reason, _, _ in kept}
    assert reasons == {batch[0]["id"]: "unknown_verb", batch[1]["id"]: "no_success",
                       batch[2]["id"]: "not_an_activity", batch[3]["id"]: "actor_not_an_agent"}
    assert all(detail and whole == sid for sid, _, detail, whole in kept)
    assert sorted(r[3] for r in interactions(conn, tenant)) == ["complete", "view"]
    assert metrics.XAPI_STATEMENTS.labels("unmappable", "unknown_verb")._value.get() == before + 1
    # resent: still once each, and still 200
    assert client.post("/xapi/statements", json=batch, headers=h).status_code == 200
    assert stored_statements(conn, tenant) == 6


def test_verbs_map_to_kinds_outcomes_and_values(client, conn):
    tenant, h = new_tenant(conn)
    batch = [statement(verb="passed", success=None, result={"score": {"scaled": 0.9}, "duration": "PT1M30S"}),
             statement(verb="failed", success=None),
             statement(verb="completed", success=False),
             statement(verb="launched", success=None),
             statement(verb="answered", success=False, result={"success": False, "response": "4/7"})]
    client.post("/xapi/statements", json=batch, headers=h)
    got = {r[0]: (r[3], r[4], None if r[5] is None else round(r[5], 4)) for r in interactions(conn, tenant)}
    assert got == {batch[0]["id"]: ("attempt", 1, 0.9), batch[1]["id"]: ("attempt", 0, None),
                   batch[2]["id"]: ("attempt", 0, 0.25), batch[3]["id"]: ("view", None, None),
                   batch[4]["id"]: ("attempt", 0, None)}
    assert rows(conn, "SELECT duration_ms FROM interactions WHERE event_id = %s", batch[0]["id"]) == [(90_000,)]
    assert rows(conn, "SELECT response FROM interactions WHERE event_id = %s", batch[4]["id"]) == [
        ({"response": "4/7"},)]


def test_the_tenant_rules_name_the_user_the_verbs_and_whether_items_are_created(client, conn, auth):
    rules = {"xapi": {"actor": ["mbox", "account"], "create_items": False,
                      "verbs": {"https://example.org/verbs/read": {"kind": "view"}, ADL + "experienced": None}}}
    tenant, h = new_tenant(conn, settings=rules)
    seed(client, {**auth, "X-Adaptrec-Tenant": tenant}, items=["q1", f"{SITE}/question/2"])
    with conn:
        conn.cursor().execute("INSERT INTO xapi_activities (tenant, activity_id, item_id) VALUES (%s, %s, 'q1')",
                              (tenant, f"{SITE}/question/1"))
    both = {"objectType": "Agent", "mbox": "mailto:ann@example.org"}
    batch = [statement(verb="https://example.org/verbs/read", success=None, actor=both),  # mapped: q1
             statement(activity=f"{SITE}/question/2", actor=both),                         # an item named as the IRI
             statement(activity=f"{SITE}/question/3"),                                     # unknown, not created
             statement(verb="experienced", success=None)]                                  # the default removed
    assert client.post("/xapi/statements", json=batch, headers=h).status_code == 200
    assert sorted((r[1], r[2], r[3]) for r in interactions(conn, tenant)) == [
        ("ann@example.org", "https://lms.example.org/question/2", "attempt"), ("ann@example.org", "q1", "view")]
    assert dict(rows(conn, "SELECT statement_id::text, reason FROM xapi_unmappable WHERE tenant = %s", tenant)) == {
        batch[2]["id"]: "unknown_activity", batch[3]["id"]: "unknown_verb"}
    assert rows(conn, "SELECT count(*) FROM items WHERE tenant = %s", tenant) == [(2,)]


# ---- tenants -------------------------------------------------------------------------------
def test_tenants_are_kept_apart(client, conn):
    a, ha = new_tenant(conn)
    b, hb = new_tenant(conn)
    s = statement()
    assert client.post("/xapi/statements", json=s, headers=ha).status_code == 200
    # the same statement id in another tenant is another tenant's statement, not a duplicate or a conflict
    other = {**s, "result": {"success": False}}
    assert client.post("/xapi/statements", json=other, headers=hb).status_code == 200
    assert [r[4] for r in interactions(conn, a)] == [1] and [r[4] for r in interactions(conn, b)] == [0]
    named = client.post("/xapi/statements", json=statement(), headers={**ha, "X-Adaptrec-Tenant": b})
    assert named.status_code == 403
    assert stored_statements(conn, a) == 1 and stored_statements(conn, b) == 1


# ---- recommendations move as statements arrive ----------------------------------------------
def test_recommendations_move_as_statements_arrive(client, conn, auth):
    tenant, h = new_tenant(conn)
    operator = {**auth, "X-Adaptrec-Tenant": tenant}
    q = [f"{SITE}/question/{k}" for k in range(4)]
    course = {"contextActivities": {"parent": [{"id": f"{SITE}/course/1"}]}}
    # With no model yet, an item's p is its smoothed success rate and `target` serves p nearest 0.5.
    # Everyone answers question 0 wrong and the others right: question 0 is nearest 0.5.
    client.post("/xapi/statements", headers=h, json=[
        statement(activity=item, user=f"u{k}", success=(item != q[0]), context=course) for item in q for k in range(3)])
    query = {"user_id": "ann", "units": [f"{SITE}/course/1"], "n": 4}
    first = client.post("/v1/recommendations", json=query, headers=operator).json
    assert first["fallback"] == "no_model" and first["items"][0]["item_id"] == q[0], first
    # Then many pass question 0 and fail question 3: question 3 moves to the front, question 0's p rises.
    client.post("/xapi/statements", headers=h, json=[
        statement(activity=item, user=f"w{k}", success=(item == q[0]), context=course)
        for item in (q[0], q[3]) for k in range(8)])
    second = client.post("/v1/recommendations", json=query, headers=operator).json
    assert second["items"][0]["item_id"] == q[3], second
    p = [{i["item_id"]: i["p"] for i in answer["items"]} for answer in (first, second)]
    assert p[1][q[0]] > p[0][q[0]] + 0.2 and p[1][q[3]] < p[0][q[3]] - 0.2, p


def test_the_overview_counts_the_tenants_unmappable_statements(client, conn):
    from tests.service.test_dashboard_access import sign_in

    tenant, h = new_tenant(conn)
    with conn:
        _, dash_key = keys.create_key(conn, "analyst", ["dashboard"], tenant=tenant)
    sign_in(client, dash_key)
    assert 'id="xapi-unmappable"' not in client.get("/dashboard").get_data(as_text=True)
    client.post("/xapi/statements", headers=h, json=[statement(verb="https://example.org/verbs/pondered"),
                                                     statement(success=None), statement()])
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'id="xapi-unmappable"' in page and "<strong>2</strong> (2 in the last 7 days)" in page


def test_text_postgres_cannot_hold_is_kept_as_near_as_it_can_be(client, conn):
    """NUL and unpaired surrogates are valid in a JSON string, so in a statement: accepted, and kept
    with U+FFFD in their place; an actor named with them is no user id (unmappable)."""
    tenant, h = new_tenant(conn)
    odd = statement(result={"success": True, "response": "a\u0000b\ud800"})
    odd["object"]["definition"]["name"] = {"en-US": "Q\u0000"}
    unmapped = statement(verb="https://example.org/verbs/pondered",
                         result={"extensions": {"https://x.org/e": "\u0000"}})
    nameless = statement(actor={"account": {"homePage": SITE, "name": "ann\udc00"}})
    assert client.post("/xapi/statements", json=[odd, unmapped, nameless], headers=h).status_code == 200
    assert rows(conn, "SELECT response ->> 'response' FROM interactions WHERE tenant = %s", tenant) == [
        ("a\ufffdb\ufffd",)]
    assert rows(conn, "SELECT title FROM items WHERE tenant = %s", tenant) == [("Q\ufffd",)]
    assert dict(rows(conn, "SELECT statement_id::text, reason FROM xapi_unmappable WHERE tenant = %s", tenant)) == {
        unmapped["id"]: "unknown_verb", nameless["id"]: "bad_user_id"}
    # the digest is the statement's as sent: a resend is a duplicate, not a conflict
    assert client.post("/xapi/statements", json=[odd, unmapped], headers=h).status_code == 200


def test_the_cli_sets_a_tenants_rules_after_checking_them(client, conn, db_url, redis_url, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    tenant, _ = new_tenant(conn)
    assert main(["tenants", "set", tenant, "--xapi", '{"actor": ["mbox"], "create_items": false}']) == 0
    assert "maps xAPI statements by" in capsys.readouterr().out
    assert tenants.get(conn, tenant)["settings"]["xapi"] == {"actor": ["mbox"], "create_items": False}
    for bad, says in [('{"actor": ["email"]}', "settings.xapi.actor"), ("[1]", "must be a JSON object"),
                      ("{", "not JSON"), ('{"verbs": {"v": {"kind": "Read"}}}', "lower-case word")]:
        assert main(["tenants", "set", tenant, "--xapi", bad]) == 2
        assert says in capsys.readouterr().err
    assert main(["tenants", "set", tenant]) == 2 and "give --mode, --xapi or both" in capsys.readouterr().err
    assert tenants.get(conn, tenant)["settings"]["xapi"] == {"actor": ["mbox"], "create_items": False}
    conn.rollback()


def test_a_workers_cached_activities_are_used_and_new_ones_still_created(client, app, conn):
    tenant, h = new_tenant(conn)
    client.post("/xapi/statements", json=statement(activity=f"{SITE}/question/1"), headers=h)   # created
    client.post("/xapi/statements", json=statement(activity=f"{SITE}/question/1"), headers=h)   # read, remembered
    cached = app.extensions["adaptrec"].activities.get(tenant, [f"{SITE}/question/1", f"{SITE}/question/2"])
    assert cached == {f"{SITE}/question/1": f"{SITE}/question/1"}
    batch = [statement(activity=f"{SITE}/question/1"), statement(activity=f"{SITE}/question/2")]
    assert client.post("/xapi/statements", json=batch, headers=h).status_code == 200
    assert sorted(r[2] for r in interactions(conn, tenant)) == [f"{SITE}/question/1"] * 3 + [f"{SITE}/question/2"]

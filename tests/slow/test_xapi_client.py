"""xAPI as a learning platform speaks it: real xAPI clients from npm (@xapi/xapi, and Rustici's TinCanJS
whose saveStatement PUTs) under Node, against gunicorn serving adaptrec, with an adaptrec key as the
Basic password. Statements of one tenant's learners arrive, and its recommendations move with them.
The clients are installed by `make test` (harness/xapi_client.py); without Node or them this fails."""
from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from app.access import keys, tenants
from harness import xapi_client
from harness.service import running_service
from tests.conftest import TEST_API_KEY
from tests.service.test_observability import value

pytestmark = pytest.mark.slow  # starts gunicorn and Node
SITE = "https://lms.example.org"
Q = [f"{SITE}/mod/quiz/question/{k}" for k in range(4)]
COURSE = f"{SITE}/course/42"


@pytest.fixture
def platform(settings, conn, tmp_path):
    """gunicorn over the test database, a tenant `lms` and its ingest key (the platform's LRS password)."""
    tenant = "lms" + uuid.uuid4().hex[:6]
    with conn:
        tenants.ensure(conn, tenant)
        _, key = keys.create_key(conn, "moodle-logstore", ["ingest"], tenant=tenant)
    with running_service(settings.database_url, settings.redis_url, TEST_API_KEY, tmp_path / "gunicorn.log",
                         redis_prefix=settings.redis_prefix, workers=2,
                         env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}) as service:
        yield service.base_url, tenant, key


def send(base: str, key: str, *steps: dict, version: str = "1.0.3") -> list[dict]:
    return xapi_client.send({"endpoint": base + "/xapi/", "username": "moodle", "password": key,
                             "version": version, "steps": list(steps)})


def recommend(base: str, tenant: str) -> dict:
    request = urllib.request.Request(base + "/v1/recommendations", method="POST", data=json.dumps(
        {"user_id": "newcomer", "units": [COURSE], "n": 4}).encode(), headers={
        "Authorization": f"Bearer {TEST_API_KEY}", "X-Adaptrec-Tenant": tenant, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def event(user: str, activity: str, success: bool, verb: str = "answered") -> dict:
    return {"user": user, "activity": activity, "name": activity.rsplit("/", 1)[1], "verb": verb,
            "success": success, "scaled": 1.0 if success else 0.0, "parent": COURSE}


def test_the_node_clients_are_installed():
    """Fails, never skips, when `make xapi-client` has not run or Node is missing."""
    assert xapi_client.node() is not None, xapi_client.ADVICE
    assert xapi_client.installed(), xapi_client.ADVICE


def test_statements_from_real_clients_are_recorded_and_move_recommendations(platform, conn):
    base, tenant, key = platform
    [about] = send(base, key, {"op": "about"})
    assert about["status"] == 200 and "1.0.3" in about["data"]["version"], about

    # @xapi/xapi: a batch (POST a list), and one statement (POST one); the platform's learners answer:
    # question 0 wrong, the others right.
    [batch, one] = send(base, key, {"op": "send", "events": [event(f"u{k}", q, q != Q[0]) for q in Q
                                                              for k in range(3)][:-1]},
                        {"op": "send", "events": [event("u2", Q[3], True)]})
    assert batch["status"] == 200 and len(batch["ids"]) == 11 and batch["version"] == "1.0.3", batch
    assert one["status"] == 200 and len(one["ids"]) == 1, one
    first = recommend(base, tenant)
    assert first["items"][0]["item_id"] == Q[0] and first["fallback"] == "no_model", first

    # TinCanJS: saveStatement PUTs each statement under the id it stamped; many pass question 0 and fail 3.
    [tincan] = send(base, key, {"op": "tincan", "events": [event(f"w{k}", q, q == Q[0]) for q in (Q[0], Q[3])
                                                            for k in range(8)]})
    assert [s["status"] for s in tincan["saved"]] == [204] * 16 and not any(s["error"] for s in tincan["saved"])
    assert all(s["version"] == "1.0.3" for s in tincan["saved"])
    second = recommend(base, tenant)
    assert second["items"][0]["item_id"] == Q[3], second
    p = [{i["item_id"]: i["p"] for i in answer["items"]} for answer in (first, second)]
    assert p[1][Q[0]] > p[0][Q[0]] and p[1][Q[3]] < p[0][Q[3]], p

    # 2.0.0 too; a resent statement is stored once; a malformed one is refused with the rule named
    sid = str(uuid.uuid4())
    statement = {"id": sid, "actor": {"mbox": "mailto:ann@example.org"},
                 "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"}, "object": {"id": Q[1]}}
    resent = send(base, key, {"op": "raw", "statement": statement}, {"op": "raw", "statement": statement},
                  version="2.0.0")
    assert [r["ids"] for r in resent] == [[sid], [sid]], resent
    [bad] = send(base, key, {"op": "raw", "statement": {**statement, "id": str(uuid.uuid4()),
                                                        "actor": {"mbox": "ann@example.org"}}})
    assert bad["status"] == 400 and "rule: mbox" in bad["body"]["detail"], bad
    [wrong_key] = xapi_client.send({"endpoint": base + "/xapi/", "username": "moodle", "password": "nope",
                                    "steps": [{"op": "send", "events": [event("u1", Q[1], True)]}]})
    assert wrong_key["status"] == 401

    with conn.cursor() as cur:
        cur.execute("SELECT kind, count(*) FROM interactions WHERE tenant = %s GROUP BY kind ORDER BY kind", (tenant,))
        assert cur.fetchall() == [("attempt", 28), ("view", 1)]
        cur.execute("SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM xapi_statements "
                    "WHERE tenant = %s", (tenant,))
        assert cur.fetchone() == (29, 0)
        cur.execute("SELECT count(*) FROM unit_items WHERE tenant = %s AND unit_id = %s", (tenant, COURSE))
        assert cur.fetchone() == (4,)
    conn.rollback()
    with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:
        scraped = answer.read().decode()
    assert value(scraped, "adaptrec_xapi_statements_total", status="recorded", reason="") == 29
    assert value(scraped, "adaptrec_xapi_statements_total", status="duplicate", reason="") == 1
    assert value(scraped, "adaptrec_xapi_statements_total", status="rejected", reason="mbox") == 1

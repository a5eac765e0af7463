"""Tenants: every query names its tenant, and a key of one tenant can never read, change or count
anything of another, for every operation of /openapi.json (walked, so a new one cannot skip it)."""
from __future__ import annotations

import re
import uuid

import pytest

from app.access import keys, tenants
from app.infra import queries as q
from tests.seed import seed

# Queries over tenant tables that rightly span tenants or address rows by a global id.
SPANNING = {
    "list_tenants", "get_tenant", "tenant_names", "ensure_tenant", "set_tenant_settings", "tenant_counts",
    "delete_tenant", "tenant_size", "totara_health",                     # about tenants themselves
    "api_key_by_id", "revoke_api_key", "list_api_keys", "insert_api_key",  # keys: operator's, by key id
    "finish_job_run", "job_metrics", "active_model_metrics",             # a run by id; /metrics for operators
    "fail_model", "retire_active_model_like", "insert_model_arrays",     # a model by its (global) id
    "create_import_stages",                                              # temporary tables, no tenant
    "interactions_rebuildable", "interactions_empty",                    # the table's DDL; any tenant's rows
    "insert_recommendation_logs",                                        # buffered rows, each names its own
}
TENANT_TABLES = ("users", "items", "units", "unit_children", "unit_items", "interactions", "models",
                 "experiments", "recommendation_log", "calibration_reports", "job_runs", "catalog_state",
                 "attempt_history", "unit_paths", "prediction_outcomes", "knowledge_snapshots", "unit_mastery",
                 "experiment_versions", "experiment_exposures", "experiment_attempts", "xapi_statements",
                 "xapi_activities", "xapi_unmappable")


def test_every_query_over_a_tenant_table_names_the_tenant():
    for name, query in q.all_queries().items():
        touches = [t for t in TENANT_TABLES if re.search(rf"\b{t}\b", query.sql)]
        if touches and name not in SPANNING:
            assert "%(tenant)s" in query.sql, f"query {name} reads {touches} without naming the tenant"


SECRET = "B-ONLY-SECRET"
TENANT = {"a": "a", "b": "b"}
IDS = {"user_id": "shared-user", "item_id": "shared-item", "unit_id": "shared-unit", "name": "shared-exp"}
BODIES = {   # a valid body for every operation that takes one, naming the ids tenant B holds too
    ("put", "/v1/users/{user_id}"): {"attrs": {"grade": 3}},
    ("post", "/v1/users"): {"users": [{"user_id": "shared-user", "attrs": {}}]},
    ("put", "/v1/items/{item_id}"): {"title": "A's item", "units": ["shared-unit"]},
    ("post", "/v1/items"): {"items": [{"item_id": "shared-item", "title": "A's item"}]},
    ("put", "/v1/units/{unit_id}"): {"name": "A's unit", "items": ["shared-item"]},
    ("post", "/v1/units"): {"units": [{"unit_id": "shared-unit", "name": "A's unit"}]},
    ("put", "/v1/experiments/{name}"): {"variants": [{"name": "a", "weight": 1, "strategy": "top"}]},
    ("post", "/v1/interactions"): {"event_id": "e1", "user_id": "shared-user", "item_id": "shared-item",
                                   "outcome": 1},
    ("post", "/v1/recommendations"): {"user_id": "shared-user", "units": ["shared-unit"], "n": 5},
    ("post", "/v1/predictions"): {"user_id": "shared-user", "units": ["shared-unit"], "item_ids": ["shared-item"]},
    ("post", "/xapi/statements"): {"actor": {"account": {"homePage": "https://lms.example", "name": "shared-user"}},
                                   "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                                   "object": {"id": "shared-item"}, "result": {"success": True}},
    ("put", "/xapi/statements"): {"actor": {"mbox": "mailto:shared-user@example.org"},
                                  "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                                  "object": {"id": "https://lms.example/shared-item"}},
}


def tenant_rows(label: str) -> dict:
    """The same ids in each tenant, with content that says whose it is (for tests.seed.seed)."""
    return {"items": [{"item_id": "shared-item", "title": label}, {"item_id": f"{label}-item", "title": label}],
            "units": [{"unit_id": "shared-unit", "name": label, "items": ["shared-item", f"{label}-item"]}],
            "users": [{"user_id": "shared-user", "attrs": {"secret": label}}],
            "interactions": [{"event_id": f"{label}-{k}", "user_id": "shared-user", "item_id": f"{label}-item",
                              "kind": "view"} for k in range(3)],
            "experiments": {"shared-exp": {"description": label,
                                           "variants": [{"name": label, "weight": 1, "strategy": "top"}]}}}


def snapshot(conn, tenant: str) -> dict:
    out = {}
    with conn.cursor() as cur:
        for table in ("users", "items", "units", "unit_items", "unit_children", "interactions", "experiments",
                      "recommendation_log", "models", "xapi_statements", "xapi_activities"):
            cur.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')), count(*) "
                        f"FROM {table} t WHERE tenant = %s", (tenant,))
            out[table] = cur.fetchone()
    conn.rollback()
    return out


@pytest.fixture
def two_tenants(client, conn):
    """Tenants A and B (names fresh per test: Redis outlives a test's database rows)."""
    run = uuid.uuid4().hex[:8]
    TENANT["a"], TENANT["b"] = f"a{run}", f"b{run}"
    with conn:
        tenants.ensure(conn, TENANT["a"])
        tenants.ensure(conn, TENANT["b"])
        _, key_a = keys.create_key(conn, "a-admin", ["admin"], tenant=TENANT["a"])
        _, key_b = keys.create_key(conn, "b-admin", ["admin"], tenant=TENANT["b"])
    a = {"Authorization": f"Bearer {key_a}"}
    b = {"Authorization": f"Bearer {key_b}"}
    seed(client, b, **tenant_rows(SECRET))
    seed(client, a, **tenant_rows("tenant-a"))
    return a, b


def test_a_key_of_one_tenant_never_reads_changes_or_counts_another(client, conn, two_tenants):
    a, _ = two_tenants
    before = snapshot(conn, TENANT["b"])
    doc = client.get("/openapi.json").json
    walked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not op.get("security"):
                continue  # public: health, metrics, the document, Totara's signed endpoints (own tests)
            url = path.format(**IDS)
            body = BODIES.get((method, path))
            assert body is not None or "requestBody" not in op, f"add a body for {method} {path} to BODIES"
            # Asking for tenant B by name with A's key is refused outright ...
            named = client.open(url, method=method.upper(), json=body, headers={**a, "X-Adaptrec-Tenant": TENANT["b"]})
            assert named.status_code == 403, (method, path, named.json)
            # ... and the same ids, unnamed, are A's: nothing of B comes back.
            answer = client.open(url, method=method.upper(), json=body,
                                 headers={**a, "X-Experience-API-Version": "1.0.3"} if path.startswith("/xapi") else a)
            assert answer.status_code < 500, (method, path, answer.json)
            assert SECRET not in answer.get_data(as_text=True), (method, path)
            walked += 1
    assert walked >= 20
    assert snapshot(conn, TENANT["b"]) == before


def test_the_same_ids_are_different_things_in_two_tenants(client, two_tenants):
    a, b = two_tenants
    assert client.get("/v1/items/shared-item", headers=a).json["title"] == "tenant-a"
    assert client.get("/v1/items/shared-item", headers=b).json["title"] == SECRET
    assert client.get("/v1/users/shared-user", headers=a).json["interactions"] == 3
    assert client.get("/v1/items/B-ONLY-SECRET-item", headers=a).status_code == 404
    trending = client.get("/v1/trending", headers=a).json["items"]
    assert [t["item_id"] for t in trending] == ["tenant-a-item"]
    rec = client.post("/v1/recommendations", json={"user_id": "shared-user", "units": ["shared-unit"], "n": 5},
                      headers=a).json
    assert {i["item_id"] for i in rec["items"]} <= {"shared-item", "tenant-a-item"}
    assert [e["name"] for e in client.get("/v1/experiments", headers=a).json["experiments"]] == ["shared-exp"]


def test_an_operator_key_names_the_tenant_and_an_unknown_one_is_404(client, auth, two_tenants):
    def title(tenant: str) -> str:
        return client.get("/v1/items/shared-item", headers={**auth, "X-Adaptrec-Tenant": tenant}).json["title"]

    assert title(TENANT["b"]) == SECRET and title(TENANT["a"]) == "tenant-a"
    assert client.get("/v1/items/shared-item", headers=auth).status_code == 404   # the default tenant is empty
    missing = client.get("/v1/items/shared-item", headers={**auth, "X-Adaptrec-Tenant": "nope"})
    assert missing.status_code == 404 and "adaptrec tenants add nope" in missing.json["detail"]


def test_removing_a_tenant_deletes_all_its_data_and_nothing_else(client, conn, two_tenants):
    _, b = two_tenants
    before_a = snapshot(conn, TENANT["a"])
    with conn:
        deleted = tenants.remove(conn, TENANT["b"])
    assert deleted["items"] == 2 and deleted["interactions"] == 3 and deleted["api_keys"] == 1
    assert all(count == 0 for _, count in snapshot(conn, TENANT["b"]).values())
    assert snapshot(conn, TENANT["a"]) == before_a
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE tenant = %s", (TENANT["b"],))
        assert cur.fetchone()[0] == 0
    conn.rollback()
    with pytest.raises(LookupError):
        tenants.remove(conn, TENANT["b"])
    # The worker trusts B's key for a few seconds more (ADAPTREC_KEY_CACHE_S): a write is a clear 409.
    late = client.put("/v1/users/late", json={"attrs": {}}, headers=b)
    assert late.status_code == 409 and "deleted while it ran" in late.json["detail"], late.json


def test_an_import_into_a_new_tenant_creates_it_and_a_totara_folder_marks_it(conn, db_url, redis_url, monkeypatch,
                                                                             tmp_path, capsys):
    from cli.main import main

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "item_data.csv").write_text("item_id,engage_article,topic_Sales,document\nengage_article1,1,1,deals\n")
    (folder / "user_interactions.csv").write_text("user_id,item_id,rating,timestamp\n5,engage_article1,1,1700000000\n")
    assert main(["import", "--format", "totara", "--tenant", "7", "-q", str(folder)]) == 0
    assert "created tenant '7'" in capsys.readouterr().err
    row = tenants.get(conn, "7")
    assert row["settings"]["totara"] is True and row["settings"]["training"]["mode"] == "full"
    with conn.cursor() as cur:
        cur.execute("SELECT tenant FROM job_runs WHERE job = 'import'")
        assert cur.fetchall() == [("7",)]
        cur.execute("SELECT kind FROM items WHERE tenant = '7'")
        assert cur.fetchall() == [("engage_article",)]
    conn.rollback()

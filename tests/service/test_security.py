"""API keys with scopes, stored hashed, revocable without a restart; per-key rate limits in Redis."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app.access import keys
from app.api.factory import close as close_app
from app.api.factory import create_app
from cli.main import main as cli_main
from tests.seed import seed


@pytest.fixture
def keyed_app(settings, conn):
    """The app with no key cache, so a revocation shows at once (the default is seconds)."""
    application = create_app(replace(settings, key_cache_s=0.0))
    yield application
    close_app(application)


def new_key(conn, scopes, rate_limit=None, name="tester"):
    with conn:
        return keys.create_key(conn, name, scopes, rate_limit)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


EVENT = {"user_id": "u1", "item_id": "i1", "kind": "view"}


def test_keys_are_stored_as_hashes_never_in_clear(conn):
    key_id, key = new_key(conn, ["serve"])
    assert key.startswith(f"ar_{key_id}_") and len(key) > 50
    with conn.cursor() as cur:
        cur.execute("SELECT key_hash FROM api_keys WHERE key_id = %s", (key_id,))
        (stored,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM api_keys WHERE row_to_json(api_keys)::text LIKE %s", (f"%{key[-20:]}%",))
        assert cur.fetchone()[0] == 0
    assert stored == keys.hash_key(key) and stored != key


def test_each_scope_opens_only_its_operations(keyed_app, conn, auth):
    client = keyed_app.test_client()
    seed(client, auth, items=["i1"])
    serve = bearer(new_key(conn, ["serve"])[1])
    ingest = bearer(new_key(conn, ["ingest"])[1])
    admin = bearer(new_key(conn, ["admin"])[1])
    recommend = {"user_id": "u1", "units": ["root"], "n": 1}

    assert client.get("/v1/items/i1", headers=serve).status_code == 200
    assert client.post("/v1/recommendations", json=recommend, headers=serve).status_code == 200
    refused = client.post("/v1/interactions", json=EVENT, headers=serve)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert "needs 'ingest'" in refused.json["detail"] and "scope serve" in refused.json["detail"]
    assert client.put("/v1/items/i2", json={}, headers=serve).status_code == 403
    assert client.get("/v1/experiments/e1/results", headers=serve).status_code == 403   # who learned more: admin

    assert client.post("/v1/interactions", json=EVENT, headers=ingest).status_code == 201
    assert client.post("/v1/recommendations", json=recommend, headers=ingest).status_code == 403
    assert client.put("/v1/experiments/e1", json={"variants": [{"name": "a", "weight": 1}]},
                      headers=ingest).status_code == 403

    # admin includes the other scopes
    assert client.put("/v1/items/i2", json={}, headers=admin).status_code == 200
    assert client.post("/v1/interactions", json={**EVENT, "item_id": "i2"}, headers=admin).status_code == 201
    assert client.post("/v1/recommendations", json=recommend, headers=admin).status_code == 200


def test_a_revoked_key_is_refused_without_a_restart(keyed_app, conn):
    client = keyed_app.test_client()
    key_id, key = new_key(conn, ["serve"])
    assert client.get("/v1/experiments", headers=bearer(key)).status_code == 200
    with conn:
        assert keys.revoke_key(conn, key_id)
    r = client.get("/v1/experiments", headers=bearer(key))
    assert r.status_code == 401 and "revoked" in r.json["detail"]


def test_revocation_reaches_a_caching_worker_within_its_cache_time(settings, conn):
    application = create_app(replace(settings, key_cache_s=1.0))
    try:
        client = application.test_client()
        key_id, key = new_key(conn, ["serve"])
        assert client.get("/v1/experiments", headers=bearer(key)).status_code == 200
        with conn:
            keys.revoke_key(conn, key_id)
        time.sleep(1.1)
        assert client.get("/v1/experiments", headers=bearer(key)).status_code == 401
    finally:
        close_app(application)


@pytest.mark.parametrize("presented", [
    "ar_0123456789ab_" + "x" * 43,                       # well-formed, unknown id
    "ar_'; DROP TABLE api_keys; --_" + "x" * 30,          # SQL-looking
    "../../etc/passwd",
    "9" * 400,
])
def test_unknown_or_malformed_keys_are_401(keyed_app, conn, presented):
    key_id, _ = new_key(conn, ["admin"])
    client = keyed_app.test_client()
    r = client.get("/v1/experiments", headers=bearer(presented))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    # a real id with a wrong secret is refused too
    forged = f"ar_{key_id}_" + "A" * 43
    assert client.get("/v1/experiments", headers=bearer(forged)).status_code == 401
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys")
        assert cur.fetchone()[0] == 1


def test_over_the_rate_limit_is_429_with_retry_after(keyed_app, conn):
    client = keyed_app.test_client()
    _, key = new_key(conn, ["serve"], rate_limit=3)
    statuses = []
    for _ in range(10):
        r = client.get("/v1/experiments", headers=bearer(key))
        statuses.append(r.status_code)
        if r.status_code == 429:
            limited = r
    # ten requests span at most two one-second windows: at most six pass
    assert statuses.count(200) <= 6 and statuses.count(429) >= 4
    assert limited.mimetype == "application/problem+json"
    assert limited.headers["Retry-After"] == "1" and limited.headers["RateLimit-Limit"] == "3"
    assert "3 requests per second" in limited.json["detail"]
    time.sleep(1.05)
    assert client.get("/v1/experiments", headers=bearer(key)).status_code == 200


def test_rate_limits_are_per_key(keyed_app, conn):
    client = keyed_app.test_client()
    _, limited = new_key(conn, ["serve"], rate_limit=1)
    _, other = new_key(conn, ["serve"], rate_limit=1)
    # three requests span at most two one-second windows: at a limit of 1, at least one is refused
    answers = [client.get("/v1/experiments", headers=bearer(limited)) for _ in range(3)]
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 200 and 429 in statuses, statuses
    refused = answers[statuses.index(429)]
    assert refused.mimetype == "application/problem+json" and refused.json["status"] == 429
    assert refused.json["title"] == "Too Many Requests" and "1 requests per second" in refused.json["detail"]
    assert refused.headers["RateLimit-Limit"] == "1" and refused.headers["RateLimit-Remaining"] == "0"
    # the other key, with the same limit, is not held back by the first one's requests
    assert client.get("/v1/experiments", headers=bearer(other)).status_code == 200


def test_the_default_limit_applies_to_keys_without_their_own(settings, conn):
    application = create_app(replace(settings, rate_limit_per_s=2, key_cache_s=0.0))
    try:
        client = application.test_client()
        _, key = new_key(conn, ["serve"])
        statuses = [client.get("/v1/experiments", headers=bearer(key)).status_code for _ in range(8)]
        assert 429 in statuses
    finally:
        close_app(application)


def test_redis_down_lets_requests_through_unlimited(settings, conn):
    application = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0", rate_limit_per_s=1))
    try:
        client = application.test_client()
        _, key = new_key(conn, ["serve"])
        assert [client.get("/v1/experiments", headers=bearer(key)).status_code for _ in range(3)] == [200] * 3
        assert "adaptrec_rate_limit_unchecked_total" in client.get("/metrics").text
    finally:
        close_app(application)


def test_openapi_names_each_operations_scope_and_the_gate_answers(client):
    doc = client.get("/openapi.json").json
    ops = doc["paths"]
    assert ops["/v1/recommendations"]["post"]["x-scope"] == "serve"
    assert ops["/v1/items/{item_id}"]["get"]["x-scope"] == "serve"
    assert ops["/v1/interactions"]["post"]["x-scope"] == "ingest"
    assert ops["/v1/items/{item_id}"]["put"]["x-scope"] == "admin"
    assert ops["/v1/experiments/{name}/stop"]["post"]["x-scope"] == "admin"
    assert ops["/v1/experiments/{name}/results"]["get"]["x-scope"] == "admin"
    for path, methods in ops.items():
        for method, op in methods.items():
            if "security" in op:
                assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= set(op["responses"]), (method, path)


# ---- the CLI ------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch, settings):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", settings.redis_url)


def test_cli_adds_lists_and_revokes_keys(cli_env, keyed_app, conn, capsys):
    assert cli_main(["keys", "add", "--name", "lms backend", "--scopes", "serve,ingest", "--rate-limit", "50"]) == 0
    key = capsys.readouterr().out.strip()
    key_id = key.split("_")[1]
    client = keyed_app.test_client()
    assert client.get("/v1/experiments", headers=bearer(key)).status_code == 200

    assert cli_main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "lms backend" in listing and "serve,ingest" in listing and "live" in listing
    assert key.split("_", 2)[2] not in listing

    assert cli_main(["keys", "revoke", key_id]) == 0
    assert f"revoked {key_id}" in capsys.readouterr().out
    assert client.get("/v1/experiments", headers=bearer(key)).status_code == 401
    assert cli_main(["keys", "revoke", key_id]) == 1
    assert "no live key" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["keys", "add", "--name", "x", "--scopes", "serve,root"], "unknown: root"),
    (["keys", "add", "--name", "x", "--scopes", ""], "scopes must be"),
    (["keys", "add", "--scopes", "serve"], "--name"),
    (["keys", "add", "--name", "x", "--scopes", "serve", "--rate-limit", "0"], "--rate-limit"),
])
def test_cli_key_arguments_are_checked(cli_env, conn, capsys, argv, message):
    assert cli_main(argv) == 2
    assert message in capsys.readouterr().err

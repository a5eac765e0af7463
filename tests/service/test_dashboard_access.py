"""The dashboard's gate without a browser: no page without a session, no session without the
scope, no cross-site form, one tenant never sees another's data, and bad ids get a page that
says what to fix. In-process (Flask's test client) against the real Postgres and Redis."""
from __future__ import annotations

import html
import re
import uuid

import pytest

from app.access import keys, tenants
from tests.conftest import TEST_API_KEY
from tests.seed import seed

SECRET = "B-ONLY-SECRET"
OPEN = {"dashboard.login", "dashboard.login_form", "dashboard.static_file"}


def sample_path(rule) -> str:
    """A concrete path for a dashboard rule (any id: without a session nothing is looked up)."""
    return re.sub(r"<(?:int:)?([^>]+)>", lambda m: "7" if m.group(0).startswith("<int:") else "some-id", rule.rule)


def dashboard_rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("dashboard.") and r.endpoint not in OPEN]


def sign_in(client, key: str):
    form = client.get("/dashboard/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    return client.post("/dashboard/login", data={"login_token": token, "api_key": key, "next": ""})


def csrf(client, path: str = "/dashboard/experiments") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


@pytest.fixture
def two_tenants(client, conn):
    """Tenants A and B with the same ids (B's content says SECRET); a dashboard key of A, an admin
    key of B, and a serve-only key of A."""
    run = uuid.uuid4().hex[:8]
    a, b = f"a{run}", f"b{run}"
    with conn:
        tenants.ensure(conn, a)
        tenants.ensure(conn, b)
        _, dash_a = keys.create_key(conn, "a-dashboard", ["dashboard"], tenant=a)
        _, admin_a = keys.create_key(conn, "a-admin", ["admin"], tenant=a)
        _, admin_b = keys.create_key(conn, "b-admin", ["admin"], tenant=b)
        _, serve_a = keys.create_key(conn, "a-serve", ["serve", "ingest"], tenant=a)
    for key, label in ((admin_b, SECRET), (admin_a, "tenant-a")):
        seed(client, {"Authorization": f"Bearer {key}"},
             items=[{"item_id": "shared-item", "title": label}, {"item_id": f"{label}-item", "title": label}],
             units=[{"unit_id": "shared-unit", "name": label, "items": ["shared-item", f"{label}-item"]},
                    {"unit_id": f"{label}-unit", "name": label}],
             users=[{"user_id": "shared-user", "attrs": {"secret": label}}, {"user_id": f"{label}-user", "attrs": {}}],
             interactions=[{"event_id": f"{label}-{k}", "user_id": u, "item_id": f"{label}-item", "kind": "attempt",
                            "outcome": k % 2} for k, u in enumerate(["shared-user", f"{label}-user"] * 2)],
             experiments={f"{label}-exp": {"description": label,
                                           "variants": [{"name": label, "weight": 1, "strategy": "top"}]}})
    return {"a": a, "b": b, "dash_a": dash_a, "admin_a": admin_a, "serve_a": serve_a}


def test_every_dashboard_route_refuses_without_a_session(app, client):
    rules = dashboard_rules(app)
    assert len(rules) >= 12, [r.rule for r in rules]
    for rule in rules:
        path = sample_path(rule)
        if "GET" in rule.methods:
            answer = client.get(path)
            assert answer.status_code == 302, path
            assert answer.headers["Location"].startswith("/dashboard/login?next="), path
        if "POST" in rule.methods:
            answer = client.post(path, data={"csrf_token": "x"})
            assert answer.status_code == 401, path
            assert "sign in" in answer.text.lower()


def test_an_api_key_header_opens_no_dashboard_page(client, auth):
    """The dashboard takes its session cookie only: a Bearer key (even every scope) is not a session."""
    assert client.get("/dashboard/models", headers=auth).status_code == 302


def test_a_key_without_the_dashboard_scope_is_refused_and_gets_no_session(client, two_tenants):
    answer = sign_in(client, two_tenants["serve_a"])
    assert answer.status_code == 403
    assert "needs 'dashboard' or 'admin'" in html.unescape(answer.text)
    assert "adaptrec_dashboard=" not in answer.headers.get("Set-Cookie", "")
    assert client.get("/dashboard").status_code == 302


def test_a_wrong_key_is_refused(client):
    answer = sign_in(client, "ar_0123456789ab_" + "x" * 40)
    assert answer.status_code == 401 and "not valid" in answer.text


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(app):
    plain = app.test_client()
    cookie = sign_in(plain, TEST_API_KEY).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie
    https = app.test_client()
    https.environ_base["wsgi.url_scheme"] = "https"
    form = https.get("https://localhost/dashboard/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    cookie = https.post("https://localhost/dashboard/login",
                        data={"login_token": token, "api_key": TEST_API_KEY}).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_a_sign_in_without_its_form_token_is_refused(client):
    answer = client.post("/dashboard/login", data={"api_key": TEST_API_KEY})
    assert answer.status_code == 403
    assert client.get("/dashboard").status_code == 302


def test_cross_site_and_tokenless_posts_are_refused(client, two_tenants, conn):
    assert sign_in(client, two_tenants["admin_a"]).status_code == 302
    path = "/dashboard/experiments/tenant-a-exp/stop"
    token = csrf(client)
    forged = client.post(path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "another site" in forged.text
    marked = client.post(path, data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert marked.status_code == 403
    tokenless = client.post(path, data={})
    assert tokenless.status_code == 403 and "security token" in tokenless.text
    wrong = client.post(path, data={"csrf_token": "not-the-token"})
    assert wrong.status_code == 403
    with conn.cursor() as cur:
        cur.execute("SELECT active FROM experiments WHERE tenant = %s AND name = 'tenant-a-exp'", (two_tenants["a"],))
        assert cur.fetchone()[0] is True      # none of them stopped it
    same_site = client.post(path, data={"csrf_token": token}, headers={"Origin": "http://localhost"})
    assert same_site.status_code == 302
    with conn.cursor() as cur:
        cur.execute("SELECT active FROM experiments WHERE tenant = %s AND name = 'tenant-a-exp'", (two_tenants["a"],))
        assert cur.fetchone()[0] is False


def test_a_dashboard_key_reads_every_page_but_cannot_start_or_stop(client, two_tenants):
    assert sign_in(client, two_tenants["dash_a"]).status_code == 302
    for path in ("/dashboard", "/dashboard/models", "/dashboard/models/shared-unit", "/dashboard/calibration",
                 "/dashboard/experiments", "/dashboard/experiments/tenant-a-exp", "/dashboard/learners",
                 "/dashboard/learners?user_id=shared-user", "/dashboard/items?item_id=shared-item"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    refused = client.post("/dashboard/experiments/tenant-a-exp/stop", data={"csrf_token": csrf(client)})
    assert refused.status_code == 403 and "admin" in refused.text


def test_a_tenant_session_never_sees_another_tenant(client, two_tenants):
    assert sign_in(client, two_tenants["dash_a"]).status_code == 302
    pages = ["/dashboard", "/dashboard/models", "/dashboard/models/shared-unit", "/dashboard/experiments",
             "/dashboard/learners?user_id=shared-user", "/dashboard/items?item_id=shared-item",
             "/dashboard/items?q=only", "/dashboard/learners"]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert SECRET not in answer.text, path
    assert "tenant-a" in client.get("/dashboard/items?item_id=shared-item").text
    for path in (f"/dashboard/models/{SECRET}-unit", f"/dashboard/experiments/{SECRET}-exp",
                 f"/dashboard/learners?user_id={SECRET}-user", f"/dashboard/items?item_id={SECRET}-item"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "in this tenant" in answer.text
    # B's experiment cannot be stopped from A's session either
    assert client.post(f"/dashboard/experiments/{SECRET}-exp/stop",
                       data={"csrf_token": csrf(client)}).status_code in (403, 404)
    switched = client.post("/dashboard/tenant", data={"csrf_token": csrf(client), "tenant": two_tenants["b"]})
    assert switched.status_code == 403
    assert SECRET not in client.get("/dashboard/items?item_id=shared-item").text
    overview = client.get("/dashboard").text
    assert 'name="tenant"' not in overview           # no tenant selector for a tenant key
    assert 'id="request-figures"' not in overview    # nor the service-wide request figures (every tenant's)


def test_an_operator_session_switches_tenant(client, two_tenants):
    assert sign_in(client, TEST_API_KEY).status_code == 302
    page = client.get("/dashboard").text
    assert f'<option value="{two_tenants["b"]}"' in page
    switched = client.post("/dashboard/tenant", data={"csrf_token": csrf(client), "tenant": two_tenants["b"],
                                                      "next": "/dashboard/items?item_id=shared-item"})
    assert switched.status_code == 302 and switched.headers["Location"] == "/dashboard/items?item_id=shared-item"
    assert SECRET in client.get("/dashboard/items?item_id=shared-item").text
    unknown = client.post("/dashboard/tenant", data={"csrf_token": csrf(client), "tenant": "no-such-tenant"})
    assert unknown.status_code == 404


def test_signing_out_ends_the_session_for_good(app, client):
    signed = sign_in(client, TEST_API_KEY)
    cookie = re.search(r"adaptrec_dashboard=([^;]+)", signed.headers["Set-Cookie"]).group(1)
    assert client.get("/dashboard/models").status_code == 200
    assert client.post("/dashboard/logout", data={"csrf_token": csrf(client)}).status_code == 302
    assert client.get("/dashboard/models").status_code == 302
    replay = app.test_client()
    replay.set_cookie("adaptrec_dashboard", cookie, path="/dashboard")
    assert replay.get("/dashboard/models").status_code == 302     # the old cookie opens nothing


def test_revoking_the_key_ends_its_sessions(app, client, settings, conn):
    from app.access.keys import Keyring

    app.extensions["adaptrec"].keys = Keyring(settings.api_keys, ttl_s=0)   # see a revocation at once
    with conn:
        key_id, key = keys.create_key(conn, "ops", ["dashboard"])
    assert sign_in(client, key).status_code == 302
    assert client.get("/dashboard/models").status_code == 200
    with conn:
        keys.revoke_key(conn, key_id)
    assert client.get("/dashboard/models").status_code == 302


def test_unknown_ids_get_a_page_that_says_what_to_fix(client):
    assert sign_in(client, TEST_API_KEY).status_code == 302
    for path, words in [("/dashboard/learners?user_id=nobody", "no learner 'nobody'"),
                        ("/dashboard/items?item_id=nothing", "no item 'nothing'"),
                        ("/dashboard/models/no-unit", "no unit 'no-unit'"),
                        ("/dashboard/calibration/999999", "no model 999999"),
                        ("/dashboard/experiments/no-exp", "no experiment 'no-exp'")]:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert words in html.unescape(answer.text), (path, answer.text[:400])
        assert answer.mimetype == "text/html"


def test_next_after_sign_in_stays_on_the_dashboard(client):
    form = client.get("/dashboard/login?next=https://evil.example/")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    answer = client.post("/dashboard/login", data={"login_token": token, "api_key": TEST_API_KEY,
                                                   "next": "https://evil.example/"})
    assert answer.headers["Location"] == "/dashboard"


def test_sign_in_attempts_are_rate_limited_per_address(client):
    client.environ_base["REMOTE_ADDR"] = "192.0.2.7"   # an address of its own: other tests sign in from 127.0.0.1
    form = client.get("/dashboard/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    answers = [client.post("/dashboard/login", data={"login_token": token, "api_key": f"guess-{k}"}).status_code
               for k in range(12)]
    assert 429 in answers and answers[0] == 401
    client.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    assert sign_in(client, TEST_API_KEY).status_code == 302       # another address is not held back


# The values the API's fuzzing sends, as they arrive in a URL or a form: NUL, an encoded unpaired
# surrogate and other invalid UTF-8, 10,000 characters, a slash and dot-dot.
HOSTILE = ["%00", "a%00b", "%ED%A0%80", "%FF%FE", "x" * 10_000, "a%2Fb", "..", "%2E%2E%2F%2E%2E", "%C0%AE"]
QUERY_FIELDS = ("user_id", "unit_id", "item_id", "q", "next")
FORM_FIELDS = ("tenant", "next", "api_key", "login_token")


def hostile_path(rule, value: str) -> str:
    return re.sub(r"<(?:int:)?([^>]+)>", lambda m: "7" if m.group(0).startswith("<int:") else value, rule.rule)


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: v[:12])
def test_every_dashboard_route_answers_hostile_values_with_a_4xx_page(app, client, value):
    """Every dashboard route, every id, query and form field holding each hostile value: an answer
    below 500 (a page that says what to fix), never a database error."""
    assert sign_in(client, TEST_API_KEY).status_code == 302
    token = csrf(client)
    query = "&".join(f"{field}={value}" for field in QUERY_FIELDS)
    for rule in (r for r in app.url_map.iter_rules() if r.endpoint.startswith("dashboard.")):
        path = hostile_path(rule, value)
        if "GET" in rule.methods:
            for url in (path, f"{path}?{query}"):
                answer = client.get(url)
                assert answer.status_code < 500, (url[:80], answer.status_code)
        if "POST" in rule.methods:
            body = "&".join([f"csrf_token={token}"] + [f"{field}={value}" for field in FORM_FIELDS])
            answer = client.post(path, data=body.encode(), content_type="application/x-www-form-urlencoded")
            assert answer.status_code < 500, (rule.rule, answer.status_code)
            if rule.endpoint != "dashboard.logout":
                assert answer.status_code != 200, rule.rule
            else:
                assert sign_in(client, TEST_API_KEY).status_code == 302   # signed out: sign in again
                token = csrf(client)


@pytest.mark.parametrize("path", ["/dashboard/learners?user_id=a%00b", "/dashboard/learners?user_id=u&unit_id=a%00b",
                                  "/dashboard/items?item_id=a%00b", "/dashboard/items?q=a%00b",
                                  "/dashboard/experiments/a%00b", "/dashboard/models/a%00b"])
def test_a_nul_in_an_id_or_search_is_a_400_that_names_the_field(client, path):
    assert sign_in(client, TEST_API_KEY).status_code == 302
    answer = client.get(path)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "NUL" in html.unescape(answer.text)


def test_a_tenant_session_cannot_tell_which_tenants_exist(client, two_tenants):
    assert sign_in(client, two_tenants["dash_a"]).status_code == 302
    answers = [client.post("/dashboard/tenant", data={"csrf_token": csrf(client), "tenant": name})
               for name in (two_tenants["b"], "no-such-tenant")]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].text.replace(two_tenants["b"], "NAME") == answers[1].text.replace("no-such-tenant", "NAME")

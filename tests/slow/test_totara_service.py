"""The Totara drop-in as a Totara site meets it: `adaptrec import --format totara` of a three-tenant
export, `adaptrec train --all`, then `adaptrec serve` (gunicorn) called by a client that behaves as
Totara's PHP client does (ml_service\\api): plain GETs signed with X-Totara-Time / X-Totara-Ml-Key,
a 1 s connect and 2 s total timeout, item ids read as integers, any status but 200 a failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from app.totara import protocol as totara
from harness.service import free_port
from tests.slow.test_serve import ctrl_c, wait_for

pytestmark = pytest.mark.slow  # imports, trains and starts `adaptrec serve`
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "totara_export"
KEY = "totara-shared-secret"


class TotaraFailure(Exception):
    pass


class TotaraClient:
    """What Totara's client does with an answer: non-200 or success false is a failure (Totara then
    serves its own cache); otherwise [(int(id), score)] in the given order."""

    def __init__(self, base: str, key: str, clock=time.time):
        self.base, self.key, self.clock = base, key, clock

    def get(self, path: str, **params) -> dict:
        stamp = str(int(self.clock()))
        headers = {"X-Totara-Time": stamp, "X-Totara-Ml-Key": totara.sign(stamp, self.key)}
        request = urllib.request.Request(f"{self.base}{path}?{urllib.parse.urlencode(params)}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                status, body = answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            exc.close()
            raise TotaraFailure(exc.code, body) from None
        if status != 200 or not body.get("success"):
            raise TotaraFailure(status, body)
        return body

    def items(self, path: str, **params) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in self.get(path, **params)["items"]]


def adaptrec(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


ENV: dict = {}


@pytest.fixture(scope="module")
def service(servers, tmp_path_factory):
    from harness.databases import scratch_database

    with scratch_database(servers[0], "adaptrec_totara") as db_url:
        port = free_port()
        env = {**os.environ, "ADAPTREC_HOME": str(tmp_path_factory.mktemp("home")), "ADAPTREC_PORT": str(port),
               "ADAPTREC_DATABASE_URL": db_url, "ADAPTREC_REDIS_URL": servers[1],
               "ADAPTREC_REDIS_PREFIX": f"totara-{port}:", "ADAPTREC_TOTARA_KEY": KEY, "ADAPTREC_API_KEYS": "k1"}
        ENV.update(env)
        imported = adaptrec(env, "import", "--format", "totara", "-q", str(FIXTURE))
        assert "(tenant 2)" in imported
        trained = adaptrec(env, "train", "--all", "--quiet")
        assert "0/totara" in trained and "1/totara" in trained and "fewer" not in trained
        proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--workers", "2"], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            wait_for(f"http://127.0.0.1:{port}/readyz", proc, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            output = ctrl_c(proc)
            assert "Traceback" not in output, output


def test_each_tenant_answers_success_with_integer_ids_of_the_asked_type(service):
    client = TotaraClient(service, KEY)
    seen = {}
    for tenant in (0, 1, 2):
        items = client.items("/user-items", totara_user_id=101, item_type="engage_article", tenant=tenant, n_items=5)
        assert 0 < len(items) <= 5 and all(isinstance(i, int) for i, _ in items), (tenant, items)
        seen[tenant] = items
    assert seen[0] != seen[1]   # same user id, two tenants: two different learners
    fixture_articles = {int(line.split(",")[0].removeprefix("engage_article"))
                        for line in (FIXTURE / "item_data_2.csv").read_text().splitlines()[1:]
                        if line.startswith("engage_article")}
    assert {i for i, _ in seen[2]} <= fixture_articles   # the small tenant answers from its own items


def test_positive_items_are_excluded_and_unknown_users_get_an_answer(service):
    client = TotaraClient(service, KEY)
    liked = {int(row.split(",")[1].removeprefix("engage_article"))
             for row in (FIXTURE / "user_interactions_0.csv").read_text().splitlines()[1:]
             if row.startswith("101,engage_article") and row.split(",")[2] == "1"}
    items = client.items("/user-items", totara_user_id=101, item_type="engage_article", tenant=0, n_items=30)
    assert liked and not liked & {i for i, _ in items}
    for user in (140, 987654):   # metadata but no interactions; never heard of
        assert client.items("/user-items", totara_user_id=user, item_type="totara_playlist", tenant=0, n_items=3)


def test_a_new_user_is_answered_from_their_metadata_only_when_that_beat_popularity(service):
    """User 140 has metadata and no interactions. The nightly job tried metadata against popularity on
    pseudo-new users (metrics.cold_users; tests/unit/test_cold_users.py checks both outcomes): the answer
    is popularity's, like a user never heard of, unless metadata won there."""
    import psycopg2

    with psycopg2.connect(ENV["ADAPTREC_DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT metrics->'cold_users' FROM models WHERE tenant = '0' AND status = 'active'")
        cold = cur.fetchone()[0]
    conn.close()
    assert cold["users"] >= 1 and {"gain", "se", "used"} <= set(cold)
    client = TotaraClient(service, KEY)
    with_metadata = client.items("/user-items", totara_user_id=140, item_type="engage_article", tenant=0, n_items=3)
    unknown = client.items("/user-items", totara_user_id=987654, item_type="engage_article", tenant=0, n_items=3)
    assert (with_metadata == unknown) is not cold["used"]


def test_similar_items_are_of_the_same_type_and_an_item_seen_by_nobody_has_neighbours(service):
    client = TotaraClient(service, KEY)
    similar = client.items("/similar-items", totara_item_id="engage_article1", tenant=0, n_items=5)
    assert len(similar) == 5 and 1 not in {i for i, _ in similar}
    assert [s for _, s in similar] == sorted((s for _, s in similar), reverse=True)
    assert client.items("/similar-items", totara_item_id="totara_playlist8", tenant=0, n_items=3)


def test_health_check_names_the_tenants_and_the_small_one(service):
    body = TotaraClient(service, KEY).get("/health-check")
    assert body["totara"]["tenants"] == "0, 1, 2"
    assert "fewer than Totara's minimum" in body["totara"]["tenant 2"]
    assert body["errors"] == []


@pytest.mark.parametrize("path, params, status", [
    ("/user-items", {"totara_user_id": "x", "item_type": "engage_article", "tenant": 0}, 422),
    ("/user-items", {"totara_user_id": 1, "item_type": "engage_article"}, 422),
    ("/user-items", {"totara_user_id": 1, "item_type": "no_such_type", "tenant": 0}, 422),
    ("/user-items", {"totara_user_id": 1, "item_type": "engage_article", "tenant": 9}, 404),
    ("/user-items", {"totara_user_id": 1, "item_type": "engage_article", "tenant": 0, "n_items": 10**12}, 422),
    ("/user-items", {"totara_user_id": 1, "item_type": "engage_article", "tenant": 0, "n_items": 0}, 422),
    ("/user-items", {"totara_user_id": 1, "item_type": "engage_article", "tenant": 0, "extra": 1}, 400),
    ("/similar-items", {"totara_item_id": "engage_article", "tenant": 0}, 422),
    ("/similar-items", {"totara_item_id": "engage_article999", "tenant": 0}, 404),
    ("/similar-items", {"tenant": 0}, 422),
])
def test_bad_requests_are_a_clear_4xx_failure(service, path, params, status):
    with pytest.raises(TotaraFailure) as failed:
        TotaraClient(service, KEY).get(path, **params)
    code, body = failed.value.args
    assert code == status and body["success"] is False and body["message"], body


# 10 s outside the 300 s window: the stamp is whole seconds (up to 1 s lost) and the request takes
# its time, so 301 s landed inside the window now and then on a loaded machine
@pytest.mark.parametrize("key, skew", [("wrong-key", 0), (KEY, 310), (KEY, -310)])
def test_a_wrong_or_stale_signature_is_refused(service, key, skew):
    with pytest.raises(TotaraFailure) as failed:
        TotaraClient(service, key, clock=lambda: time.time() + skew).get("/health-check")
    assert failed.value.args[0] == 401 and failed.value.args[1]["success"] is False


def test_the_legacy_files_rank_each_users_and_items_neighbours(service, tmp_path):
    out = adaptrec(ENV, "export", "--format", "totara", "--n", "3", str(tmp_path))
    assert "i2u_0.csv" in out and "i2i_2.csv" in out and "default" not in out
    i2u = (tmp_path / "i2u_0.csv").read_text().splitlines()
    assert i2u[0] == "uid,iid,ranking"
    rows = [line.split(",") for line in i2u[1:]]
    assert {r[0] for r in rows} == {str(u) for u in range(101, 141)}   # every user, 140 too (metadata only)
    assert all(totara.split_item_id(r[1]) and len([x for x in rows if x[0] == r[0]]) == 3 for r in rows)
    lines = (FIXTURE / "user_interactions_0.csv").read_text().splitlines()[1:]
    liked = {(user, item) for user, item, rating, _ in (line.split(",") for line in lines) if rating == "1"}
    assert liked
    assert not liked & {(r[0], r[1]) for r in rows}
    i2i = [line.split(",") for line in (tmp_path / "i2i_1.csv").read_text().splitlines()]
    assert i2i[0] == ["target_iid", "similar_iid", "ranking"] and all(a != b for a, b, _ in i2i[1:])
    assert all(totara.split_item_id(a)[0] == totara.split_item_id(b)[0] for a, b, _ in i2i[1:])   # as /similar-items
    assert not list(tmp_path.glob("*.partial"))


def test_tenants_are_listed_and_removed_only_when_confirmed(service):
    adaptrec(ENV, "tenants", "add", "scratch", "--name", "Scratch school", "--mode", "partial")
    listed = adaptrec(ENV, "tenants", "list")
    assert "Scratch school" in listed and "partial" in listed
    assert "mode mf" in adaptrec(ENV, "tenants", "set", "scratch", "--mode", "mf")
    row = next(line for line in adaptrec(ENV, "tenants", "list").splitlines() if line.startswith("scratch "))
    assert row.split()[5] == "mf"   # tenant, users, items, interactions, models, mode
    refused = subprocess.run([sys.executable, "-m", "cli", "tenants", "remove", "scratch"], cwd=PROJECT_ROOT,
                             env=ENV, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert "removed tenant 'scratch'" in adaptrec(ENV, "tenants", "remove", "scratch", "--yes")
    assert "scratch" not in adaptrec(ENV, "tenants", "list")
    unknown = subprocess.run([sys.executable, "-m", "cli", "tenants", "remove", "nope", "--yes"], cwd=PROJECT_ROOT,
                             env=ENV, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "no tenant 'nope'" in unknown.stderr

"""/metrics, JSON logs with request ids, job run records, and the real gunicorn service:
metrics summed over workers, gunicorn's own lines in JSON, graceful shutdown."""
from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import jobruns
from app.logs import JsonFormatter, redact
from harness.service import running_service
from tests.conftest import TEST_API_KEY


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def log_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def seed(client, auth, items=("i1", "i2", "i3")):
    for i in items:
        assert client.put(f"/v1/items/{i}", json={}, headers=auth).status_code == 200
    assert client.put("/v1/units/root", json={"items": list(items)}, headers=auth).status_code == 200


# ---- logs ---------------------------------------------------------------------------------
def test_access_lines_are_json_with_the_request_id_and_no_key_or_body(client, auth, capsys):
    seed(client, auth)
    capsys.readouterr()
    body = {"user_id": "secret-learner-body", "item_id": "i1", "kind": "view"}
    r = client.post("/v1/interactions", json=body, headers={**auth, "X-Request-Id": "req-42"})
    assert r.headers["X-Request-Id"] == "req-42"
    err = capsys.readouterr().err
    access = [line for line in log_lines(err) if line.get("event") == "request"]
    assert access == [access[0]] and access[0]["request_id"] == "req-42"
    assert access[0]["endpoint"] == "/v1/interactions" and access[0]["status"] == 201
    assert access[0]["key_id"] == "env-1" and access[0]["duration_ms"] > 0
    assert TEST_API_KEY not in err and "secret-learner-body" not in err


def test_a_request_without_an_id_gets_a_new_one_in_answer_and_log(client, capsys):
    r = client.get("/healthz")
    made = r.headers["X-Request-Id"]
    assert len(made) == 32
    assert any(line.get("request_id") == made for line in log_lines(capsys.readouterr().err))
    assert client.get("/healthz", headers={"X-Request-Id": "x" * 500}).headers["X-Request-Id"] != "x" * 500


def test_secrets_are_masked_in_log_lines():
    import logging

    record = logging.LogRecord("t", logging.WARNING, "", 0,
                               "cannot reach postgresql://app:hunter2@db:5432/x with Bearer abc.def and "
                               "key ar_0123456789ab_SECRETSECRETSECRETSECRET password=pw1", None, None)
    line = json.loads(JsonFormatter().format(record))
    for secret in ("hunter2", "abc.def", "SECRETSECRET", "pw1"):
        assert secret not in line["message"]
    assert "ar_0123456789ab_***" in line["message"] and line["level"] == "warning"
    assert redact("nothing to hide") == "nothing to hide"


# ---- metrics ------------------------------------------------------------------------------
def test_metrics_count_requests_fallbacks_candidates_and_ingest(client, auth):
    seed(client, auth)
    before = client.get("/metrics").text
    learner = f"learner-{uuid.uuid4().hex}"  # Redis outlives each test's tables: a fresh learner misses
    r = client.post("/v1/recommendations", json={"user_id": learner, "units": ["root"], "n": 2}, headers=auth)
    assert r.status_code == 200 and r.json["fallback"].startswith("no_model")
    event = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "kind": "view"}
    assert client.post("/v1/interactions", json=event, headers=auth).status_code == 201
    assert client.post("/v1/interactions", json=event, headers=auth).status_code == 200
    client.get("/v1/items/i1", headers={"Authorization": "Bearer wrong"})
    after = client.get("/metrics")
    assert after.status_code == 200 and after.mimetype == "text/plain"
    text = after.text

    def grew(name, by=1.0, **labels):
        assert value(text, name, **labels) - value(before, name, **labels) == by, (name, labels)

    grew("adaptrec_http_request_duration_seconds_count", endpoint="/v1/recommendations", method="POST", status="200")
    grew("adaptrec_http_request_duration_seconds_count", endpoint="/v1/interactions", method="POST", status="201")
    grew("adaptrec_http_request_duration_seconds_count", endpoint="/v1/interactions", method="POST", status="200")
    grew("adaptrec_fallbacks_total", reason="no_model")
    grew("adaptrec_candidates_scored_count")
    grew("adaptrec_candidates_scored_sum", 3.0)
    grew("adaptrec_live_fit_seconds_count", objective="none")
    grew("adaptrec_cache_requests_total", cache="history", result="miss")
    grew("adaptrec_ingested_events_total", status="created")
    grew("adaptrec_ingested_events_total", status="duplicate")
    grew("adaptrec_auth_failures_total", reason="invalid")
    assert value(text, "adaptrec_postgres_up") == 1.0
    assert learner not in text  # no learner ids as label values


def test_metrics_show_active_models_and_job_runs_from_postgres(client, auth, conn, settings):
    seed(client, auth)
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO models (unit_id, objective, mode, status, trained_at)
                       VALUES ('root', 'practice', 'mf', 'active', now() - interval '2 hours') RETURNING model_id""")
        model_id = cur.fetchone()[0]
        # a run whose process died: no outcome, and its session (pid 0) does not exist
        cur.execute("INSERT INTO job_runs (job, backend_pid) VALUES ('train', 0)")
    with jobruns.recorded(settings.database_url, "train", "default") as run:
        run.detail = {"activated": 1}
        with conn.cursor() as cur:
            cur.execute("SELECT state FROM job_status WHERE run_id = %s", (run.run_id,))
            assert cur.fetchone()[0] == "running"
        conn.rollback()
    with pytest.raises(RuntimeError), jobruns.recorded(settings.database_url, "calibrate", "default"):
        raise RuntimeError("boom at postgresql://u:pw@h/db")

    text = client.get("/metrics").text
    assert value(text, "adaptrec_model_version", tenant="default", unit="root", objective="practice",
                 tag="default") == model_id
    age = value(text, "adaptrec_model_age_seconds", tenant="default", unit="root", objective="practice", tag="default")
    assert 7100 < age < 7300
    assert value(text, "adaptrec_job_runs", job="train", state="succeeded") == 1
    assert value(text, "adaptrec_job_runs", job="train", state="abandoned") == 1
    assert value(text, "adaptrec_job_runs", job="calibrate", state="failed") == 1
    assert value(text, "adaptrec_job_last_success_timestamp_seconds", job="train") > time.time() - 60
    assert ("adaptrec_job_last_duration_seconds", frozenset({("job", "calibrate"), ("outcome", "failed")})) \
        in samples(text)
    with conn.cursor() as cur:
        cur.execute("SELECT detail->>'error' FROM job_runs WHERE job = 'calibrate'")
        error = cur.fetchone()[0]
    assert "boom" in error and "pw" not in error


# ---- the real service -----------------------------------------------------------------------
def http(base: str, method: str, path: str, body=None, timeout=10) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@pytest.fixture
def gunicorn(settings, conn, tmp_path):
    with running_service(settings.database_url, settings.redis_url, TEST_API_KEY, tmp_path / "gunicorn.log",
                         redis_prefix=settings.redis_prefix, workers=2,
                         env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}) as service:
        yield service.base_url, service.proc, service.log_path


@pytest.mark.slow
def test_metrics_add_up_over_gunicorn_workers_and_logs_are_json(gunicorn):
    base, proc, log_path = gunicorn
    for _ in range(40):
        assert http(base, "GET", "/healthz")[0] == 200
    scraped = [http(base, "GET", "/metrics")[1].decode() for _ in range(4)]
    counts = {value(t, "adaptrec_http_request_duration_seconds_count", endpoint="/healthz", method="GET",
                    status="200") for t in scraped}
    assert counts == {40.0}  # whichever worker answers the scrape, it reports both workers' counts
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(parsed) == len(lines), [line for line in lines if not line.startswith("{")][:5]
    assert any(p["logger"] == "gunicorn.error" and "Booting worker" in p["message"] for p in parsed)
    access_ids = [p["request_id"] for p in parsed if p.get("event") == "request"]
    assert len(access_ids) == len(set(access_ids)) >= 44  # one line per request, none twice


@pytest.mark.slow
def test_sigterm_lets_an_in_flight_request_finish(gunicorn, settings):
    base, proc, _ = gunicorn
    for i in ("i1", "i2"):
        assert http(base, "PUT", f"/v1/items/{i}", {})[0] == 200
    batch = {"interactions": [{"event_id": f"g{n}", "user_id": f"u{n % 50}", "item_id": f"i{1 + n % 2}",
                               "kind": "attempt", "outcome": n % 2} for n in range(1000)]}
    answer = {}
    sender = threading.Thread(target=lambda: answer.update(result=http(base, "POST", "/v1/interactions", batch)))
    sender.start()
    time.sleep(0.05)  # the worker has the request
    os.killpg(proc.pid, signal.SIGTERM)
    sender.join(timeout=30)
    status, body = answer["result"]
    assert status == 201 and json.loads(body)["created"] == 1000
    assert proc.wait(timeout=30) == 0
    check = psycopg2.connect(settings.database_url)
    try:
        with check.cursor() as cur:
            cur.execute("SELECT count(*) FROM interactions WHERE event_id LIKE 'g%%'")
            assert cur.fetchone()[0] == 1000
    finally:
        check.close()


def raw_exchange(base: str, head: bytes) -> tuple[int, dict, bytes]:
    """Send `head` as is (urllib would refuse to write a malformed request) and read the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_part, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_part.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.slow
def test_requests_gunicorn_refuses_are_answered_as_problems(gunicorn):
    base, proc, log_path = gunicorn
    long_query = "/v1/trending?units=" + ",".join(f"unit-{i:04d}" for i in range(500))
    cases = [
        (f"GET {long_query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414, "4094 bytes"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "not valid HTTP/1.1"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: 1\r\n" % i for i in range(101)) + b"\r\n",
         431, "at most 100 header fields"),
        (b"NOT-HTTP\r\n\r\n", 400, "not valid HTTP/1.1"),
    ]
    for head, status, hint in cases:
        got, headers, body = raw_exchange(base, head)
        assert got == status, body
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert set(problem) == {"type", "title", "status", "detail"} and problem["status"] == status
        assert hint in problem["detail"], problem
        assert len(headers["x-request-id"]) == 32
    assert http(base, "GET", "/healthz")[0] == 200  # the worker serves on
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    parsed = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    refused = [p["status"] for p in parsed if p.get("event") == "request" and p.get("endpoint") == "unparsed"]
    assert sorted(refused) == [400, 400, 414, 431]
    assert sum(1 for p in parsed if p["logger"] == "gunicorn.error" and "Invalid request" in p["message"]) == 4


def test_unknown_methods_do_not_become_metric_labels(client):
    assert client.open("/healthz", method="QWERTYAB").status_code == 405
    text = client.get("/metrics").text
    assert "QWERTYAB" not in text
    assert value(text, "adaptrec_http_request_duration_seconds_count", endpoint="unmatched", method="other",
                 status="405") >= 1


def test_more_secret_shapes_are_masked():
    for text, secret in [("redis://:s3cret@cache:6379/0", "s3cret"),
                         ("Authorization: Basic dXNlcjpwdw==", "dXNlcjpwdw"),
                         ("postgresql://app:hunter2@db/x", "hunter2")]:
        assert secret not in redact(text)


TERMINAL_FORMAT = ("import sys; from app.config import Settings; "
                   "print(Settings.from_env({}).log_format, file=sys.stderr)")


def test_logs_are_readable_text_in_a_terminal_and_json_otherwise():
    main, child = pty.openpty()  # stderr a terminal, as under `make run`
    try:
        subprocess.run([sys.executable, "-c", TERMINAL_FORMAT], stderr=child, check=True, timeout=60)
        assert os.read(main, 100).decode().strip() == "text"
    finally:
        os.close(main)
        os.close(child)
    piped = subprocess.run([sys.executable, "-c", TERMINAL_FORMAT], capture_output=True, text=True, timeout=60)
    assert piped.stderr.strip() == "json"

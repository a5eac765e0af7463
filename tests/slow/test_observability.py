"""The real service, on each HTTP server `adaptrec serve` can run (gunicorn, Granian): metrics
summed over workers, the server's own lines in JSON, a graceful shutdown, a killed worker
replaced, and the requests the server refuses answered as problems. (/metrics, logs and job runs
in-process: tests/service/test_observability.py.)"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request

import psycopg2
import pytest

from app.config import SERVERS
from harness.service import running_service
from tests.conftest import TEST_API_KEY
from tests.service.test_observability import value


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


# A line each server writes as it starts a worker (gunicorn.error, Granian's _granian).
WORKER_STARTED = {"gunicorn": ("gunicorn.error", "Booting worker"), "granian": ("_granian", "Spawning worker")}


@pytest.fixture(params=SERVERS)
def server(request):
    return request.param


@pytest.fixture
def gunicorn(settings, conn, tmp_path, server):
    """The service on `server` (the name is the history's: gunicorn was the only server)."""
    with running_service(settings.database_url, settings.redis_url, TEST_API_KEY, tmp_path / f"{server}.log",
                         redis_prefix=settings.redis_prefix, workers=2, server=server,
                         env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}) as service:
        yield service.base_url, service.proc, service.log_path


def test_metrics_add_up_over_the_workers_and_logs_are_json(gunicorn, server):
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
    logger, started = WORKER_STARTED[server]
    assert sum(1 for p in parsed if p["logger"] == logger and started in p["message"]) == 2
    access_ids = [p["request_id"] for p in parsed if p.get("event") == "request"]
    assert len(access_ids) == len(set(access_ids)) >= 44  # one line per request, none twice


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


LONG_QUERY = "/v1/trending?units=" + ",".join(f"unit-{i:04d}" for i in range(500))
# Over the limits of /openapi.json, answered as problems by both servers (Granian: app/api/granian_app.py).
LIMITS = [
    (f"GET {LONG_QUERY} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414, "4094 bytes"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "at most 100 header fields"),
]
# What only gunicorn answers as problems: Granian's HTTP parser (hyper) refuses these itself with a
# bare status, no body and no log line, and cannot be told otherwise (docs/OPERATIONS.md).
MALFORMED = [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "not valid HTTP/1.1"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: 1\r\n" % i for i in range(101)) + b"\r\n",
     431, "at most 100 header fields"),
    (b"NOT-HTTP\r\n\r\n", 400, "not valid HTTP/1.1"),
]


def test_requests_the_server_refuses_are_answered_as_problems(gunicorn, server):
    base, proc, log_path = gunicorn
    cases = LIMITS + (MALFORMED if server == "gunicorn" else [])
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
    assert sorted(refused) == sorted(status for _, status, _ in cases)
    if server == "gunicorn":
        assert sum(1 for p in parsed if p["logger"] == "gunicorn.error" and "Invalid request" in p["message"]) == 5


def test_granian_answers_malformed_requests_bare(settings, conn, tmp_path):
    """The promise Granian breaks: a malformed request gets its status with no problem body and no
    access line. Should a Granian release answer otherwise, this fails: update docs/OPERATIONS.md."""
    with running_service(settings.database_url, settings.redis_url, TEST_API_KEY, tmp_path / "granian.log",
                         redis_prefix=settings.redis_prefix, workers=1, server="granian") as service:
        for head, status, _ in MALFORMED:
            got, headers, body = raw_exchange(service.base_url, head)
            assert (got, body, headers.get("content-type")) == (status, b"", None)
        assert http(service.base_url, "GET", "/healthz")[0] == 200


def test_a_killed_worker_is_replaced(gunicorn):
    base, proc, log_path = gunicorn
    from harness.measure import child_pids

    before = sorted(child_pids(proc.pid))
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = sorted(child_pids(proc.pid))
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.2)
    assert len(now) == 2 and before[0] not in now and before[1] in now
    statuses = {http(base, "GET", "/healthz")[0] for _ in range(20)}
    assert statuses == {200}
    os.killpg(proc.pid, signal.SIGTERM)   # the new worker may still be booting: it stops too, not killed
    assert proc.wait(timeout=60) == 0
    assert "refused to gracefully stop" not in log_path.read_text()

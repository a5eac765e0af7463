"""/metrics, JSON logs with request ids and job run records, in-process (the real gunicorn service:
tests/slow/test_observability.py)."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.infra import jobruns
from app.infra.logs import JsonFormatter, redact
from tests.conftest import TEST_API_KEY
from tests.seed import seed


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

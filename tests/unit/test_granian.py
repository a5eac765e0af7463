"""`adaptrec serve --server granian` without a server: the request-head limits as problems
(app/api/granian_app.py), the settings Granian is given (cli/granian_main.py), the command lines, and
the Granian internals the launcher relies on. The running server: tests/slow/test_observability.py."""
from __future__ import annotations

import inspect
import json
from dataclasses import replace

import pytest

from app.api.granian_app import Limits, refusal
from app.config import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES, Settings
from cli.serve import gunicorn_command, server_command


def environ(path="/healthz", query="", headers=None) -> dict:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1"}
    env.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()})
    return env


def line_of(query: str) -> int:
    return len(f"GET /healthz?{query} HTTP/1.1")


def test_a_request_line_at_the_limit_passes_and_one_byte_more_is_414():
    at_limit = "q=" + "a" * (REQUEST_LINE_MAX_BYTES - line_of("q="))
    assert line_of(at_limit) == REQUEST_LINE_MAX_BYTES
    assert refusal(environ(query=at_limit)) is None
    status, title, detail = refusal(environ(query=at_limit + "a"))
    assert (status, title) == (414, "Request-URI Too Long") and f"{REQUEST_LINE_MAX_BYTES} bytes" in detail


def test_too_many_header_fields_or_one_too_long_is_431():
    assert refusal(environ(headers={f"X-F{i}": "1" for i in range(HEADER_FIELDS_MAX)})) is None
    status, _, detail = refusal(environ(headers={f"X-F{i}": "1" for i in range(HEADER_FIELDS_MAX + 1)}))
    assert status == 431 and f"({HEADER_FIELDS_MAX + 1} fields)" in detail
    fits = "b" * (HEADER_FIELD_MAX_BYTES - len("X-Big: "))
    assert refusal(environ(headers={"X-Big": fits})) is None
    status, _, detail = refusal(environ(headers={"X-Big": fits + "b"}))
    assert status == 431 and f"of {HEADER_FIELD_MAX_BYTES + 1} bytes" in detail


def test_the_middleware_answers_a_refusal_as_a_problem_and_passes_the_rest(caplog):
    seen, answered = [], {}

    def app(env, start_response):
        seen.append(env["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    def start_response(status, headers):
        answered.update(status=status, headers=dict(headers))

    assert Limits(app)(environ(), start_response) == [b"ok"] and seen == ["/healthz"]
    with caplog.at_level("INFO", logger="adaptrec.access"):
        body = Limits(app)(environ(query="a" * REQUEST_LINE_MAX_BYTES), start_response)
    assert seen == ["/healthz"] and answered["status"] == "414 Request-URI Too Long"
    assert answered["headers"]["Content-Type"] == "application/problem+json"
    problem = json.loads(b"".join(body))
    assert set(problem) == {"type", "title", "status", "detail"} and problem["status"] == 414
    access = [r for r in caplog.records if getattr(r, "event", None) == "request"]
    assert [(r.status, r.endpoint, r.request_id) for r in access] == [(414, "unparsed",
                                                                       answered["headers"]["X-Request-Id"])]


def test_granian_is_given_the_service_settings():
    from cli.granian_main import HEAD_BUFFER_BYTES, build

    settings = replace(Settings(), threads=3, keepalive_s=30, graceful_timeout_s=7)
    server = build("127.0.0.1:8123", 2, settings)
    assert (server.bind_port, server.workers, server.blocking_threads) == (8123, 2, 3)
    assert server.http1_settings.keep_alive and server.http1_settings.header_read_timeout == 30_000
    assert server.http1_settings.max_buffer_size == HEAD_BUFFER_BYTES > REQUEST_LINE_MAX_BYTES + HEADER_FIELD_MAX_BYTES
    assert server.workers_kill_timeout == 7 and server.respawn_failed_workers and not server.log_access
    no_keepalive = build("127.0.0.1:8123", 1, replace(settings, keepalive_s=0, graceful_timeout_s=0))
    assert not no_keepalive.http1_settings.keep_alive and no_keepalive.workers_kill_timeout == 1
    long_keepalive = build("127.0.0.1:8123", 1, replace(settings, keepalive_s=75))
    assert long_keepalive.http1_settings.header_read_timeout == 60_000   # Granian's maximum


def test_the_granian_internals_the_launcher_overrides_are_there():
    """cli/granian_main.py overrides three methods of Granian's MPServer: a release that renames
    them would silently lose dead workers' metrics and the booting guard."""
    from granian.server import MPServer

    for name, params in (("_spawn_worker", ["self", "idx", "target", "callback_loader"]),
                         ("_respawn_workers", ["self", "workers", "spawn_target", "target_loader", "delay"]),
                         ("_stop_workers", ["self"])):
        assert list(inspect.signature(getattr(MPServer, name)).parameters) == params


def test_serve_builds_the_chosen_server_command():
    assert server_command("gunicorn", "127.0.0.1:1", 2) == gunicorn_command("127.0.0.1:1", 2)
    assert server_command("granian", "127.0.0.1:1", 3)[1:] == ["-m", "cli.granian_main", "--bind", "127.0.0.1:1",
                                                              "--workers", "3"]
    with pytest.raises(ValueError):
        server_command("granian", "127.0.0.1:1", 2, ["--threads", "2"])
    with pytest.raises(ValueError):
        server_command("uwsgi", "127.0.0.1:1", 2)

"""What the fault tests share: the stack (private servers, the service), requests to it, and
plain SQL on its database."""
from __future__ import annotations

import http.client
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2

from cli.embedded import EmbeddedServers
from harness.service import Service

API_KEY = "fault-key-0123456789"
PREFIX = "adaptrec-faults:"
ROOT = "demo"


# ---- servers, service ---------------------------------------------------------------------------
@dataclass
class Stack:
    servers: EmbeddedServers
    db_url: str
    redis_url: str
    service: Service

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def proc(self):
        return self.service.proc

    def log_tail(self, chars: int = 3000) -> str:
        return self.service.log_tail(chars)


def server_env(stack: Stack) -> dict:
    return {"ADAPTREC_DATABASE_URL": stack.db_url, "ADAPTREC_REDIS_URL": stack.redis_url}


def workers(stack: Stack) -> list[int]:
    """The gunicorn master's children: its workers."""
    return stack.service.workers()


@contextmanager
def pg(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def scalar(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def rows(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# ---- HTTP ---------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    content_type: str
    body: dict | None
    seconds: float
    retry_after: str | None = None


def call(stack: Stack | Service, method: str, path: str, body=None, timeout: float = 10,
         headers: dict | None = None) -> Answer:
    """One request on a fresh connection (closed afterwards); raises OSError / HTTPException
    when the connection breaks (as it does when the worker dies)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(raw) if raw and "json" in ctype else None
        return Answer(resp.status, ctype, parsed, time.monotonic() - started, resp.getheader("Retry-After"))
    finally:
        conn.close()


def recommend(stack: Stack, user_id: str) -> Answer:
    return call(stack, "POST", "/v1/recommendations", {"user_id": user_id, "units": [ROOT], "n": 5})


def some_items(stack: Stack, n: int) -> list[str]:
    with pg(stack.db_url) as conn:
        return [r[0] for r in rows(conn, "SELECT item_id FROM items WHERE kind = 'question' ORDER BY item_id "
                                         "LIMIT %s", (n,))]


def wait_until(predicate, timeout: float, step: float = 0.05):
    """Poll `predicate` until it returns something truthy, and return that (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


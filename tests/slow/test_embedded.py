"""The embedded default: processes share one Postgres and Redis; the last one out stops them."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import psycopg2
import pytest
import redis

from cli.embedded import EmbeddedServers

pytestmark = pytest.mark.slow  # starts and stops embedded servers


def test_servers_are_shared_and_stop_with_the_last_holder(tmp_path):
    servers = EmbeddedServers(tmp_path / "var")
    db_url, redis_url = servers.acquire()
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone()[0] == "adaptrec"
    conn.close()
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()

    # A second process acquires the same servers and exits without releasing (as if killed):
    # it must not stop them, and its stale registration must not keep them alive forever.
    script = textwrap.dedent(f"""
        import os
        from cli.embedded import EmbeddedServers
        urls = EmbeddedServers({str(tmp_path / 'var')!r}).acquire()
        print(urls[0]); os._exit(0)
    """)
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == db_url
    assert servers.status()["postgres_running"]

    assert servers.release() is True
    status = servers.status()
    assert not status["postgres_running"] and not status["redis_running"]

    # Data survives a restart.
    db_url, _ = servers.acquire()
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
    conn.close()
    servers.release()
    db_url, _ = servers.acquire()
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('kept') IS NOT NULL")
        assert cur.fetchone()[0]
    conn.close()
    servers.release()

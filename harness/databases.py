"""Scratch places on shared servers, for one benchmark or test run: a database of its own
(`scratch_database`, the one contract: yield the URL, drop afterwards) and a Redis key prefix of
its own, both removed afterwards and nothing else touched."""
from __future__ import annotations

import uuid
from contextlib import closing, contextmanager

import psycopg2

from app.infra.db import with_database
from app.infra.migrations import migrate


@contextmanager
def scratch_database(server_url: str, prefix: str = "adaptrec_scratch", migrated: bool = True):
    """Yield the URL of a new database on the server of `server_url` (migrated unless told
    otherwise), and drop it afterwards. For tests and benchmarks: never touches other databases."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server_url, name)
        try:
            if migrated:
                conn = psycopg2.connect(url)
                migrate(conn)
                conn.close()
            yield url
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()




@contextmanager
def connected_scratch_database(server_url: str, prefix: str = "adaptrec_bench"):
    """scratch_database (new, migrated, dropped afterwards) with a connection opened on it:
    yields (url, conn); the connection is closed before the database is dropped."""
    with scratch_database(server_url, prefix) as url, closing(psycopg2.connect(url)) as conn:
        yield url, conn


@contextmanager
def scratch_redis_prefix(redis_url: str, name: str):
    """Yield a key prefix no other run uses (`<name>-<random>:`); its keys are deleted afterwards."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}:"
    try:
        yield prefix
    finally:
        drop_redis_prefix(redis_url, prefix)


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under `prefix` (and nothing else). Best effort: a Redis that is gone
    has nothing left to clean."""
    import redis

    try:
        client = redis.Redis.from_url(redis_url)
        delete_keys(client, prefix)
        client.close()
    except (redis.RedisError, OSError):
        pass


def delete_keys(client, prefix: str, batch: int = 1000) -> int:
    """Delete every key under `prefix` through a redis client, `batch` at a time while scanning;
    returns how many were deleted."""
    deleted, keys = 0, []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        keys.append(key)
        if len(keys) >= batch:
            deleted += client.delete(*keys)
            keys = []
    if keys:
        deleted += client.delete(*keys)
    return deleted

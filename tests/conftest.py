"""Real servers for the tests, never mocks.

Where they come from, in order: ADAPTREC_TEST_DATABASE_URL / ADAPTREC_TEST_REDIS_URL; else
testcontainers when a Docker engine answers; else the embedded servers (under var/test-servers,
separate from `make run`'s data). Each run creates its own database (dropped at the end) and
its own Redis key prefix (deleted at the end), and touches nothing else on those servers.
"""
from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from pathlib import Path

import psycopg2
import pytest

from app.config import PROJECT_ROOT, Settings
from harness.databases import scratch_database, scratch_redis_prefix
from tests.database import Schema, empty_database, read_schema

TEST_API_KEY = "test-key-0123456789"


def _docker_answers() -> bool:
    """True when a Docker engine answers /_ping (the client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = host[len("unix://"):]
        elif host.startswith("tcp://"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            name, _, port = host[len("tcp://"):].partition(":")
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(256)
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def servers():
    """(postgres_url, redis_url) of servers this run may create a database / key prefix on."""
    db = os.environ.get("ADAPTREC_TEST_DATABASE_URL")
    rd = os.environ.get("ADAPTREC_TEST_REDIS_URL")
    with ExitStack() as stack:
        if not (db and rd) and _docker_answers():
            from testcontainers.postgres import PostgresContainer
            from testcontainers.redis import RedisContainer

            if not db:
                pg = stack.enter_context(PostgresContainer("postgres:15-alpine", driver=None))
                db = pg.get_connection_url()
            if not rd:
                rc = stack.enter_context(RedisContainer("redis:7-alpine"))
                rd = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
        if not (db and rd):
            from cli.embedded import EmbeddedServers

            embedded = EmbeddedServers(PROJECT_ROOT / "var" / "test-servers")
            emb_db, emb_rd = embedded.acquire()
            stack.callback(embedded.release)
            db, rd = db or emb_db, rd or emb_rd
        yield db, rd


@pytest.fixture(scope="session")
def test_database(servers):
    """A fresh database for this run, migrated once, dropped at the end: (url, its Schema)."""
    with scratch_database(servers[0], "adaptrec_test") as url:
        yield url, read_schema(url)


@pytest.fixture(scope="session")
def db_url(test_database):
    return test_database[0]


@pytest.fixture(scope="session")
def db_schema(test_database) -> Schema:
    """The tables a test may fill and the rows the migrations put in (tests/database.py)."""
    return test_database[1]


@pytest.fixture(scope="session")
def redis_prefix(servers):
    with scratch_redis_prefix(servers[1], "adaptrec-test") as prefix:
        yield prefix


@pytest.fixture
def redis_url(servers):
    return servers[1]


@pytest.fixture
def conn(db_url, db_schema):
    """A connection to the test database, put back as the migrations left it after the test."""
    connection = psycopg2.connect(db_url)
    yield connection
    empty_database(connection, db_schema)
    connection.close()


@pytest.fixture
def settings(db_url, servers, redis_prefix):
    return Settings(database_url=db_url, redis_url=servers[1], redis_prefix=redis_prefix,
                    api_keys=(TEST_API_KEY, "second-key"), db_connect_timeout_s=2)


@pytest.fixture
def app(settings, conn):
    from app.api.factory import close as close_app
    from app.api.factory import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    close_app(application)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {TEST_API_KEY}"}


# The tiers, one folder each (make test-fast runs unit and service):
#   unit/     no Postgres, no Redis, no server process;
#   service/  real Postgres and Redis, the app in-process (Flask's test client);
#   browser/  the dashboard in chromium (Playwright) against a served demo;
#   slow/     gunicorn and `adaptrec` processes, training on demo or real data, benches, fuzzing.
TESTS = Path(__file__).parent
TIERS = ("unit", "service", "browser", "slow")
SLOW_TIERS = ("browser", "slow")
SERVER_FIXTURES = {"servers", "db_url", "conn", "app", "client"}


def tier_of(item) -> str | None:
    """The tier folder a collected test lives in (None: outside every tier)."""
    parts = Path(item.path).relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(items):
    misplaced = []
    for item in items:
        tier = tier_of(item)
        servers_used = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        # Anything that touches a real server is an integration test: CI runs those a second time
        # against the system Postgres 15 and Redis 7.
        if servers_used:
            item.add_marker(pytest.mark.integration)
        # The folder is the tier: `-m "not slow"` leaves out the browser and slow tiers.
        if tier in SLOW_TIERS:
            item.add_marker(pytest.mark.slow)
        if tier is None:
            misplaced.append(f"{item.nodeid}: put its file in one of tests/{{{','.join(TIERS)}}}/")
        elif tier == "unit" and servers_used:
            misplaced.append(f"{item.nodeid}: uses {', '.join(sorted(servers_used))}; tests/unit/ runs without "
                             f"Postgres or Redis: move it to tests/service/ or tests/slow/")
    if misplaced:
        raise pytest.UsageError("tests outside their tier:\n" + "\n".join(misplaced))

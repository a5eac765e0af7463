"""The stack every fault test runs against, built once for the package. Every fault test stops or
kills real processes: they are slow-tier tests (tests/slow/, marked `slow` by tests/conftest.py)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from app.infra.migrations import migrate
from cli.embedded import EmbeddedServers
from harness.service import running_service
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TrainConfig, run_training
from tests.slow.faults.stack import API_KEY, PREFIX, ROOT, Stack


@pytest.fixture(scope="package")
def stack():
    """Private embedded servers with a small demo (attempts only: no engagement model, whose
    grid search takes seconds) and one practice model of the root unit, served by gunicorn."""
    # Not under pytest's tmp_path: when we run as root, Postgres runs as another user who must
    # traverse the folders above its data, and a concurrent pytest session resets the mode of
    # /tmp/pytest-of-<user> to 0700.
    home = Path(tempfile.mkdtemp(prefix="adaptrec-faults-"))
    servers = EmbeddedServers(home / "var")
    db_url, redis_url = servers.acquire()
    try:
        conn = psycopg2.connect(db_url)
        try:
            migrate(conn)
            generate_demo(conn, DemoConfig(seed=7, learners=300, attempts=20_000, engagements=0))
        finally:
            conn.close()
        report = run_training(db_url, TrainConfig(max_trials=1, max_eval_users=60), units=[ROOT], progress=False)
        assert [o.status for o in report.outcomes] == ["activated"], report.table()
        with running_service(db_url, redis_url, API_KEY, home / "gunicorn.log", redis_prefix=PREFIX, workers=2,
                             env={"ADAPTREC_HOME": str(home)}) as service:
            yield Stack(servers, db_url, redis_url, service)
    finally:
        servers.release()
        shutil.rmtree(home, ignore_errors=True)

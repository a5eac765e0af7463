"""What every command group shares: the one-line error, the parser class that raises it, the
database a command runs on, and the tenant checks."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """A problem the user can fix; printed as one line."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + error
        raise CliError(f"{self.prog}: {message} (see '{self.prog} --help')", EXIT_USAGE)


@contextmanager
def database(settings=None):
    """Yield (settings, connection) on the configured or embedded servers."""
    from app.config import Settings
    from app.infra.db import connect
    from cli.embedded import servers_for

    settings = settings or Settings.from_env()
    with servers_for(settings) as resolved:
        conn = connect(resolved.database_url, connect_timeout=resolved.db_connect_timeout_s)
        try:
            yield resolved, conn
        finally:
            conn.close()


def migrate(conn, settings, quiet: bool = False) -> int:
    from app.infra.migrations import migrate

    applied = migrate(conn, lock_timeout_ms=settings.migration_lock_timeout_ms,
                      log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    return len(applied)


def ensure_tenant(conn, tenant: str) -> None:
    from app.access import tenants

    if tenants.ensure(conn, tenant):
        print(f"created tenant {tenant!r}", file=sys.stderr)


def known_tenant(conn, tenant: str, command: str) -> None:
    from app.access import tenants

    row = tenants.get(conn, tenant)
    conn.rollback()
    if row is None:
        raise CliError(f"adaptrec {command}: no tenant {tenant!r}; see `adaptrec tenants list`", EXIT_USAGE)


def prepare_metrics_dir() -> str | None:
    """prometheus-client's multi-process folder, before a server starts any worker: the configured
    one (PROMETHEUS_MULTIPROC_DIR) emptied of stale files (old counts would add up), else a new
    temporary one, exported for the workers; returns the new one's path (the caller removes it at
    exit), None when it was configured. (app.config is imported here, not prometheus-client: that
    must first see the folder.)"""
    import os
    import tempfile
    from pathlib import Path

    from app.config import multiprocess_metrics_dir

    directory = multiprocess_metrics_dir()
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return None
    created = tempfile.mkdtemp(prefix="adaptrec-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created   # for the workers and prometheus-client
    return created


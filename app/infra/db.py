"""Postgres access: connections with timeouts, a per-process pool, and the outage error.

Query functions take a connection and never commit; routes and jobs own the transaction
(`with conn:` commits on success and rolls back on an exception).
"""
from __future__ import annotations

import os
import select
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extras
import psycopg2.pool

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection


class DatabaseUnavailable(RuntimeError):
    """Postgres did not answer; the API turns this into a 503."""


def connect(url: str, *, connect_timeout: int = 3, statement_timeout_ms: int = 0,
            application_name: str = "adaptrec"):
    """Open one connection; raise DatabaseUnavailable with the reason when Postgres does not answer."""
    options = f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else None
    try:
        return psycopg2.connect(url, connect_timeout=connect_timeout, options=options,
                                application_name=application_name)
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DatabaseUnavailable(f"cannot connect to Postgres: {reason}") from exc


class ConnectionPool:
    """A small thread-safe pool, created lazily in each process (gunicorn forks workers)."""

    def __init__(self, url: str, *, maxconn: int, connect_timeout: int, statement_timeout_ms: int):
        self.url = url
        self.maxconn = maxconn
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._pid = None
        self._idle: list = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)

    def _reset_after_fork(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._idle = []  # connections inherited from the parent belong to it
            self._slots = threading.BoundedSemaphore(self.maxconn)

    def getconn(self):
        self._reset_after_fork()
        if not self._slots.acquire(timeout=self.connect_timeout):
            raise DatabaseUnavailable(f"all {self.maxconn} database connections are busy")
        conn = self._pop_live_idle()
        if conn is not None:
            return conn
        try:
            # The pid in the session's name tells an operator (pg_stat_activity) which worker
            # holds a lock or a long transaction.
            return connect(self.url, connect_timeout=self.connect_timeout,
                           statement_timeout_ms=self.statement_timeout_ms,
                           application_name=f"adaptrec-api:{os.getpid()}")
        except Exception:
            self._slots.release()
            raise

    def _pop_live_idle(self):
        """The most recently used idle connection that still looks alive, closing dead ones.

        After a Postgres restart every pooled connection is dead, but psycopg2 only finds out
        on the next query: handing them out would fail one request per pooled connection
        after the outage is over."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or _looks_alive(conn):
                return conn
            _close_quietly(conn)

    def putconn(self, conn: Connection) -> None:
        broken = conn.closed
        if not broken:
            try:
                if conn.status != psycopg2.extensions.STATUS_READY:
                    conn.rollback()
            except psycopg2.Error:
                broken = True
        if broken:
            _close_quietly(conn)
        else:
            with self._lock:
                self._idle.append(conn)
        self._slots.release()

    @contextmanager
    def connection(self):
        conn = self.getconn()
        try:
            yield conn
        finally:
            self.putconn(conn)

    def closeall(self) -> None:
        with self._lock:
            for conn in self._idle:
                conn.close()
            self._idle = []


def _looks_alive(conn: Connection) -> bool:
    """False when the server has closed an idle connection. A session the server ends (shutdown,
    restart, pg_terminate_backend, idle timeout) gets a FATAL message and end-of-file, so its
    socket turns readable, while an idle healthy session has nothing to read. One zero-timeout
    poll, no round trip; a server that vanished without a word is still found on first use."""
    if conn.closed:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
        return not readable
    except (OSError, ValueError, psycopg2.Error):
        return False


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except psycopg2.Error:
        pass


def dict_cursor(conn: Connection):
    return conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def with_database(url: str, dbname: str) -> str:
    """`url` (a postgresql:// URL) pointing at database `dbname` instead."""
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))

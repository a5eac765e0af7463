"""The recommendation log, written off the request path.

Each answer's row (what was recommended, to whom, by which model and variant, with which scores)
is for analysis and calibration, not an acknowledged write, so a request only appends it to
this worker's buffer; a background thread writes the buffer to Postgres in one statement every
FLUSH_INTERVAL_S. `created_at` is the time of the answer, not of the write, so the analyst views
that join answers to later attempts see the same rows either way.

What can be lost (docs/OPERATIONS.md): a graceful stop (SIGTERM, gunicorn's worker_exit, or the
interpreter exiting) writes every buffered row first. A worker killed outright (SIGKILL, the OOM
killer, a machine crash) loses the rows of its last flush interval plus the write in flight: at
most one second of answers. Interactions (ingest) are never buffered: they commit before the
answer. While Postgres is down the buffer keeps up to MAX_PENDING rows per worker and retries;
past that the oldest are dropped and counted (adaptrec_recommendation_log_rows_total{result}).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from datetime import UTC, datetime

import psycopg2

from app.infra import metrics
from app.infra import queries as q
from app.infra.db import DatabaseUnavailable

log = logging.getLogger("adaptrec.recommendation_log")
FLUSH_INTERVAL_S = 0.5    # with the write itself, a crash loses at most one second of rows
MAX_PENDING = 100_000     # rows buffered per worker while Postgres does not answer
_writers: weakref.WeakSet[RecommendationLog] = weakref.WeakSet()


class RecommendationLog:
    """One worker's buffer of answers and the thread that writes them. `connection()` is a
    context manager yielding a Postgres connection (the worker's pool)."""

    def __init__(self, connection, interval_s: float = FLUSH_INTERVAL_S, max_pending: int = MAX_PENDING):
        self._connection = connection
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._pending: list[dict] = []
        self._lock = threading.Lock()        # guards _pending
        self._write_lock = threading.Lock()  # one write at a time (the thread, close, a test's flush)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._last_warning = 0.0
        _writers.add(self)

    def add(self, row: dict) -> None:
        """Buffer one answer's row (the columns of insert_recommendation_logs but created_at,
        which is now)."""
        row["created_at"] = datetime.now(UTC).isoformat()
        with self._lock:
            self._pending.append(row)
            if len(self._pending) > self.max_pending:
                dropped = len(self._pending) - self.max_pending
                del self._pending[:dropped]
                metrics.RECOMMENDATION_LOG_ROWS.labels("dropped").inc(dropped)
        if self._pid != os.getpid():  # started lazily: in the worker, never in a parent that forks
            self._start()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="recommendation-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> int:
        """Write every buffered row now; the number written. Rows that could not be written stay
        buffered (and are retried) unless Postgres refused them for good."""
        with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return 0
            try:
                with self._connection() as conn, conn:
                    written = q.execute(conn, "insert_recommendation_logs", rows=json.dumps(rows))
            except (DatabaseUnavailable, psycopg2.OperationalError, psycopg2.InterfaceError, OSError) as exc:
                self._requeue(rows, exc)
                return 0
            except Exception as exc:  # e.g. bad data: never retried forever
                log.error("recommendation log rows refused by Postgres, %d dropped: %s", len(rows), exc)
                metrics.RECOMMENDATION_LOG_ROWS.labels("dropped").inc(len(rows))
                return 0
        metrics.RECOMMENDATION_LOG_ROWS.labels("written").inc(written)
        if written < len(rows):  # the rows of a tenant removed meanwhile
            metrics.RECOMMENDATION_LOG_ROWS.labels("dropped").inc(len(rows) - written)
        return written

    def _requeue(self, rows: list[dict], exc: Exception) -> None:
        with self._lock:
            self._pending[:0] = rows
            overflow = len(self._pending) - self.max_pending
            if overflow > 0:
                del self._pending[:overflow]
                metrics.RECOMMENDATION_LOG_ROWS.labels("dropped").inc(overflow)
            waiting = len(self._pending)
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("recommendation log not written (Postgres: %s); %d rows kept, retried every %.1f s",
                        first_line, waiting, self.interval_s)

    def close(self) -> None:
        """Stop the thread and write what is buffered (a graceful stop loses nothing)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()
        left = self.pending()
        if left:
            log.error("%d recommendation log rows not written at exit: Postgres did not answer", left)


def close_all() -> None:
    """Write every buffer of this process (gunicorn's worker_exit, and at interpreter exit)."""
    for writer in list(_writers):
        if writer._pid == os.getpid():
            try:
                writer.close()
            except Exception as exc:  # exiting: say so, do not raise
                log.error("recommendation log not written at exit: %s", exc)


atexit.register(close_all)

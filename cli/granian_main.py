"""`python -m cli.granian_main --bind HOST:PORT --workers N`: the service on Granian (a Rust HTTP
server running the same Flask app through WSGI), what `adaptrec serve --server granian` runs.

It sets up what cli/gunicorn_conf.py sets up for gunicorn:
- metrics: PROMETHEUS_MULTIPROC_DIR set (or emptied) before any worker starts; a replaced or
  stopped worker's live gauges marked dead; a folder made here removed at exit;
- logs: Granian's own lines in the app's JSON (or text) format on stderr; no Granian access line
  (the app writes its own, app/api/observe.py);
- limits: the request-head limits as problems (app/api/granian_app.py), hyper's head buffer kept
  just above them;
- stop: SIGTERM lets in-flight requests finish, for up to ADAPTREC_GRACEFUL_TIMEOUT_S before the
  worker is killed; the recommendation log is written on the way out (app/api/granian_app.py);
- a worker that dies is replaced (Granian's --respawn-failed-workers);
- request threads: ADAPTREC_THREADS Python threads per worker (Granian's blocking threads).
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import sys
from pathlib import Path

from app.config import HEADER_FIELD_MAX_BYTES, REQUEST_LINE_MAX_BYTES, Settings
from app.infra.logs import server_logconfig
from cli.common import prepare_metrics_dir

# hyper refuses a request head longer than its buffer with a bare 431 (or 400): keep the buffer
# above what the limits allow, so the middleware's problems answer what is over them.
HEAD_BUFFER_BYTES = max(64 * 1024, REQUEST_LINE_MAX_BYTES + 2 * HEADER_FIELD_MAX_BYTES + 8192)
# hyper's time allowed to read a request head; an idle keep-alive connection is closed after it
# too (Granian has no other keep-alive timeout), capped at its 60 s maximum.
HEADER_READ_TIMEOUT_MAX_MS = 60_000


def granian_logconfig(level: str, fmt: str) -> dict:
    return server_logconfig(level, fmt, "_granian", "granian.access")


def _mark_dead(pids) -> None:
    from prometheus_client import multiprocess

    for pid in pids:
        if pid:
            multiprocess.mark_process_dead(pid)


def _booting(target, *args, **kwargs):
    """A worker's first step: a stop asked for before Granian sets the worker's own signal handlers
    (while the app loads) ends the worker at once; it has served nothing, so nothing is lost.
    Without this the forked worker keeps the main process's handler, the signal is swallowed, and
    the stop waits ADAPTREC_GRACEFUL_TIMEOUT_S for a kill. And the worker stops when the main
    process dies."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    try:  # Linux: a main process killed outright (SIGKILL) sends its workers SIGTERM, a graceful
        # stop, as gunicorn's workers leave when their master is gone (Granian's would serve on)
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    return target(*args, **kwargs)


def _server_class():
    from granian.server import MPServer

    class Server(MPServer):
        """Granian's multi-process server, marking the metrics of a replaced or stopped worker dead
        (gunicorn_conf.child_exit's job under gunicorn), its workers guarded while they boot."""

        def _spawn_worker(self, idx, target, callback_loader):
            return super()._spawn_worker(idx, functools.partial(_booting, target), callback_loader)

        def _respawn_workers(self, workers, *args, **kwargs):
            pids = [self.wrks[i].inner.pid for i in workers]
            super()._respawn_workers(workers, *args, **kwargs)
            _mark_dead(pids)

        def _stop_workers(self):
            pids = [w.inner.pid for w in self.wrks]
            super()._stop_workers()
            _mark_dead(pids)

    return Server


def build(bind: str, workers: int, settings: Settings):
    from granian.constants import HTTPModes, Interfaces, RuntimeModes
    from granian.http import HTTP1Settings

    host, _, port = bind.rpartition(":")
    return _server_class()(
        "app.api.granian_app:create", address=host or "127.0.0.1", port=int(port), interface=Interfaces.WSGI,
        factory=True, workers=workers, blocking_threads=settings.threads, runtime_threads=1,
        runtime_mode=RuntimeModes.st, http=HTTPModes.http1, websockets=False,
        http1_settings=HTTP1Settings(
            keep_alive=settings.keepalive_s > 0, max_buffer_size=HEAD_BUFFER_BYTES,
            header_read_timeout=max(1000, min(HEADER_READ_TIMEOUT_MAX_MS, settings.keepalive_s * 1000))),
        log_enabled=True, log_level=settings.log_level.lower(),
        log_dictconfig=granian_logconfig(settings.log_level, settings.log_format), log_access=False,
        respawn_failed_workers=True, respawn_interval=0.0,
        workers_kill_timeout=max(1, settings.graceful_timeout_s), working_dir=Path(__file__).resolve().parent.parent)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.granian_main", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True, help="HOST:PORT")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    created = prepare_metrics_dir()
    # Granian's default start method on Linux is fork; the workers inherit the environment above.
    try:
        server = build(args.bind, args.workers or settings.workers, settings)
        server.serve()
    finally:
        if created:
            shutil.rmtree(created, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""gunicorn settings of `adaptrec serve` (gunicorn --config python:cli.gunicorn_conf).

Metrics: prometheus-client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR set before any
worker imports it, emptied at start (stale files would add old counts), and dead workers marked
so their gauges go. Logs: gunicorn's own lines in the app's JSON format; the access line is the
app's (app/api/observe.py), which knows the route, the key id and the request id.
Graceful shutdown: SIGTERM lets in-flight requests finish for up to graceful_timeout seconds.
Protocol errors: what gunicorn refuses itself (414, 431, a malformed request) is answered as
application/problem+json by the worker class, with the limits /openapi.json quotes.
"""
from __future__ import annotations

import shutil

from app.config import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES, Settings
from app.infra.logs import gunicorn_logconfig

_settings = Settings.from_env()   # the same settings, checked the same way, as the app's
logconfig_dict = gunicorn_logconfig(_settings.log_level, _settings.log_format)
accesslog = None
# gunicorn >= 24 opens a control socket at one fixed path per user (~/.gunicorn/gunicorn.ctl):
# several services, tests or benchmarks on one machine would fight over it. Not needed here.
control_socket_disable = True
graceful_timeout = _settings.graceful_timeout_s
timeout = 60
# gthread: each worker serves keep-alive connections (a backend's connection pool; the sync
# worker closes every connection). One request thread per worker by default: at 400
# recommendations/s it gave the lowest CPU and tail of 1, 2 and 4 (docs/BENCHMARKS.md, "The
# request path at the floor"); more threads let slow requests (dashboard pages, big ingest
# batches) overlap with fast ones, at some CPU per request.
worker_class = "cli.gunicorn_worker.ProblemThreadWorker"
threads = _settings.threads
keepalive = _settings.keepalive_s  # idle seconds a connection is kept open
logger_class = "cli.gunicorn_worker.Logger"
limit_request_line = REQUEST_LINE_MAX_BYTES
limit_request_fields = HEADER_FIELDS_MAX
limit_request_field_size = HEADER_FIELD_MAX_BYTES
_created_dir: str | None = None


def on_starting(server):
    # Imported here: gunicorn takes this module's top-level names as its settings (`config` is one).
    from cli.common import prepare_metrics_dir

    global _created_dir
    _created_dir = prepare_metrics_dir()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_dir:
        shutil.rmtree(_created_dir, ignore_errors=True)


def worker_exit(server, worker):
    """A worker stopping gracefully writes its buffered recommendation log rows first."""
    from app.serving import recommendation_log

    recommendation_log.close_all()

"""`adaptrec serve` (what `make run` calls): migrate, optionally load the demo, then run the HTTP
server: gunicorn (cli/gunicorn_conf.py) or Granian (cli/granian_main.py), chosen by --server or
ADAPTREC_SERVER (docs/OPERATIONS.md, "Choosing the HTTP server").

On the embedded default this process holds the embedded servers for as long as the HTTP server
runs and releases them when it stops (Ctrl-C or SIGTERM), so other `adaptrec` commands started
meanwhile share the same Postgres and Redis.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace

from app.access.tenants import DEFAULT
from app.config import PROJECT_ROOT, SERVERS, Settings
from app.infra import queries as q
from app.infra.db import connect
from app.infra.migrations import migrate
from cli.arguments import port_number, positive
from cli.embedded import servers_for


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve the HTTP API (gunicorn or Granian)",
                           description="Apply migrations and serve the API with gunicorn or Granian. With no "
                                       "ADAPTREC_DATABASE_URL / ADAPTREC_REDIS_URL it runs on the embedded "
                                       "servers under ./var/.")
    serve.add_argument("--host", default=None, help="bind address (default ADAPTREC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=None, help="port (default ADAPTREC_PORT or 8000)")
    serve.add_argument("--workers", type=positive, default=None,
                       help="worker processes (default ADAPTREC_WORKERS or 2)")
    serve.add_argument("--server", choices=SERVERS, default=None,
                       help="the HTTP server (default ADAPTREC_SERVER or gunicorn; docs/OPERATIONS.md)")
    serve.add_argument("--demo-if-empty", action="store_true", help="load the demo data set into an empty database")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    return serve(host=args.host, port=args.port, workers=args.workers, demo_if_empty=args.demo_if_empty,
                 server=args.server)


def _say(message: str) -> None:
    print(f"adaptrec: {message}", file=sys.stderr, flush=True)


def _embedded_api_key(settings: Settings) -> str:
    """A key kept in var/api_key, so the printed curl keeps working across restarts."""
    path = settings.var_dir / "api_key"
    if path.exists():
        return path.read_text().strip()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key = "demo-" + secrets.token_urlsafe(18)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _detach_but_die_with_parent() -> None:
    os.setsid()
    try:  # Linux: if this process is killed outright, the kernel sends gunicorn SIGTERM
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _database_is_empty(conn) -> bool:
    empty = q.fetch_one(conn, "database_is_empty", tenant=DEFAULT)["empty"]
    conn.rollback()
    return empty


def _no_active_models(conn) -> bool:
    none = q.fetch_one(conn, "no_active_models", tenant=DEFAULT)["none_active"]
    conn.rollback()
    return none


def _train_bootstrap_models(database_url: str) -> None:
    """A newcomer should get recommendations at once: train the big units (the root, the
    subjects) quickly, without tuning. The nightly `adaptrec train --all` does the rest."""
    from jobs.train import TrainConfig, run_training

    _say("no active model yet: training the largest units (adaptrec train) ...")
    report = run_training(database_url, TrainConfig.from_env(max_trials=1, min_interactions=20000))
    activated = sum(1 for o in report.outcomes if o.status == "activated")
    _say(f"activated {activated} model(s); run `adaptrec train --all` for a model per unit")


def _sample_ids(conn) -> dict:
    """Ids for the printed examples: the most active learner, a small unit (a section when the
    catalogue has them, else a top unit) and an active item under it."""
    sample = q.fetch_one(conn, "sample_ids", tenant=DEFAULT)
    user_id, unit_id = sample["user_id"], sample["unit_id"]
    conn.rollback()
    items = q.fetch_all(conn, "items_under_units", tenant=DEFAULT, unit_ids=[unit_id]) if unit_id else []
    conn.rollback()
    return {"user_id": user_id, "unit_id": unit_id, "item_id": items[0]["item_id"] if items else None}


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> bool:
    """Poll `url` until it answers 200; False if `proc` exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def _examples(base: str, key: str, ids: dict) -> str:
    auth = f"-H {shlex.quote('Authorization: Bearer ' + key)}"
    json_type = "-H 'Content-Type: application/json'"
    lines = [f"  curl -s {base}/readyz"]
    if ids.get("unit_id") and ids.get("user_id"):
        ask = json.dumps({"user_id": ids["user_id"], "units": [ids["unit_id"]], "n": 3})
        lines.append(f"  curl -s {auth} {json_type} -d {shlex.quote(ask)} {base}/v1/recommendations")
    if ids.get("user_id") and ids.get("item_id"):
        event = json.dumps({"user_id": ids["user_id"], "item_id": ids["item_id"], "kind": "attempt", "outcome": 0})
        lines.append(f"  curl -s {auth} {json_type} -d {shlex.quote(event)} {base}/v1/interactions")
        lines.append("  (then ask for recommendations again: the probabilities move)")
    if ids.get("unit_id"):
        lines.append(f"  curl -s {auth} {base}/v1/units/{ids['unit_id']}")
    return "\n".join(lines)


def gunicorn_command(bind: str, workers: int, extra: list[str] | None = None) -> list[str]:
    """The gunicorn command line of `adaptrec serve` (plus `extra` arguments). The settings file
    cli/gunicorn_conf.py sets up multiprocess metrics, JSON logs and the graceful timeout."""
    return [sys.executable, "-m", "gunicorn", "--config", "python:cli.gunicorn_conf", "--bind", bind,
            "--workers", str(workers), "--chdir", str(PROJECT_ROOT), *(extra or []), "app.api.factory:create_app()"]


def granian_command(bind: str, workers: int, extra: list[str] | None = None) -> list[str]:
    """The Granian command line of `adaptrec serve --server granian`: cli/granian_main.py sets up
    what cli/gunicorn_conf.py does for gunicorn. `extra` must be empty (no free-form options)."""
    if extra:
        raise ValueError(f"no extra arguments for Granian (its options are set in cli/granian_main.py): {extra}")
    return [sys.executable, "-m", "cli.granian_main", "--bind", bind, "--workers", str(workers)]


def server_command(server: str, bind: str, workers: int, extra: list[str] | None = None) -> list[str]:
    """The command line of `server` (one of app.config.SERVERS) as `adaptrec serve` runs it."""
    if server == "granian":
        return granian_command(bind, workers, extra)
    if server == "gunicorn":
        return gunicorn_command(bind, workers, extra)
    raise ValueError(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


def serve(host: str | None = None, port: int | None = None, workers: int | None = None,
          demo_if_empty: bool = False, server: str | None = None) -> int:
    configured = Settings.from_env()
    configured = replace(configured, host=host or configured.host, port=port or configured.port,
                         workers=workers or configured.workers, server=server or configured.server)
    with servers_for(configured) as settings:
        ids = _prepare(settings, demo_if_empty)
        api_keys = settings.api_keys
        if not api_keys:
            if not configured.embedded:
                _say("set ADAPTREC_API_KEYS (comma-separated keys) before serving on real servers")
                return 1
            api_keys = (_embedded_api_key(settings),)
        returncode = _run_server(settings, configured.embedded, api_keys, ids)
        if configured.embedded:
            _say("stopped; the embedded servers stop too unless another adaptrec command still uses them")
        return returncode


def _prepare(settings: Settings, demo_if_empty: bool) -> dict:
    """Migrate; with `demo_if_empty`, load the demo into an empty database and train bootstrap
    models when none is active. Returns the ids of the printed examples (_sample_ids)."""
    conn = connect(settings.database_url, connect_timeout=settings.db_connect_timeout_s)
    try:
        for m in migrate(conn, lock_timeout_ms=settings.migration_lock_timeout_ms):
            _say(f"applied migration {m.version:03d}_{m.name}")
        if demo_if_empty and _database_is_empty(conn):
            from jobs.demo import DemoConfig, generate_demo

            _say("the database is empty: loading the demo data set (adaptrec demo)")
            _say(generate_demo(conn, DemoConfig(), progress=True).summary())
        ids = _sample_ids(conn)
        needs_models = demo_if_empty and _no_active_models(conn)
    finally:
        conn.close()
    if needs_models:
        _train_bootstrap_models(settings.database_url)
    return ids


class _GracefulStop:
    """The SIGINT / SIGTERM handler while the HTTP server runs: the first signal asks it for its
    graceful stop (workers finish their in-flight requests)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if not self.requested:
            self.requested = True
            _say("stopping (waiting for in-flight requests)...")
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish their requests


def _run_server(settings: Settings, embedded: bool, api_keys: tuple[str, ...], ids: dict) -> int:
    """Run the HTTP server until it exits or is stopped; its exit code (0 after a requested stop)."""
    env = dict(os.environ)
    env.update({
        "ADAPTREC_DATABASE_URL": settings.database_url,
        "ADAPTREC_REDIS_URL": settings.redis_url,
        "ADAPTREC_API_KEYS": ",".join(api_keys),
    })
    cmd = server_command(settings.server, f"{settings.host}:{settings.port}", settings.workers)
    # The server gets its own session so a terminal's Ctrl-C reaches only us; we turn it into
    # SIGTERM, the graceful stop of both servers, and in-flight requests finish.
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_detach_but_die_with_parent)
    stop = _GracefulStop(proc)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _announce_when_ready(settings, embedded, api_keys[0], ids, proc)
        while proc.poll() is None:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    return 0 if stop.requested or proc.returncode == 0 else proc.returncode


def _announce_when_ready(settings: Settings, embedded: bool, api_key: str, ids: dict,
                         proc: subprocess.Popen) -> None:
    """Once /readyz answers: where the service runs, its key and the curl examples."""
    base = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '') else settings.host}:{settings.port}"
    if wait_ready(base + "/readyz", proc):
        where = f"embedded servers under {settings.var_dir}" if embedded else "configured servers"
        print(f"\nadaptrec is serving on {base} ({where}).\nAPI key: {api_key}\nTry:\n"
              f"{_examples(base, api_key, ids)}\n\n"
              f"Dashboard: {base}/dashboard (sign in with the API key above)\n\n"
              f"Press Ctrl-C to stop.\n", flush=True)
    elif proc.poll() is None:
        _say(f"the service did not become ready on {base}/readyz; see the log above")

"""The service as `adaptrec serve` runs it (cli.serve.server_command: gunicorn or Granian, by the
`server` argument or ADAPTREC_SERVER), started on a free port for a benchmark or a test, awaited
on /readyz, and stopped gracefully afterwards."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.config import PROJECT_ROOT, SERVERS
from harness.measure import child_pids

# BLAS threads would make the workers fight over the cores: one each, as in production.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ServiceNotReady(RuntimeError):
    """The server exited or did not answer /readyz in time; the message ends with its log."""


def chosen_server(server: str | None = None) -> str:
    """`server`, else ADAPTREC_SERVER, else gunicorn: what a test or bench runs (one of SERVERS)."""
    chosen = server or os.environ.get("ADAPTREC_SERVER") or "gunicorn"
    if chosen not in SERVERS:
        raise ValueError(f"ADAPTREC_SERVER must be one of {', '.join(SERVERS)}, got {chosen!r}")
    return chosen


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    """A running server: `base_url` to send requests to, `proc` its master (gunicorn) or main
    (Granian) process, whose children are the workers."""
    base_url: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    server: str = "gunicorn"

    def workers(self) -> list[int]:
        """The master's children, its workers (for memory and CPU meters, or to kill one)."""
        return sorted(child_pids(self.proc.pid))

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM to the master (the graceful stop of both servers: in-flight requests finish), then
        SIGKILL to its whole process group if it has not exited within `timeout_s`."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the workers too
                self.proc.wait()
        return self.proc.returncode


@contextmanager
def running_service(database_url: str, redis_url: str, api_key: str, log_path: Path, *,
                    redis_prefix: str | None = None, workers: int = 2, gunicorn_args: list[str] | None = None,
                    env: dict | None = None, ready_timeout_s: float = 60, server: str | None = None):
    """Start the server (chosen_server(server); `workers` workers, plus `gunicorn_args` for
    gunicorn) on a free port of 127.0.0.1 with these servers and key, one BLAS thread per worker,
    and `env` on top; yield a Service once /readyz answers 200 (ServiceNotReady if it does not);
    stop it on the way out.

    stdout and stderr (the JSON logs) go to `log_path`. The server gets a session of its own, so a
    terminal's Ctrl-C reaches only the caller, whose exit then stops it gracefully."""
    from cli.serve import server_command, wait_ready  # the command `adaptrec serve` runs

    server = chosen_server(server)

    port = free_port()
    full_env = {**os.environ, "ADAPTREC_DATABASE_URL": database_url, "ADAPTREC_REDIS_URL": redis_url,
                "ADAPTREC_API_KEYS": api_key, **ONE_BLAS_THREAD, **(env or {})}
    if redis_prefix is not None:
        full_env["ADAPTREC_REDIS_PREFIX"] = redis_prefix
    log_path = Path(log_path)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(server_command(server, f"127.0.0.1:{port}", workers, gunicorn_args), env=full_env,
                                cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(f"http://127.0.0.1:{port}", port, proc, log_path, server)
    try:
        if not wait_ready(service.base_url + "/readyz", proc, timeout_s=ready_timeout_s):
            raise ServiceNotReady(f"{server} did not become ready on {service.base_url}; {log_path}:\n"
                                  f"{service.log_tail()}")
        yield service
    finally:
        service.stop()

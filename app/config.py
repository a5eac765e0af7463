"""Every setting adaptrec reads from the environment, in one place.

Production sets ADAPTREC_DATABASE_URL and ADAPTREC_REDIS_URL. With neither set, commands use
the embedded servers under ADAPTREC_HOME/var (see cli.embedded).
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

# Where the app package sits: the repository in a checkout (and an editable install),
# site-packages in an installed copy. migrations/ and sql/ are packages beside app/ in both.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
SQL_DIR = PROJECT_ROOT / "sql"
# gunicorn's limits on the HTTP request head (set in cli/gunicorn_conf.py, quoted in /openapi.json):
# past them gunicorn answers 414 or 431 itself, before the application sees the request.
REQUEST_LINE_MAX_BYTES = 4094
HEADER_FIELDS_MAX = 100
HEADER_FIELD_MAX_BYTES = 8190
TRAINING_MODES = ("mf", "partial", "full")
SERVERS = ("gunicorn", "granian")   # the HTTP servers `adaptrec serve` can run (cli/serve.py)
# which items' difficulty the service learns between trainings (app/serving/item_learning.py): every
# item, as far as the model's own error on it allows; only what training left unknown (items with
# few training attempts); none
ITEM_LEARNING = ("all", "few", "off")
LOG_RETENTION_DAYS = 400   # a year and its seasons' comparisons; 0 keeps everything
KILL_WORKER_IN_UNIT = "ADAPTREC_TEST_KILL_WORKER_IN_UNIT"


def default_home() -> Path:
    """var/ lives in the repository of a checkout; an installed copy keeps it in the directory
    it is started from (never in site-packages)."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()


def default_log_format() -> str:
    """Readable text in a terminal (`make run`); JSON lines for log collectors otherwise."""
    return "text" if sys.stderr.isatty() else "json"


class ConfigError(ValueError):
    """A setting has a value adaptrec cannot use; the message names the variable and what to give."""


# ---- typed readers: a variable unset or empty gives `default`; a bad value raises ConfigError ----
def _given(env, name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw


def _int(env, name: str, default: int | None, minimum: int = 0, maximum: int | None = None,
         meaning: str = "") -> int | None:
    raw = _given(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        what = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ConfigError(f"{name} must be a whole number {what}{meaning}, got {raw!r}")
    return value


def _float(env, name: str, default: float | None, minimum: float, maximum: float) -> float | None:
    raw = _given(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum:   # NaN fails too
        raise ConfigError(f"{name} must be a number from {minimum:g} to {maximum:g}, got {raw!r}")
    return value


def _bool(env, name: str, default: bool | None) -> bool | None:
    raw = _given(env, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError(f"{name} must be 1 or 0 (or true / false, yes / no), got {raw!r}")
    return value in ("1", "true", "yes", "on")


def _choice(env, name: str, default: str | None, allowed: tuple[str, ...]) -> str | None:
    raw = _given(env, name)
    if raw is None:
        return default
    value = raw.strip()
    value = value.upper() if allowed[0].isupper() else value.lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def _url(env, name: str, schemes: tuple[str, ...], example: str) -> str | None:
    """A server's URL. The value is never repeated in the message: it may hold a password."""
    raw = env.get(name) or None
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in schemes or not rest:
        raise ConfigError(f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL, e.g. {example} "
                          "(the value given is not shown: it may hold a password)")
    return raw


def _address(env, name: str, schemes: tuple[str, ...], example: str) -> str | None:
    """A host's address: SCHEME://HOST:PORT or HOST:PORT."""
    raw = _given(env, name)
    if raw is None:
        return None
    scheme, sep, rest = raw.strip().rpartition("://")
    host, _, port = rest.rpartition(":")
    if (sep and scheme.lower() not in schemes) or not host or not port.isdigit():
        raise ConfigError(f"{name} must be an address such as {example}, got {raw!r}")
    return raw.strip()


def log_level(env: dict | None = None) -> str:
    """ADAPTREC_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default INFO)."""
    return _choice(os.environ if env is None else env, "ADAPTREC_LOG_LEVEL", "INFO",
                   ("DEBUG", "INFO", "WARNING", "ERROR"))


def log_retention_days(env: dict | None = None) -> int:
    """ADAPTREC_LOG_RETENTION_DAYS: months of the recommendation log that ended longer ago than
    this are dropped by its upkeep (jobs/log_retention.py); 0 keeps the whole log."""
    return _int(os.environ if env is None else env, "ADAPTREC_LOG_RETENTION_DAYS", LOG_RETENTION_DAYS, 0,
                meaning=" (days; 0 keeps the whole recommendation log)")


def multiprocess_metrics_dir(env: dict | None = None) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: the folder where gunicorn's workers keep their metrics, set by
    cli/gunicorn_conf.py before any worker starts (prometheus-client reads it too). Set: this
    process is a worker of several, and /metrics and the request rollup read every worker's files."""
    return _given(os.environ if env is None else env, "PROMETHEUS_MULTIPROC_DIR")


def train_settings(env: dict | None = None) -> dict:
    """The training job's variables that are set, checked, by TrainConfig's field name
    (jobs/training/job.py): the job keeps its defaults, a variable overrides one."""
    env = os.environ if env is None else env
    values = {
        "mode": _choice(env, "ADAPTREC_TRAIN_MODE", None, TRAINING_MODES),
        "min_items": _int(env, "ADAPTREC_TRAIN_MIN_ITEMS", None, 1),
        "min_interactions": _int(env, "ADAPTREC_TRAIN_MIN_INTERACTIONS", None, 1),
        "min_engaged_items": _int(env, "ADAPTREC_TRAIN_MIN_ENGAGED_ITEMS", None, 1),
        "max_attempts": _int(env, "ADAPTREC_TRAIN_MAX_ATTEMPTS", None, 0, meaning=" (0: no sample, every learner)"),
        "keep_versions": _int(env, "ADAPTREC_TRAIN_KEEP_VERSIONS", None, 0),
        "margin": _float(env, "ADAPTREC_TRAIN_MARGIN", None, 0.0, 1.0),
        "max_trials": _int(env, "ADAPTREC_TRAIN_MAX_TRIALS", None, 1),
        "threads": _int(env, "ADAPTREC_TRAIN_THREADS", None, 1),
        "max_eval_users": _int(env, "ADAPTREC_TRAIN_MAX_EVAL_USERS", None, 1),
        "ease_neighbours": _int(env, "ADAPTREC_TRAIN_EASE_NEIGHBOURS", None, 1),
        "prefer_parent": _bool(env, "ADAPTREC_TRAIN_PREFER_PARENT", None),
        "workers": _int(env, "ADAPTREC_TRAIN_WORKERS", None, 1),
        "dask_scheduler": _address(env, "ADAPTREC_DASK_SCHEDULER", ("tcp", "tls", "ucx", "ws", "wss", "inproc"),
                                   "tcp://10.0.0.5:8786"),
    }
    return {name: value for name, value in values.items() if value is not None}


def kill_worker_in_unit(env: dict | None = None) -> str | None:
    """ADAPTREC_TEST_KILL_WORKER_IN_UNIT, tests only: a training worker process SIGKILLs itself
    when it starts the task of this unit (jobs/training/tasks.py)."""
    return _given(os.environ if env is None else env, KILL_WORKER_IN_UNIT)


def _keys(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(k.strip() for k in raw.split(",") if k.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    # Every Redis key starts with this, so several deployments (or test runs) can share a server.
    redis_prefix: str = "adaptrec:"
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    home: Path = PROJECT_ROOT
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    server: str = "gunicorn"           # SERVERS: which HTTP server runs the workers (docs/OPERATIONS.md)
    item_learning: str = "all"         # ITEM_LEARNING: which items' difficulty the service learns between trainings
    # gunicorn's (cli/gunicorn_conf.py): request threads per worker, the seconds an idle keep-alive
    # connection stays open, and how long in-flight requests may take to finish on SIGTERM.
    threads: int = 1
    keepalive_s: int = 75
    graceful_timeout_s: int = 20
    db_pool_max: int = 8
    db_connect_timeout_s: int = 3
    statement_timeout_ms: int = 5000
    migration_lock_timeout_ms: int = 30000
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_format: str = "json"          # json (one object per line) or text; from_env: text in a terminal
    rate_limit_per_s: int = 1000      # per key, unless the key has its own; 0: unlimited
    key_cache_s: float = 5.0          # a revoked key stops working within this time
    # Totara's ML-service endpoints (app/api/totara.py): the shared key Totara signs with (unset:
    # the endpoints refuse every request), the clock skew allowed, the mode new Totara tenants train in.
    totara_key: str | None = field(default=None, repr=False)
    totara_skew_s: int = 300
    totara_mode: str = "full"
    # The dashboard (app/dashboard): an active model older than this is flagged on the overview;
    # the request-metrics snapshot interval of each gunicorn worker (0: none).
    dashboard_stale_hours: int = 36
    metrics_rollup_s: int = 60

    @property
    def var_dir(self) -> Path:
        return self.home / "var"

    @property
    def embedded(self) -> bool:
        """True when neither server URL is configured: use the embedded servers under var/."""
        return not self.database_url and not self.redis_url

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        db_url = _url(env, "ADAPTREC_DATABASE_URL", ("postgresql", "postgres"),
                      "postgresql://user:pw@db:5432/adaptrec")
        redis_url = _url(env, "ADAPTREC_REDIS_URL", ("redis", "rediss", "unix"), "redis://cache:6379/0")
        if bool(db_url) != bool(redis_url):
            missing = "ADAPTREC_REDIS_URL" if db_url else "ADAPTREC_DATABASE_URL"
            raise ConfigError(
                f"set both ADAPTREC_DATABASE_URL and ADAPTREC_REDIS_URL, or neither "
                f"(embedded servers); {missing} is missing"
            )
        return cls(
            database_url=db_url,
            redis_url=redis_url,
            redis_prefix=env.get("ADAPTREC_REDIS_PREFIX", "adaptrec:"),
            api_keys=_keys(env.get("ADAPTREC_API_KEYS")),
            home=Path(env.get("ADAPTREC_HOME") or default_home()).resolve(),
            host=env.get("ADAPTREC_HOST", "127.0.0.1"),
            port=_int(env, "ADAPTREC_PORT", 8000, 1, 65535),
            workers=_int(env, "ADAPTREC_WORKERS", 2, 1),
            server=_choice(env, "ADAPTREC_SERVER", "gunicorn", SERVERS),
            item_learning=_choice(env, "ADAPTREC_ITEM_LEARNING", "all", ITEM_LEARNING),
            threads=_int(env, "ADAPTREC_THREADS", 1, 1),
            keepalive_s=_int(env, "ADAPTREC_KEEPALIVE_S", 75, 0),
            graceful_timeout_s=_int(env, "ADAPTREC_GRACEFUL_TIMEOUT_S", 20, 0),
            db_pool_max=_int(env, "ADAPTREC_DB_POOL_MAX", 8, 1),
            db_connect_timeout_s=_int(env, "ADAPTREC_DB_CONNECT_TIMEOUT", 3, 1),
            statement_timeout_ms=_int(env, "ADAPTREC_STATEMENT_TIMEOUT_MS", 5000, 0),
            migration_lock_timeout_ms=_int(env, "ADAPTREC_MIGRATION_LOCK_TIMEOUT_MS", 30000, 1),
            max_body_bytes=_int(env, "ADAPTREC_MAX_BODY_BYTES", 1_048_576, 1024),
            log_level=log_level(env),
            log_format=_choice(env, "ADAPTREC_LOG_FORMAT", default_log_format(), ("json", "text")),
            rate_limit_per_s=_int(env, "ADAPTREC_RATE_LIMIT_PER_S", 1000, 0),
            key_cache_s=float(_int(env, "ADAPTREC_KEY_CACHE_S", 5, 0)),
            totara_key=env.get("ADAPTREC_TOTARA_KEY") or None,
            totara_skew_s=_int(env, "ADAPTREC_TOTARA_SKEW_S", 300, 1),
            totara_mode=_choice(env, "ADAPTREC_TOTARA_MODE", "full", TRAINING_MODES),
            dashboard_stale_hours=_int(env, "ADAPTREC_DASHBOARD_STALE_HOURS", 36, 1),
            metrics_rollup_s=_int(env, "ADAPTREC_METRICS_ROLLUP_S", 60, 0),
        )

    def with_servers(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

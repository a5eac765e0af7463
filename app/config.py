"""Every setting adaptrec reads from the environment, in one place.

Production sets ADAPTREC_DATABASE_URL and ADAPTREC_REDIS_URL. With neither set, commands use
the embedded servers under ADAPTREC_HOME/var (see cli.embedded).
"""
from __future__ import annotations

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


def default_home() -> Path:
    """var/ lives in the repository of a checkout; an installed copy keeps it in the directory
    it is started from (never in site-packages)."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()


def default_log_format() -> str:
    """Readable text in a terminal (`make run`); JSON lines for log collectors otherwise."""
    return "text" if sys.stderr.isatty() else "json"


class ConfigError(ValueError):
    """A setting has a value adaptrec cannot use; the message names the variable."""


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(env: dict, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip()
    value = value.upper() if allowed[0].isupper() else value.lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {env.get(name)!r}")
    return value


def log_level(env: dict | None = None) -> str:
    """ADAPTREC_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default INFO)."""
    return _choice(os.environ if env is None else env, "ADAPTREC_LOG_LEVEL", "INFO",
                   ("DEBUG", "INFO", "WARNING", "ERROR"))


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
        db_url = env.get("ADAPTREC_DATABASE_URL") or None
        redis_url = env.get("ADAPTREC_REDIS_URL") or None
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
            port=_int(env, "ADAPTREC_PORT", 8000, 1),
            workers=_int(env, "ADAPTREC_WORKERS", 2, 1),
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
            totara_mode=_choice(env, "ADAPTREC_TOTARA_MODE", "full", ("mf", "partial", "full")),
            dashboard_stale_hours=_int(env, "ADAPTREC_DASHBOARD_STALE_HOURS", 36, 1),
            metrics_rollup_s=_int(env, "ADAPTREC_METRICS_ROLLUP_S", 60, 0),
        )

    def with_servers(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

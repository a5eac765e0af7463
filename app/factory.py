"""The Flask application factory (flaskr's shape): create_app(settings) wires configuration,
the per-process database pool, the cache, auth, error handling and the blueprints."""
from __future__ import annotations

from flask import Flask, g

from app import logs
from app.cache import Cache
from app.candidates import CandidateCache
from app.config import Settings
from app.db import ConnectionPool
from app.keys import Keyring
from app.model_cache import ModelCache


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("create_app needs ADAPTREC_DATABASE_URL and ADAPTREC_REDIS_URL "
                           "(`adaptrec serve` fills them in for the embedded servers)")
    logs.configure(settings.log_level, settings.log_format)

    app = Flask("adaptrec")
    app.config["ADAPTREC_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["adaptrec.pool"] = ConnectionPool(
        settings.database_url, maxconn=settings.db_pool_max,
        connect_timeout=settings.db_connect_timeout_s, statement_timeout_ms=settings.statement_timeout_ms)
    app.extensions["adaptrec.cache"] = Cache(settings.redis_url, settings.redis_prefix)
    app.extensions["adaptrec.models"] = ModelCache()
    app.extensions["adaptrec.candidates"] = CandidateCache()
    app.extensions["adaptrec.keys"] = Keyring(settings.api_keys, ttl_s=settings.key_cache_s)

    from app.api import register
    register(app)

    @app.teardown_appcontext
    def _release_connection(exc):
        conn = g.pop("db_conn", None)
        if conn is not None:
            app.extensions["adaptrec.pool"].putconn(conn)

    return app

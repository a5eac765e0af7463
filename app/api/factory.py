"""The Flask application factory (flaskr's shape): create_app(settings) wires configuration,
the per-process database pool, the cache, auth, error handling and the blueprints. gunicorn
serves `app.api.factory:create_app()` (cli.serve.gunicorn_command)."""
from __future__ import annotations

from flask import Flask, g

from app.access.keys import Keyring
from app.access.ratelimit import RateLimiter
from app.access.tenants import TenantDirectory
from app.api import (
    catalog,
    experiments,
    health,
    interactions,
    knowledge,
    monitoring,
    openapi,
    recommendations,
    totara,
    xapi,
)
from app.api.auth import check_api_key
from app.api.errors import register_error_handlers
from app.api.observe import finish, start_timer
from app.api.paths import EncodedSlashes, IdConverter
from app.api.query import check_query
from app.catalogue.candidates import CandidateCache
from app.catalogue.xapi_ingest import ActivityMap
from app.config import Settings
from app.dashboard.routes import init_app as init_dashboard
from app.infra import logs
from app.infra.cache import Cache
from app.infra.db import ConnectionPool
from app.serving.context import Services
from app.serving.model_cache import ModelCache
from app.serving.recommendation_log import RecommendationLog


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
    app.extensions["adaptrec"] = build_services(settings)
    register(app)

    @app.teardown_appcontext
    def _release_connection(exc):
        conn = g.pop("db_conn", None)
        if conn is not None:
            app.extensions["adaptrec"].pool.putconn(conn)

    return app


def build_services(settings: Settings) -> Services:
    """What the worker's requests share, built once (app.serving.context.Services)."""
    pool = ConnectionPool(settings.database_url, maxconn=settings.db_pool_max,
                          connect_timeout=settings.db_connect_timeout_s,
                          statement_timeout_ms=settings.statement_timeout_ms)
    cache = Cache(settings.redis_url, settings.redis_prefix)
    return Services(pool=pool, cache=cache, models=ModelCache(settings.item_learning, settle=True),
                    candidates=CandidateCache(),
                    log=RecommendationLog(pool.connection),
                    keys=Keyring(settings.api_keys, ttl_s=settings.key_cache_s),
                    tenants=TenantDirectory(ttl_s=settings.key_cache_s), rate_limiter=RateLimiter(cache),
                    activities=ActivityMap())


def close(app: Flask) -> None:
    """Release what create_app opened: write the buffered recommendation log, close the database
    pool and the Redis client (tests, and anything else that ends an app before its process)."""
    services: Services = app.extensions["adaptrec"]
    services.log.close()
    services.pool.closeall()
    services.cache.close()


def register(app: Flask) -> None:
    """The gate, the error handlers and every blueprint."""
    # Ids with '/' (sent as %2F) route as one segment; see app/api/paths.py. The rule strings,
    # hence metric labels, stay /v1/items/<item_id>. A '//' is a 404, not a redirect to guess at.
    app.url_map.converters["default"] = IdConverter
    app.url_map.merge_slashes = False
    app.wsgi_app = EncodedSlashes(app.wsgi_app)
    register_error_handlers(app)
    app.before_request(start_timer)
    app.before_request(check_api_key)
    app.before_request(check_query)  # after the key: a caller without one learns that first
    app.after_request(finish)
    for module in (health, monitoring, catalog, interactions, recommendations, knowledge, experiments, totara,
                   xapi, openapi):
        app.register_blueprint(module.bp)
    init_dashboard(app)   # /dashboard: its own session gate (app/dashboard/web.py)

"""Prometheus metrics: what every worker counts, and the exposition at /metrics.

Under gunicorn each worker is its own process, so prometheus-client runs in multiprocess mode:
PROMETHEUS_MULTIPROC_DIR (set by cli/gunicorn_conf.py before any worker starts) holds one file
per worker and /metrics sums them. Without it (tests, a single process) the default registry is
used. Facts that live in Postgres (active models, job runs) are read at scrape time, so every
worker and replica reports the same values and a job process needs no exporter of its own.
No label carries a user id or a key's secret: label values are bounded sets.
"""
from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from app.config import multiprocess_metrics_dir
from app.infra import queries as q

log = logging.getLogger("adaptrec.metrics")

REQUEST_SECONDS = Histogram(
    "adaptrec_http_request_duration_seconds", "HTTP request latency by endpoint (route), method and status",
    ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LIVE_FIT_SECONDS = Histogram(
    "adaptrec_live_fit_seconds", "Live fit of the learner's embedding and scoring of the candidates",
    ["objective"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
CANDIDATES_SCORED = Histogram(
    "adaptrec_candidates_scored", "Candidate items scored per request",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000))
CACHE_REQUESTS = Counter(
    "adaptrec_cache_requests_total", "Cache lookups by cache (history, candidates) and result "
    "(hit, miss, error: Redis did not answer and Postgres did)", ["cache", "result"])
FALLBACKS = Counter("adaptrec_fallbacks_total", "Fallbacks taken by recommendation requests", ["reason"])
INGESTED = Counter("adaptrec_ingested_events_total", "Interactions received, by result (created, duplicate)",
                   ["status"])
XAPI_STATEMENTS = Counter(
    "adaptrec_xapi_statements_total", "xAPI statements received, by status (recorded: a new interaction; "
    "duplicate: received before; unmappable: kept with the reason, see the view xapi_unmappable; rejected: "
    "invalid, the whole request refused) and reason (unmappable: app/xapi/mapping.py REASONS; rejected: the rule)",
    ["status", "reason"])
AUTH_FAILURES = Counter("adaptrec_auth_failures_total", "Refused requests by reason (missing, invalid, scope, tenant)",
                        ["reason"])
RATE_LIMITED = Counter("adaptrec_rate_limited_total", "Requests refused with 429, by key id", ["key_id"])
RATE_UNCHECKED = Counter("adaptrec_rate_limit_unchecked_total",
                         "Requests let through without a rate check because Redis did not answer")
RECOMMENDATION_LOG_ROWS = Counter(
    "adaptrec_recommendation_log_rows_total", "Rows of the recommendation log by result (written; dropped: "
    "the buffer overflowed while Postgres was down, or Postgres refused them)", ["result"])
DATABASE_UNAVAILABLE = Counter("adaptrec_database_unavailable_total", "Requests answered 503: Postgres did not answer")


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(endpoint, method, str(status)).observe(seconds)


class DatabaseCollector:
    """Active model version and age per tenant and unit, and job runs, read from Postgres at scrape time."""

    def __init__(self, pool):
        self.pool = pool

    def collect(self):
        try:
            with self.pool.connection() as conn:
                models = q.fetch_all(conn, "active_model_metrics")
                jobs = q.fetch_all(conn, "job_metrics")
                conn.rollback()
        except Exception as exc:  # a scrape must answer even when Postgres does not
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc
            log.warning("metrics from postgres unavailable: %s", first_line)
            up = GaugeMetricFamily("adaptrec_postgres_up", "1 when Postgres answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("adaptrec_postgres_up", "1 when Postgres answered the scrape")
        up.add_metric([], 1)
        yield up
        labels = ["tenant", "unit", "objective", "tag"]
        version = GaugeMetricFamily("adaptrec_model_version", "model_id of the active model", labels=labels)
        age = GaugeMetricFamily("adaptrec_model_age_seconds", "Age of the active model (since training)", labels=labels)
        for m in models:
            key = [m["tenant"], m["unit_id"], m["objective"], m["tag"]]
            version.add_metric(key, m["model_id"])
            age.add_metric(key, float(m["age_s"]))
        yield version
        yield age
        runs = GaugeMetricFamily("adaptrec_job_runs", "Job runs recorded, by job and state "
                                 "(running, abandoned, succeeded, failed, skipped)", labels=["job", "state"])
        last_duration = GaugeMetricFamily("adaptrec_job_last_duration_seconds", "Duration of the last finished run",
                                          labels=["job", "outcome"])
        last_success = GaugeMetricFamily("adaptrec_job_last_success_timestamp_seconds",
                                         "When the last successful run ended (Unix time)", labels=["job"])
        seen = set()
        for j in jobs:
            runs.add_metric([j["job"], j["state"]], j["runs"])
            if j["job"] in seen:
                continue
            seen.add(j["job"])
            if j["last_duration_s"] is not None:
                last_duration.add_metric([j["job"], j["last_state"]], float(j["last_duration_s"]))
            if j["last_success_at"] is not None:
                last_success.add_metric([j["job"]], float(j["last_success_at"]))
        yield runs
        yield last_duration
        yield last_success


class _Default:
    """The process's own registry, as a collector of a per-scrape registry."""

    def collect(self):
        return REGISTRY.collect()


def render(pool) -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess mode) or this process, plus Postgres facts."""
    registry = CollectorRegistry()
    if multiprocess_metrics_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Default())
    registry.register(DatabaseCollector(pool))
    return generate_latest(registry), CONTENT_TYPE_LATEST

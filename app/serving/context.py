"""What a request works with: the worker's shared services, built once by the app factory, and a
request's context (tenant, connection, id, time) holding what the request has already read, so
no step reads the learner's history or looks up a model twice."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.catalogue import history as hist
from app.infra import metrics

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.access.keys import Keyring
    from app.access.ratelimit import RateLimiter
    from app.access.tenants import TenantDirectory
    from app.catalogue.candidates import CandidateCache
    from app.catalogue.xapi_ingest import ActivityMap
    from app.infra.cache import Cache
    from app.infra.db import ConnectionPool
    from app.online.scoring import ServingModel
    from app.serving.model_cache import ModelCache
    from app.serving.recommendation_log import RecommendationLog


@dataclass
class Services:
    """One per worker process: pools, caches, the model store's cache, the recommendation log, the
    gate's keyring, tenant directory and rate limiter (each borrowing connections of its own), and
    the xAPI activities' items as last read."""
    pool: ConnectionPool
    cache: Cache
    models: ModelCache
    candidates: CandidateCache
    log: RecommendationLog
    keys: Keyring
    tenants: TenantDirectory
    rate_limiter: RateLimiter
    activities: ActivityMap

    def context(self, conn: Connection, tenant: str, request_id: str, log: bool = True) -> RequestContext:
        return RequestContext(conn, tenant, self.cache, self.models, request_id=request_id,
                              candidates=self.candidates, log=self.log if log else None)


@dataclass
class Learner:
    """The learner's recent history as read once for the request (newest first), and where it came
    from (redis, postgres, unavailable)."""
    user_id: str
    events: list[hist.Event]
    source: str
    _positives: set[str] | None = field(default=None, repr=False)
    _practice: dict[tuple, Any] = field(default_factory=dict, repr=False)   # app.serving.learner_fit.practice_inputs

    @property
    def long_past(self) -> bool:
        """The cached history is cut at its cap: older events exist only in Postgres."""
        return len(self.events) >= hist.KEEP


@dataclass
class RequestContext:
    """One request's tenant and connection, the services it uses, and what it has read so far.

    candidates : the worker's candidate cache (None: candidates are read afresh, e.g. in a bench).
    log : where answers are logged (None: not logged, e.g. the dashboard's learner view).
    now : the time of the request (default: the clock when the context is made); a replay gives
        each attempt's own.
    """
    conn: Connection
    tenant: str
    cache: Cache | None
    models: ModelCache
    request_id: str = ""
    candidates: CandidateCache | None = None
    log: RecommendationLog | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _learners: dict[str, Learner] = field(default_factory=dict, repr=False)
    _models: dict[tuple, Any] = field(default_factory=dict, repr=False)

    def learner(self, user_id: str) -> Learner:
        """The learner's history, read once per request (Redis, Postgres on a miss)."""
        found = self._learners.get(user_id)
        if found is None:
            events, source = hist.recent(self.conn, self.tenant, self.cache, user_id)
            metrics.CACHE_REQUESTS.labels("history", {"redis": "hit", "postgres": "miss"}.get(source, "error")).inc()
            found = self._learners[user_id] = Learner(user_id, events, source)
        return found

    def catalogue_version(self) -> int | None:
        """The tenant's catalogue version as the worker's candidate cache knows it (read at most once
        a second); None without a candidate cache (a bench): the model cache then reads it."""
        return self.candidates.version(self.conn, self.tenant) if self.candidates is not None else None

    def model(self, units: list[str], objective: str, tag: str = "default") -> ServingModel | None:
        """The active model of the nearest unit at or above `units` for `objective`, looked up once."""
        key = (tuple(sorted(units)), objective, tag)
        if key not in self._models:
            self._models[key] = self.models.nearest(self.conn, self.tenant, list(units), objective, tag,
                                                    catalogue_version=self.catalogue_version())
        return self._models[key]

    def model_of_each(self, units: list[str], objective: str, tag: str = "default") -> list[ServingModel | None]:
        """`model([unit], ...)` of each unit, the ones not yet looked up in one query."""
        missing = [u for u in dict.fromkeys(units) if ((u,), objective, tag) not in self._models]
        if missing:
            for u, model in self.models.nearest_each(self.conn, self.tenant, missing, objective, tag,
                                                     catalogue_version=self.catalogue_version()).items():
                self._models[((u,), objective, tag)] = model
        return [self._models[((u,), objective, tag)] for u in units]

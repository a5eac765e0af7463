"""Related items (Totara's "related content") and trending items."""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis

from app.catalogue import candidates as cand
from app.catalogue import catalog
from app.infra import metrics
from app.infra import queries as q
from app.online.similar import most_similar
from app.serving.answers import ModelRef
from app.serving.recommend import RecommendationRequest, serve

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache
    from app.serving.context import RequestContext

log = logging.getLogger("adaptrec.related")
TRENDING_TTL_S = 60  # every learner asks the same question: answer it once a minute, not per request


def similar_items(ctx: RequestContext, item_id: str, n: int) -> dict:
    """The n active items nearest to `item_id` by cosine similarity of the covering model's vectors."""
    conn, tenant = ctx.conn, ctx.tenant
    item = catalog.get_item(conn, tenant, item_id)  # NotFound for an unknown item
    units = item["units"]
    model = None
    for objective in ("engagement", "practice"):
        model = ctx.model(units, objective) if units else None
        if model is not None and item_id in model.index:
            break
        model = None
    if model is None:
        same_unit = [i for i in catalog.items_under_units(conn, tenant, units) if i != item_id][:n] if units else []
        return {"item_id": item_id, "items": [{"item_id": i, "similarity": 0.0} for i in same_unit],
                "model": None, "fallback": "no_model"}
    top, sims = most_similar(model.unit_vectors, model.index[item_id], n + 20)
    ids = [model.item_ids[i] for i in top]
    active = {r["id"] for r in q.fetch_all(conn, "active_items", tenant=tenant, ids=ids)}
    chosen = [(i, float(s)) for i, s in zip(ids, sims) if i in active][:n]
    return {"item_id": item_id, "items": [{"item_id": i, "similarity": round(s, 6)} for i, s in chosen],
            "model": ModelRef.of(model).as_json(), "fallback": None}


def trending(ctx: RequestContext, n: int, units: list[str] | None, days: int, half_life_days: float,
             now: datetime | None = None) -> dict:
    """Most-interacted active items in the last `days`, each event decayed by its age.

    Live answers (no `now`) are shared through Redis for TRENDING_TTL_S seconds: the query scans
    a window of interactions and its answer hardly moves within a minute."""
    conn, tenant, cache = ctx.conn, ctx.tenant, ctx.cache
    if now is not None:
        return _trending(conn, tenant, cache, n, units, days, half_life_days, now)
    params = json.dumps([n, sorted(set(units or [])), days, half_life_days])
    key = cache.key("trend", tenant, hashlib.sha1(params.encode()).hexdigest())
    try:
        raw = cache.client.get(key)
    except (redis.RedisError, OSError) as exc:
        log.warning("trending cache unavailable: %s", exc)
        metrics.CACHE_REQUESTS.labels("trending", "error").inc()
        return _trending(conn, tenant, cache, n, units, days, half_life_days, datetime.now(UTC))
    if raw is not None:
        metrics.CACHE_REQUESTS.labels("trending", "hit").inc()
        return json.loads(raw)
    metrics.CACHE_REQUESTS.labels("trending", "miss").inc()
    answer = _trending(conn, tenant, cache, n, units, days, half_life_days, datetime.now(UTC))
    try:
        cache.client.set(key, json.dumps(answer), ex=TRENDING_TTL_S)
    except (redis.RedisError, OSError) as exc:
        log.warning("trending cache write failed: %s", exc)
    return answer


def _trending(conn: Connection, tenant: str, cache: Cache, n: int, units: list[str] | None, days: int,
              half_life_days: float,
              now: datetime) -> dict:
    items = cand.items_under(conn, tenant, cache, units)[0] if units else []
    rows = q.fetch_all(conn, "trending", tenant=tenant, now=now, days=days,
                       half_life_days=half_life_days, all_items=not units, item_ids=items, n=n)
    return {"items": [{"item_id": r["item_id"], "score": round(float(r["score"]), 6),
                       "interactions": r["interactions"], "users": r["users"]} for r in rows],
            "days": days, "half_life_days": half_life_days}


POPULAR_TTL_S = 300   # the cold-start answer moves slowly: one query per tenant and units every 5 minutes


def user_top_items(ctx: RequestContext, user_id: str, units: list[str], n: int) -> list[tuple[str, float]]:
    """Totara's personalised top-N (GET /user-items, the legacy i2u file): the top strategy without
    the user's positive items; a user the model knows nothing of (or a unit without a model) gets
    the most popular items, then the untouched ones."""
    req = RecommendationRequest(user_id=user_id, units=units, n=n, strategy="top", exclude_positive=True)
    answer, candidates, liked = serve(ctx, req)
    if "no_history" not in answer.fallbacks and "no_model" not in answer.fallbacks:
        return [(i, round(s, 6)) for i, s in zip(answer.items, answer.scores)]   # as the answer shows them
    ranked = [(i, s) for i, s in popular(ctx.conn, ctx.tenant, ctx.cache, candidates, units, n + len(liked))
              if i not in liked]
    chosen = {i for i, _ in ranked}
    return (ranked + [(i, 0.0) for i in answer.items if i not in chosen])[:n]


def popular(conn: Connection, tenant: str, cache: Cache, items: list[str], units: list[str], n: int
            ) -> list[tuple[str, float]]:
    """The n active items among `items` (those under `units`) with the most positive engagements
    (all time), shared through Redis for POPULAR_TTL_S seconds under the units."""
    key = cache.key("popular", tenant, hashlib.sha1(json.dumps([sorted(set(units)), n]).encode()).hexdigest())
    try:
        raw = cache.client.get(key)
        if raw is not None:
            metrics.CACHE_REQUESTS.labels("popular", "hit").inc()
            return [tuple(x) for x in json.loads(raw)]
    except (redis.RedisError, OSError) as exc:
        log.warning("popularity cache unavailable: %s", exc)
    metrics.CACHE_REQUESTS.labels("popular", "miss").inc()
    rows = q.fetch_all(conn, "popular_items", tenant=tenant, all_items=False, item_ids=items, n=n)
    answer = [(r["item_id"], float(r["score"])) for r in rows]
    try:
        cache.client.set(key, json.dumps(answer), ex=POPULAR_TTL_S)
    except (redis.RedisError, OSError) as exc:
        log.warning("popularity cache write failed: %s", exc)
    return answer


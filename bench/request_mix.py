"""The realistic request mix of bench.latency: many learners with real histories of every length,
some of them not in Redis, and the floors the service is compared with.

Learners (`build_learners`): every ASSISTments 2009 learner (4,151; attempts per learner: median
20, 90th percentile 154, 2.7 % at the 500 the live fit reads) plus copies of randomly chosen ones
under new ids, until `with_history` learners have a history of real attempts; then `new` learners
who have none. The copies keep the real shape of histories (most short, a long tail at the cap)
at a larger population than the data set has.

Requests (`MixRequests`): each picks a learner uniformly; a seeded share of them (`miss`, 20 %
by default) first deletes that learner's cached history in Redis, so the service reads it from
Postgres, as for a learner whose history was evicted or never cached. The recommendation phases
differ only in the strategy asked (`recommend`: target; `mastery`; `review`); `knowledge` asks
GET /v1/users/{id}/knowledge?units=... of the learners and units `knowledge_target` picks (the
skills most attempted, the learners with a history at the cap).

Floors (`in_process_floor`): the live fit + scoring of the same candidates on the same histories,
in this process, with no HTTP, Redis or Postgres: what the numbers themselves cost.
"""
from __future__ import annotations

import json
import random
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

HISTORY_CAP = 500
KNOWLEDGE_SKILLS = 20      # issue 26: the knowledge endpoint for a unit with 20 skills, a 500-attempt history
STRATEGY_OF_PHASE = {"recommend": "target", "mastery": "mastery", "review": "review"}
# The tenant and unit of the engagement (top-N) phase: MovieLens 100K as a tenant of its own.
TOPN_TENANT = "movies"
TOPN_UNIT = "movielens"


def build_learners(conn: Connection, tenant: str, with_history: int, new: int, seed: int = 0) -> list[str]:
    """Learner ids of the mix (see the module's docstring): the real learners, copies of them
    (interactions copied under new user and event ids) up to `with_history`, then `new` ids with
    no history. Commits."""
    rng = random.Random(seed)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id FROM users WHERE tenant = %s ORDER BY user_id", (tenant,))
        real = [r[0] for r in cur.fetchall()]
        copies = [(f"mix{k}-{src}", src) for k, src in
                  enumerate(rng.choice(real) for _ in range(max(0, with_history - len(real))))]
        if copies:
            cur.execute("CREATE TEMP TABLE mix_copies (user_id text, source text) ON COMMIT DROP")
            cur.execute("INSERT INTO mix_copies SELECT * FROM unnest(%s::text[], %s::text[])",
                        ([c for c, _ in copies], [s for _, s in copies]))
            cur.execute("INSERT INTO users (tenant, user_id) SELECT %s, user_id FROM mix_copies", (tenant,))
            cur.execute("""INSERT INTO interactions (tenant, event_id, user_id, item_id, kind, outcome, value,
                                                     duration_ms, occurred_at)
                           SELECT x.tenant, m.user_id || ':' || x.event_id, m.user_id, x.item_id, x.kind, x.outcome,
                                  x.value, x.duration_ms, x.occurred_at
                           FROM mix_copies m JOIN interactions x ON x.tenant = %s AND x.user_id = m.source""",
                        (tenant,))
        cur.execute("ANALYZE interactions")
    conn.commit()
    learners = real[:with_history] + [c for c, _ in copies]
    return learners + [f"mix-new-{k}" for k in range(new)]


def history_lengths(conn: Connection, tenant: str, learners: list[str]) -> dict:
    """Percentiles of the attempts the live fit reads per learner (capped at HISTORY_CAP)."""
    with conn.cursor() as cur:
        cur.execute("""SELECT least(count(x.id), %s) FROM unnest(%s::text[]) u(user_id)
                       LEFT JOIN interactions x ON x.tenant = %s AND x.user_id = u.user_id
                       GROUP BY u.user_id ORDER BY 1""", (HISTORY_CAP, learners, tenant))
        counts = [r[0] for r in cur.fetchall()]
    conn.rollback()
    if not counts:
        return {}

    def at(q: float) -> int:
        return counts[min(len(counts) - 1, int(q * len(counts)))]

    return {"learners": len(counts), "p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "max": counts[-1],
            "none": sum(1 for c in counts if c == 0), "at_cap": sum(1 for c in counts if c >= HISTORY_CAP)}


def warm_histories(database_url: str, redis_url: str, prefix: str, tenant: str, learners: list[str]) -> float:
    """Cache every learner's history in Redis as the service would (app.catalogue.history), so the mix's
    misses are only the ones it asks for. Returns the seconds it took."""
    import psycopg2

    from app.catalogue import history
    from app.infra.cache import Cache

    started = time.perf_counter()
    cache = Cache(redis_url, prefix, timeout_s=5.0)
    conn = psycopg2.connect(database_url)
    try:
        for user_id in learners:
            history.recent(conn, tenant, cache, user_id)
            conn.rollback()
    finally:
        conn.close()
        cache.close()
    return time.perf_counter() - started


def knowledge_target(conn: Connection, tenant: str, learners: list[str], skills: int = KNOWLEDGE_SKILLS,
                     history: int = HISTORY_CAP, exclude: tuple[str, ...] = ()) -> dict:
    """What the knowledge phase asks for: the `skills` units holding items directly with the most
    attempts on their items (not `exclude`), and those of `learners` with at least `history`
    attempts (the live fit reads the newest HISTORY_CAP)."""
    with conn.cursor() as cur:
        cur.execute("""SELECT ui.unit_id FROM unit_items ui
                       JOIN interactions x ON x.tenant = ui.tenant AND x.item_id = ui.item_id
                       WHERE ui.tenant = %s AND NOT ui.unit_id = ANY(%s)
                       GROUP BY ui.unit_id ORDER BY count(*) DESC, ui.unit_id LIMIT %s""",
                    (tenant, list(exclude), skills))
        units = [r[0] for r in cur.fetchall()]
        cur.execute("""SELECT x.user_id FROM interactions x
                       WHERE x.tenant = %s AND x.user_id = ANY(%s) AND x.kind = 'attempt'
                       GROUP BY x.user_id HAVING count(*) >= %s ORDER BY x.user_id""",
                    (tenant, learners, history))
        long = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return {"skills": units, "learners": long}


class Evictor:
    """Deletes a learner's cached history (and its "no history" marker) in the service's Redis."""

    def __init__(self, redis_url: str, prefix: str):
        from app.infra.cache import Cache

        self.cache = Cache(redis_url, prefix, timeout_s=5.0)
        self._lock = threading.Lock()

    def __call__(self, tenant: str, user_id: str) -> None:
        key = self.cache.key("hist", tenant, user_id)
        with self._lock:
            self.cache.client.delete(key, key + ":empty")


class MixRequests:
    """Request i of a mix phase: (method, path, body bytes or None), deterministic by seed.

    phase `recommend`, `mastery`, `review`: POST /v1/recommendations over `unit` with the target,
    mastery or review strategy;
    phase `topn`: GET /v1/users/{id}/recommendations?units=...&n=10 (the engagement model's top-N);
    phase `knowledge`: GET /v1/users/{id}/knowledge?units=... (`unit`: a unit id or a list of them).
    `evict(tenant, user)` is called for the share `miss` of requests before they are built."""

    def __init__(self, phase: str, learners: list[str], unit: str | list[str], tenant: str, miss: float = 0.2,
                 evict=None, seed: int = 0):
        if phase not in (*STRATEGY_OF_PHASE, "topn", "knowledge"):
            raise ValueError(f"unknown mix phase {phase!r}")
        self.phase, self.learners, self.unit, self.tenant = phase, learners, unit, tenant
        self.miss, self.evict = miss, evict
        self.rng = random.Random(f"{seed}-{phase}")
        self.misses = 0
        self._lock = threading.Lock()

    def __call__(self, i: int) -> tuple[str, str, bytes | None]:
        with self._lock:  # random.Random is shared by the client threads
            user = self.learners[self.rng.randrange(len(self.learners))]
            evicted = self.rng.random() < self.miss
        if evicted:
            self.misses += 1
            if self.evict is not None:
                self.evict(self.tenant, user)
        if self.phase in STRATEGY_OF_PHASE:
            body = {"user_id": user, "units": [self.unit], "n": 10, "strategy": STRATEGY_OF_PHASE[self.phase]}
            return "POST", "/v1/recommendations", json.dumps(body).encode()
        if self.phase == "knowledge":
            units = [self.unit] if isinstance(self.unit, str) else self.unit
            return "GET", (f"/v1/users/{quote(user, safe='')}/knowledge?units="
                           + ",".join(quote(u, safe=":") for u in units)), None
        return "GET", f"/v1/users/{user}/recommendations?units={self.unit}&n=10", None


def in_process_floor(database_url: str, tenant: str, unit: str, learners: list[str], samples: int = 2000,
                     seed: int = 0) -> dict:
    """CPU time of the live fit + scoring of every candidate of `unit` (app.serving.pipeline.score_candidates,
    practice) on `samples` learners drawn like the mix, their histories read first from Postgres.
    No HTTP, no Redis, no Postgres inside the timed part."""
    import numpy as np
    import psycopg2

    from app.catalogue import catalog, history
    from app.serving.context import Learner, RequestContext
    from app.serving.model_cache import ModelCache
    from app.serving.pipeline import score_candidates

    rng = random.Random(f"{seed}-floor")
    conn = psycopg2.connect(database_url)
    try:
        items = catalog.items_under_units(conn, tenant, [unit])
        model = ModelCache().nearest(conn, tenant, [unit], "practice")
        if model is None:
            raise RuntimeError(f"no practice model at or above {unit}")
        # as the service caches it per candidate list (code before lay_out existed: the rows)
        laid = model.lay_out(model.rows(items)) if hasattr(model, "lay_out") else model.rows(items)
        picked = [learners[rng.randrange(len(learners))] for _ in range(samples)]
        histories = [history._from_postgres(conn, tenant, u, history.KEEP) for u in picked]
        conn.rollback()
        ctx = RequestContext(conn, tenant, None, None)
        learners_ = [Learner(u, events, "postgres") for u, events in zip(picked, histories)]
        for learner in learners_[:50]:  # warm-up
            score_candidates(ctx, model, items, learner, True, laid)
        cpu = []
        for learner in learners_:
            t0 = time.process_time()
            score_candidates(ctx, model, items, learner, True, laid)
            cpu.append((time.process_time() - t0) * 1000.0)
    finally:
        conn.close()
    cpu_arr = np.array(cpu)
    return {"what": "app.serving.pipeline.score_candidates (live fit + scores of every candidate), CPU per call",
            "samples": samples, "candidates": len(items), "mean_ms": round(float(cpu_arr.mean()), 3),
            "p50_ms": round(float(np.percentile(cpu_arr, 50)), 3),
            "p99_ms": round(float(np.percentile(cpu_arr, 99)), 3)}


def knowledge_floor(database_url: str, tenant: str, units: list[str], learners: list[str], samples: int = 300,
                    seed: int = 0, profile_top: int = 20) -> dict:
    """Wall and CPU time of app.serving.knowledge.knowledge (the endpoint's function, its queries
    included) for `units`, on `samples` of `learners` drawn uniformly, their histories read first
    from Postgres (no Redis, no HTTP); then the same calls under cProfile: the `profile_top`
    functions by own time, and the share of the time spent waiting on Postgres (psycopg2's cursor
    methods and the transaction's end)."""
    import cProfile
    import pstats

    import numpy as np
    import psycopg2

    from app.catalogue import history
    from app.serving.context import Learner, RequestContext
    from app.serving.knowledge import knowledge
    from app.serving.model_cache import ModelCache

    rng = random.Random(f"{seed}-knowledge-floor")
    conn = psycopg2.connect(database_url)
    models = ModelCache()
    try:
        picked = [learners[rng.randrange(len(learners))] for _ in range(samples)]
        histories = {u: history._from_postgres(conn, tenant, u, history.KEEP) for u in set(picked)}
        conn.rollback()

        def call(user: str) -> dict:
            ctx = RequestContext(conn, tenant, None, models)
            ctx._learners[user] = Learner(user, histories[user], "given")
            with conn:
                return knowledge(ctx, user, list(units))

        answered = call(picked[0])     # warm-up: the model and its item rows loaded
        for user in picked[:20]:
            call(user)
        wall, cpu = [], []
        for user in picked:
            t0, c0 = time.perf_counter(), time.process_time()
            call(user)
            wall.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.process_time() - c0) * 1000.0)
        profiler = cProfile.Profile()
        profiler.enable()
        for user in picked:
            call(user)
        profiler.disable()
    finally:
        conn.close()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = sorted(((fn, tt, ct, nc) for fn, (_, nc, tt, ct, _) in stats.stats.items()), key=lambda r: -r[1])
    # the round trips: psycopg2's cursors (C methods, named by their class) and the commit / rollback
    postgres = sum(tt for (file, _, name), tt, _, _ in rows
                   if "psycopg2" in file or any(w in name for w in ("Cursor", "cursor", "psycopg2", "connection")))
    wall_a, cpu_a = np.array(wall), np.array(cpu)
    return {"what": "app.serving.knowledge.knowledge in process (its Postgres queries included; history given)",
            "samples": samples, "units_answered": len(answered["units"]),
            "wall_ms": {"mean": round(float(wall_a.mean()), 3), "p50": round(float(np.percentile(wall_a, 50)), 3),
                        "p99": round(float(np.percentile(wall_a, 99)), 3)},
            "cpu_ms": {"mean": round(float(cpu_a.mean()), 3), "p50": round(float(np.percentile(cpu_a, 50)), 3)},
            "profile": {"seconds_profiled": round(total, 3),
                        "share_in_postgres_execute": round(postgres / total, 3) if total else None,
                        "top_by_own_time": [{"function": f"{file.split('/site-packages/')[-1].split('/wt-')[-1]}:"
                                                         f"{line}({name})",
                                             "own_ms_per_call": round(tt / samples * 1000.0, 3),
                                             "cumulative_ms_per_call": round(ct / samples * 1000.0, 3),
                                             "calls": nc}
                                            for (file, line, name), tt, ct, nc in rows[:profile_top]]}}

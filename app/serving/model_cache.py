"""Models held in each worker's memory: loading one is a single read, but the request path
should not pay even that. Which model is active is re-checked after ACTIVE_TTL_S, so an
activation by the nightly job is seen by every worker within a second, without a restart."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from app.infra import queries as q
from app.model import store as modelstore
from app.online.scoring import ServingModel

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

ACTIVE_TTL_S = 1.0
MAX_MODELS = 32
MAX_ITEMS = 200_000      # items whose models practice_models_of remembers


class ModelCache:
    def __init__(self, item_learning: str = "all"):
        # which items' difficulty is learned between trainings (app.config.ITEM_LEARNING, app.serving.item_learning)
        self.item_learning = item_learning
        self._models: OrderedDict[tuple[str, int], ServingModel] = OrderedDict()   # (tenant, model id)
        self._active: dict[tuple, tuple[float, int | None]] = {}
        self._lock = threading.Lock()
        self._grow = threading.Lock()   # serialises ServingModel.add_items (cover)
        # practice_models_of: tenant -> ((catalogue version, active practice model ids), {item: model ids})
        self._of_item: dict[str, tuple[tuple, dict[str, tuple[int, ...]]]] = {}
        self._practice_ids: dict[str, tuple[float, tuple[int, ...]]] = {}   # tenant -> (read at, ids)

    def nearest(self, conn: Connection, tenant: str, unit_ids: list[str], objective: str,
                tag: str = "default") -> ServingModel | None:
        """The active model of the nearest unit at or above `unit_ids`, or None."""
        key = (tenant, tuple(sorted(unit_ids)), objective, tag)
        now = time.monotonic()
        hit = self._active.get(key)
        if hit is None or now - hit[0] > ACTIVE_TTL_S:
            row = q.fetch_one(conn, "nearest_active_models", tenant=tenant, unit_ids=list(unit_ids),
                              objective=objective, tag=tag)
            hit = (now, row["model_id"] if row else None)
            self._active[key] = hit
        return self.get(conn, tenant, hit[1]) if hit[1] is not None else None

    def nearest_each(self, conn: Connection, tenant: str, unit_ids: list[str], objective: str,
                     tag: str = "default") -> dict[str, ServingModel | None]:
        """`nearest` of each unit on its own, the ones not known within ACTIVE_TTL_S looked up in
        one query (the knowledge of a course's hundred skills is one read, not a hundred)."""
        now = time.monotonic()
        keys = {u: (tenant, (u,), objective, tag) for u in unit_ids}
        stale = [u for u, key in keys.items() if (hit := self._active.get(key)) is None or now - hit[0] > ACTIVE_TTL_S]
        if stale:
            found = {r["unit_id"]: r["model_id"] for r in q.fetch_all(
                conn, "nearest_active_model_of_each", tenant=tenant, unit_ids=stale, objective=objective, tag=tag)}
            for u in stale:
                self._active[keys[u]] = (now, found.get(u))
        return {u: (self.get(conn, tenant, self._active[key][1]) if self._active[key][1] is not None else None)
                for u, key in keys.items()}

    def practice_models_of(self, conn: Connection, tenant: str, item_ids: list[str],
                           catalogue_version: int) -> dict[str, tuple[int, ...]]:
        """The active practice models (any tag) at or above each item's units (the models an
        attempt at it teaches: app.serving.item_learning). An item's answer is kept while the
        tenant's catalogue version (the caller's, read as candidates read it) and its active
        practice models (re-read after ACTIVE_TTL_S, as `nearest` does) are what they were: an
        ingest makes a recursive query only for an item this worker has not seen since either
        changed (one per ingest, when they expired after a second, 2026-12-07)."""
        now = time.monotonic()
        active = self._practice_ids.get(tenant)
        if active is None or now - active[0] > ACTIVE_TTL_S:
            ids = tuple(r[0] for r in q.fetch_tuples(conn, "active_practice_model_ids", tenant=tenant))
            active = self._practice_ids[tenant] = (now, ids)
        state = (catalogue_version, active[1])
        held = self._of_item.get(tenant)
        if held is None or held[0] != state:
            held = self._of_item[tenant] = (state, {})
        known = held[1]
        stale = [i for i in dict.fromkeys(item_ids) if i not in known]
        if stale:
            if len(known) + len(stale) > MAX_ITEMS:    # items sprayed by a caller: start over
                known.clear()
                stale = list(dict.fromkeys(item_ids))
            found: dict[str, list[int]] = {i: [] for i in stale}
            for item_id, model_id in q.fetch_tuples(conn, "practice_models_of_items", tenant=tenant, item_ids=stale):
                found[item_id].append(model_id)
            known.update((i, tuple(ids)) for i, ids in found.items())
        return {i: known[i] for i in item_ids}

    def get(self, conn: Connection, tenant: str, model_id: int) -> ServingModel:
        key = (tenant, model_id)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = ServingModel.from_stored(modelstore.load_model(conn, tenant, model_id))
        with self._lock:
            self._models[key] = model
            while len(self._models) > MAX_MODELS:
                self._models.popitem(last=False)
        return model

    def cover(self, conn: Connection, tenant: str, model: ServingModel, items: list[str]) -> None:
        """A hybrid model gives the items newer than itself vectors from their metadata (once per
        worker and model: ServingModel.add_items), so a new question is scored as what it is, not as
        the average item. An item none of whose tokens the model knows is remembered, not read
        again. The cache owns its models: requests grow one under its lock, one at a time."""
        if model.feature_vectors is None:
            return
        missing = [i for i in items if i not in model.index and i not in model.unbuildable]
        if not missing:
            return
        found = q.fetch_all(conn, "items_metadata", tenant=tenant, item_ids=missing)
        with self._grow:
            model.add_items(found)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._active.clear()
            self._of_item.clear()
            self._practice_ids.clear()

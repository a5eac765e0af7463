"""Models held in each worker's memory: loading one is a single read, but the request path
should not pay even that. Which models are active is re-checked after ACTIVE_TTL_S, so an
activation by the nightly job is seen by every worker within a second, without a restart."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from app.catalogue.candidates import catalog_version
from app.infra import collector
from app.infra import queries as q
from app.model import store as modelstore
from app.online.scoring import ServingModel

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

ACTIVE_TTL_S = 1.0
MAX_MODELS = 32
MAX_ANSWERS = 200_000    # answers of nearest / practice_models_of kept per tenant


class ModelCache:
    """Each worker's models, and which model serves what. The answers of `nearest`,
    `nearest_each` and `practice_models_of` depend only on the tenant's catalogue (its version,
    given by the caller as the candidates read it) and its active models (their ids, re-read after
    ACTIVE_TTL_S): they are kept while both hold, so a request pays a recursive query only for a
    unit or item this worker has not met since either changed. (They used to expire after
    ACTIVE_TTL_S each: on a catalogue of a hundred units, one query per unit and second per worker,
    6 % of a soak's worker samples, 2026-12-07.)"""

    def __init__(self, item_learning: str = "all", settle: bool = False):
        # a server worker's cache: each model loaded is moved out of the cycle search (app.infra.collector)
        self.settle = settle
        # which items' difficulty is learned between trainings (app.config.ITEM_LEARNING, app.serving.item_learning)
        self.item_learning = item_learning
        self._models: OrderedDict[tuple[str, int], ServingModel] = OrderedDict()   # (tenant, model id)
        self._lock = threading.Lock()
        self._grow = threading.Lock()   # serialises ServingModel.add_items (cover)
        self._active_ids: dict[str, tuple[float, tuple[int, ...]]] = {}   # tenant -> (read at, active model ids)
        # (tenant, what) -> ((catalogue version, active model ids), {question: answer})
        self._answers: dict[tuple[str, str], tuple[tuple, dict]] = {}

    def _held(self, conn: Connection, tenant: str, what: str, catalogue_version: int | None) -> dict:
        """The answers of `what` still true for the tenant's catalogue (`catalogue_version`; None:
        read now) and active models."""
        if catalogue_version is None:
            catalogue_version = catalog_version(conn, tenant)
        now = time.monotonic()
        active = self._active_ids.get(tenant)
        if active is None or now - active[0] > ACTIVE_TTL_S:
            ids = tuple(r[0] for r in q.fetch_tuples(conn, "active_model_ids", tenant=tenant))
            active = self._active_ids[tenant] = (now, ids)
        state = (catalogue_version, active[1])
        held = self._answers.get((tenant, what))
        if held is None or held[0] != state or len(held[1]) > MAX_ANSWERS:   # (questions sprayed: start over)
            held = self._answers[(tenant, what)] = (state, {})
        return held[1]

    def nearest(self, conn: Connection, tenant: str, unit_ids: list[str], objective: str,
                tag: str = "default", *, catalogue_version: int | None = None) -> ServingModel | None:
        """The active model of the nearest unit at or above `unit_ids`, or None."""
        known = self._held(conn, tenant, "nearest", catalogue_version)
        key = (tuple(sorted(unit_ids)), objective, tag)
        if key not in known:
            row = q.fetch_one(conn, "nearest_active_models", tenant=tenant, unit_ids=list(unit_ids),
                              objective=objective, tag=tag)
            known[key] = row["model_id"] if row else None
        model_id = known[key]
        return self.get(conn, tenant, model_id) if model_id is not None else None

    def nearest_each(self, conn: Connection, tenant: str, unit_ids: list[str], objective: str,
                     tag: str = "default", *, catalogue_version: int | None = None) -> dict[str, ServingModel | None]:
        """`nearest` of each unit on its own, the ones not known looked up in one query (the
        knowledge of a course's hundred skills is one read, not a hundred)."""
        known = self._held(conn, tenant, "nearest", catalogue_version)
        keys = {u: ((u,), objective, tag) for u in unit_ids}
        missing = [u for u, key in keys.items() if key not in known]
        if missing:
            found = {r["unit_id"]: r["model_id"] for r in q.fetch_all(
                conn, "nearest_active_model_of_each", tenant=tenant, unit_ids=missing, objective=objective, tag=tag)}
            for u in missing:
                known[keys[u]] = found.get(u)
        return {u: (self.get(conn, tenant, known[key]) if known[key] is not None else None)
                for u, key in keys.items()}

    def practice_models_of(self, conn: Connection, tenant: str, item_ids: list[str],
                           catalogue_version: int | None = None) -> dict[str, tuple[int, ...]]:
        """The active practice models (any tag) at or above each item's units (the models an
        attempt at it teaches: app.serving.item_learning)."""
        known = self._held(conn, tenant, "practice_models_of", catalogue_version)
        missing = [i for i in dict.fromkeys(item_ids) if i not in known]
        if missing:
            found: dict[str, list[int]] = {i: [] for i in missing}
            for item_id, model_id in q.fetch_tuples(conn, "practice_models_of_items", tenant=tenant,
                                                    item_ids=missing):
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
        if self.settle:   # a server worker: the model's containers live as long as it does
            collector.settle()
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
            self._active_ids.clear()
            self._answers.clear()

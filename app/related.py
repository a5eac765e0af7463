"""Related items (Totara's "related content") and trending items."""
from __future__ import annotations

from datetime import datetime, timezone

from app import candidates as cand
from app import catalog
from app import queries as q
from app.online.similar import most_similar


def similar_items(conn, models, item_id: str, n: int) -> dict:
    """The n active items nearest to `item_id` by cosine similarity of the covering model's vectors."""
    item = catalog.get_item(conn, item_id)  # NotFound for an unknown item
    units = item["units"]
    model = None
    for objective in ("engagement", "practice"):
        model = models.nearest(conn, units, objective) if units else None
        if model is not None and item_id in model.index:
            break
        model = None
    if model is None:
        same_unit = [i for i in catalog.items_under_units(conn, units) if i != item_id][:n] if units else []
        return {"item_id": item_id, "items": [{"item_id": i, "similarity": 0.0} for i in same_unit],
                "model": None, "fallback": "no_model"}
    top, sims = most_similar(model.unit_vectors, model.index[item_id], n + 20)
    ids = [model.item_ids[i] for i in top]
    active = {r["id"] for r in q.fetch_all(conn, "active_items", ids=ids)}
    chosen = [(i, float(s)) for i, s in zip(ids, sims) if i in active][:n]
    return {"item_id": item_id, "items": [{"item_id": i, "similarity": round(s, 6)} for i, s in chosen],
            "model": {"model_id": model.model_id, "unit_id": model.unit_id, "objective": model.objective,
                      "mode": model.mode, "tag": model.tag},
            "fallback": None}


def trending(conn, cache, n: int, units: list[str] | None, days: int, half_life_days: float,
             now: datetime | None = None) -> dict:
    """Most-interacted active items in the last `days`, each event decayed by its age."""
    items = cand.items_under(conn, cache, units)[0] if units else []
    rows = q.fetch_all(conn, "trending", now=now or datetime.now(timezone.utc), days=days,
                       half_life_days=half_life_days, all_items=not units, item_ids=items, n=n)
    return {"items": [{"item_id": r["item_id"], "score": round(float(r["score"]), 6),
                       "interactions": r["interactions"], "users": r["users"]} for r in rows],
            "days": days, "half_life_days": half_life_days}

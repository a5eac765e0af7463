"""The learner and item pages: what support needs to answer "it keeps giving her items that are
too hard", built on the service's own request path (app.serving.recommend) and related items."""
from __future__ import annotations

import numpy as np

from app.catalogue import catalog
from app.dashboard import charts, knowledge
from app.errors import NotFound
from app.infra import queries as q
from app.online.scoring import practice_probabilities
from app.serving import recommend
from app.serving.context import RequestContext
from app.serving.related import similar_items

MOST_ITEMS = 300      # live p of at most this many items of the unit
FALLBACKS = {
    "no_model": "no model covers these units: items are ordered by their success rate",
    "no_history": "the learner has no attempts on the model's items: the population prior predicts for them",
    "no_candidates": "every item under the units was excluded",
    "metadata": "no history: the learner's metadata places them",
}


def _titles(conn, tenant: str, item_ids: list[str]) -> dict[str, dict]:
    return {r["item_id"]: r for r in q.fetch_all(conn, "dash_item_titles", tenant=tenant, item_ids=list(item_ids))}


def _found(get, message: str):
    """get(), with a NotFound that says what to do instead of the catalogue's plain one."""
    try:
        return get()
    except NotFound:
        raise NotFound(message) from None


def learner(ctx: RequestContext, user_id: str, unit_id: str | None) -> dict:
    """The learner's page; the live part predicts and recommends in one request context, so the
    history and the model are read once."""
    conn, tenant = ctx.conn, ctx.tenant
    user = _found(lambda: catalog.get_user(conn, tenant, user_id),
                  f"no learner {user_id!r} in this tenant; check the id (ids are case-sensitive) or pick one of "
                  f"the recent learners below")
    summary = q.fetch_one(conn, "dash_learner_summary", tenant=tenant, user_id=user_id)
    history = q.fetch_all(conn, "dash_learner_history", tenant=tenant, user_id=user_id, limit=25)
    answers = q.fetch_all(conn, "dash_learner_answers", tenant=tenant, user_id=user_id, limit=8)
    if unit_id:
        _found(lambda: catalog.get_unit(conn, tenant, unit_id),
               f"no unit {unit_id!r} in this tenant; leave the unit empty to use the unit of the learner's "
               f"latest attempt")
    else:
        row = q.fetch_one(conn, "dash_learner_latest_unit", tenant=tenant, user_id=user_id)
        unit_id = row["unit_id"] if row else None
    live = None
    if unit_id:
        under = catalog.items_under_units(conn, tenant, [unit_id])
        items = under[:MOST_ITEMS]
        predicted = recommend.predict(ctx, user_id, [unit_id], items).as_json() if items else None
        recommended = recommend.recommend(ctx, recommend.RecommendationRequest(user_id=user_id, units=[unit_id], n=5))
        answer = recommended.as_json()
        titles = _titles(conn, tenant, items)
        ranked = sorted(predicted["items"], key=lambda i: i["p"]) if predicted else []
        chosen = {i["item_id"] for i in answer["items"]}
        chart = charts.bar_chart([(i["item_id"].rsplit(".", 1)[-1], i["p"]) for i in ranked],
                                 label=f"live p(correct) of {user_id} on each item of {unit_id}, lowest first",
                                 y_label="p(correct)", every=max(1, len(ranked) // 8), css="s1",
                                 empty="no items under this unit")
        reasons = [FALLBACKS.get(r, r) for r in recommended.fallbacks]
        live = {"unit_id": unit_id, "predicted": predicted, "answer": answer, "titles": titles, "chart": chart,
                "chosen": chosen, "reasons": reasons, "ranked": ranked, "capped": len(under) > len(items),
                "knowledge": knowledge.learner(ctx, user_id, unit_id)}
    for a in answers:
        a["pairs"] = list(zip(a["item_ids"], a["scores"]))
    return {"user": user, "summary": summary, "history": history, "answers": answers, "live": live,
            "unit_id": unit_id}


def suggestions(conn, tenant: str) -> list[dict]:
    return q.fetch_all(conn, "dash_active_learners", tenant=tenant, limit=8)


def item(ctx: RequestContext, item_id: str) -> dict:
    conn, tenant, models = ctx.conn, ctx.tenant, ctx.models
    found = _found(lambda: catalog.get_item(conn, tenant, item_id),
                   f"no item {item_id!r} in this tenant; check the id (ids are case-sensitive) or search by title "
                   f"below")
    stats = q.fetch_one(conn, "dash_item_stats", tenant=tenant, item_id=item_id)
    similar = similar_items(ctx, item_id, 10)
    titles = _titles(conn, tenant, [s["item_id"] for s in similar["items"]])
    difficulty = []
    for m in q.fetch_all(conn, "dash_models_with_item", tenant=tenant, item_id=item_id):
        model = models.get(conn, tenant, m["model_id"])
        row = model.index.get(item_id)
        if row is None:
            continue
        entry = {**m, "bias": float(model.item_biases[row]), "p_new": None, "rank": None}
        if m["objective"] == "practice":
            empty_rows, empty_out = np.empty(0, dtype=np.int64), np.empty(0)
            p_all, _, _ = practice_probabilities(model, empty_rows, empty_out, np.arange(len(model.item_ids)))
            entry["p_new"] = float(p_all[row])
            # where the item sits among the model's items: 1 = the hardest for a new learner
            entry["rank"] = int((p_all < p_all[row]).sum()) + 1
            entry["of"] = len(model.item_ids)
        difficulty.append(entry)
    return {"item": found, "stats": stats, "similar": similar, "titles": titles, "difficulty": difficulty}


def find_items(conn, tenant: str, text: str) -> list[dict]:
    return q.fetch_all(conn, "dash_find_items", tenant=tenant, text=text, limit=20) if text.strip() else []

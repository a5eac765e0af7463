"""The models pages: the unit tree with each unit's model, and one unit's models over time."""
from __future__ import annotations

from app.dashboard import charts, knowledge
from app.dashboard.overview import HEADLINE
from app.errors import NotFound
from app.infra import queries as q

OBJECTIVES = ("practice", "engagement")


def unit_tree(units: list[dict], edges: list[dict]) -> list[dict]:
    """The unit DAG as outline rows, depth first from the roots: {unit, depth, path}. A unit with two
    parents appears under each; a walk never re-enters a unit on its own path (cycles end it), and
    units no root reaches (on a cycle) follow at depth 0."""
    by_id = {u["unit_id"]: u for u in units}
    children: dict[str, list[str]] = {}
    has_parent = set()
    for e in edges:
        if e["parent"] in by_id and e["child"] in by_id:
            children.setdefault(e["parent"], []).append(e["child"])
            has_parent.add(e["child"])
    rows, seen = [], set()
    stack = [(r, 0, (r,)) for r in sorted((u for u in by_id if u not in has_parent), reverse=True)]
    while stack:
        unit_id, depth, path = stack.pop()
        seen.add(unit_id)
        rows.append({"unit": by_id[unit_id], "depth": depth, "path": path})
        for child in sorted(children.get(unit_id, ()), reverse=True):
            if child not in path:
                stack.append((child, depth + 1, (*path, child)))
    rows += [{"unit": by_id[u], "depth": 0, "path": (u,)} for u in sorted(by_id) if u not in seen]
    return rows


def _headline(row: dict | None) -> dict | None:
    if row is None:
        return None
    key = HEADLINE[row["objective"]]
    return {**row, "metric": key, "value": (row["held_out"] or {}).get(key),
            "baseline_value": (row["baseline"] or {}).get(key)}


def serving_ancestor(unit_id: str, edges: list[dict], has_model: set[str]) -> str | None:
    """The nearest unit above `unit_id` that has an active model (breadth first: nearest wins,
    ties by id), as the request path picks it; None when none does."""
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e["child"], []).append(e["parent"])
    level, seen = sorted(parents.get(unit_id, ())), {unit_id}
    while level:
        found = [u for u in level if u in has_model]
        if found:
            return found[0]
        seen.update(level)
        level = sorted({p for u in level for p in parents.get(u, ()) if p not in seen})
    return None


def index(conn, tenant: str, search: str = "") -> dict:
    units = q.fetch_all(conn, "dash_units", tenant=tenant)
    edges = q.fetch_all(conn, "dash_unit_edges", tenant=tenant)
    latest: dict[tuple[str, str], dict] = {(r["unit_id"], r["objective"]): r
                                           for r in q.fetch_all(conn, "dash_unit_models", tenant=tenant)}
    active = {u for (u, o), r in latest.items() if r["status"] == "active" and o == "practice"}
    rows = unit_tree(units, edges)
    text = search.strip().lower()
    if text:
        rows = [r for r in rows if text in r["unit"]["unit_id"].lower() or text in (r["unit"]["name"] or "").lower()]
    ancestors: dict[str, str | None] = {}
    for r in rows:
        uid = r["unit"]["unit_id"]
        r["models"] = {o: _headline(latest.get((uid, o))) for o in OBJECTIVES}
        practice = r["models"]["practice"]
        if practice is None or practice["status"] != "active":
            if uid not in ancestors:
                ancestors[uid] = serving_ancestor(uid, edges, active)
            r["served_by"] = ancestors[uid]
    with_model = sum(1 for (_, o), m in latest.items() if m["status"] == "active" and o == "practice")
    return {"rows": rows, "units": len(units), "with_model": with_model, "search": search}


def unit(conn, tenant: str, unit_id: str) -> dict:
    units = {u["unit_id"]: u for u in q.fetch_all(conn, "dash_units", tenant=tenant)}
    if unit_id not in units:
        raise NotFound(f"no unit {unit_id!r} in this tenant; pick one from the list of units (ids are case-sensitive)")
    versions = q.fetch_all(conn, "dash_unit_versions", tenant=tenant, unit_id=unit_id)
    edges = q.fetch_all(conn, "dash_unit_edges", tenant=tenant)
    per_objective = {}
    for objective in OBJECTIVES:
        mine = [v for v in versions if v["objective"] == objective]
        if not mine:
            continue
        key = HEADLINE[objective]
        active = next((v for v in reversed(mine) if v["status"] == "active"), None)
        shown = active or mine[-1]
        labels = [f"model {v['model_id']}, {v['trained_at']:%Y-%m-%d %H:%M}" for v in mine]
        chart = charts.line_chart(
            [charts.Series(f"model {key}", [(k, (v["metrics"].get("model") or {}).get(key))
                                            for k, v in enumerate(mine)], "s0", labels),
             charts.Series(f"baseline {key}", [(k, (v["metrics"].get("baseline") or {}).get(key))
                                               for k, v in enumerate(mine)], "s2", labels)],
            label=f"held-out {key} of each {objective} model version of {unit_id}", y_label=key,
            x_ticks=[(k, f"{v['trained_at']:%m-%d}") for k, v in enumerate(mine)])
        hyper = {k: v for k, v in shown["hyperparams"].items() if k != "search"}
        per_objective[objective] = {"versions": mine, "active": active, "shown": shown, "chart": chart,
                                    "metric": key, "hyperparams": hyper,
                                    "search": shown["hyperparams"].get("search") or [],
                                    "comparison": _comparison(shown["metrics"], key)}
    has_active = {v["unit_id"] for v in q.fetch_all(conn, "dash_active_models", tenant=tenant)
                  if v["objective"] == "practice"}
    practice_active = unit_id in has_active
    why = None
    if not practice_active:
        counts = q.fetch_one(conn, "dash_unit_counts", tenant=tenant, unit_id=unit_id)
        training = units[unit_id]["training"] or {}
        latest = per_objective.get("practice", {}).get("shown")
        why = {"counts": counts, "disabled": training.get("enabled") is False, "training": training,
               "failure": (latest or {}).get("metrics", {}).get("failure") if latest else None,
               "served_by": serving_ancestor(unit_id, edges, has_active)}
    parents = sorted(e["parent"] for e in edges if e["child"] == unit_id)
    children = sorted(e["child"] for e in edges if e["parent"] == unit_id)
    mastery = knowledge.unit(conn, tenant, unit_id, {"mastery": units[unit_id]["mastery"]})
    return {"unit": units[unit_id], "objectives": per_objective, "why": why, "parents": parents,
            "children": children, "mastery": mastery}


def _comparison(metrics: dict, key: str) -> list[dict]:
    """The model's held-out figures beside its baseline's and (practice) its parent's."""
    model, baseline, parent = metrics.get("model") or {}, metrics.get("baseline") or {}, metrics.get("parent") or {}
    names = [k for k in ("auc", "logloss", "ece", "accuracy", "precision_at_10", "recall_at_10", "ndcg_at_10", "n")
             if k in model or k in baseline]
    return [{"metric": k, "model": model.get(k), "baseline": baseline.get(k), "parent": parent.get(k),
             "headline": k == key} for k in names] + (
        [{"metric": "parent unit", "model": None, "baseline": None, "parent": parent.get("unit_id"),
          "headline": False}] if parent else [])

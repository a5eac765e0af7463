"""The experiments pages: each variant's exposure and outcomes with 95 % intervals, and whether
the difference from the first variant is significant. Outcomes come from the `variant_outcomes`
view (sql/README.md, "Comparing experiment variants")."""
from __future__ import annotations

from app.dashboard import charts, stats
from app.errors import NotFound
from app.infra import queries as q
from app.serving import experiments


def index(conn, tenant: str) -> dict:
    rows = experiments.list_all(conn, tenant)
    for r in rows:
        r["variant_names"] = [v["name"] for v in r["variants"]]
    return {"rows": rows}


def detail(conn, tenant: str, name: str) -> dict:
    exp = _get(conn, tenant, name)
    measured = {r["variant"]: r for r in q.fetch_all(conn, "dash_variant_outcomes", tenant=tenant, experiment=name)}
    variants = []
    for v in exp["variants"]:
        m = measured.get(v["name"]) or {}
        attempted = int(m.get("attempted") or 0)
        rate = float(m["success_rate"]) if m.get("success_rate") is not None else None
        successes = round(rate * attempted) if rate is not None else 0
        variants.append({**v, "learners": int(m.get("learners") or 0), "answers": int(m.get("answers") or 0),
                         "recommended": int(m.get("recommended") or 0), "attempted": attempted,
                         "success_rate": rate, "successes": successes,
                         "interval": stats.wilson_interval(successes, attempted),
                         "mean_p": float(m["mean_p"]) if m.get("mean_p") is not None else None,
                         "sessions": int(m.get("sessions") or 0),
                         "attempts_per_session": float(m["attempts_per_session"])
                         if m.get("attempts_per_session") is not None else None})
    verdicts = []
    if variants:
        base = variants[0]
        for v in variants[1:]:
            test = stats.two_proportion_test(base["successes"], base["attempted"], v["successes"], v["attempted"])
            verdicts.append({"variant": v["name"], "test": test,
                             "text": stats.verdict(test, v["name"], base["name"])})
    chart = charts.interval_chart(
        [(v["name"], v["success_rate"], *v["interval"]) for v in variants if v["interval"] is not None],
        label=f"success rate of recommended items per variant of {name}, with 95 % intervals",
        x_label="success rate of attempted recommended items")
    return {"experiment": exp, "variants": variants, "verdicts": verdicts, "chart": chart}


def _get(conn, tenant: str, name: str) -> dict:
    try:
        return experiments.get(conn, tenant, name)
    except NotFound:
        raise NotFound(f"no experiment {name!r} in this tenant; pick one from the list of experiments") from None


def start(conn, tenant: str, name: str) -> dict:
    """Route learners to the experiment's variants again (its variants unchanged)."""
    exp = _get(conn, tenant, name)
    return experiments.save(conn, tenant, name, exp["description"], exp["variants"])


def stop(conn, tenant: str, name: str) -> dict:
    _get(conn, tenant, name)
    return experiments.stop(conn, tenant, name)

"""The experiments pages: each variant's exposure and outcomes with 95 % intervals, and whether
the difference from the first variant is significant. Outcomes come from the `variant_outcomes`
view (sql/README.md, "Comparing experiment variants"). The judgement by learning is the
endpoint's (GET /v1/experiments/{name}/results), whose SQL and resampling take a second or two
on a large experiment: the page keeps what it drew in Redis for RESULTS_TTL_S, so a teacher
reloading it, or several looking at once, do not each pay for it."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import redis

from app.dashboard import charts, stats
from app.errors import NotFound
from app.infra import queries as q
from app.serving import experiment_results, experiments
from app.serving.context import RequestContext

log = logging.getLogger("adaptrec.dashboard")
RESULTS_TTL_S = 60


def index(conn, tenant: str) -> dict:
    rows = experiments.list_all(conn, tenant)
    for r in rows:
        r["variant_names"] = [v["name"] for v in r["variants"]]
    return {"rows": rows}


def detail(ctx: RequestContext, name: str) -> dict:
    conn, tenant = ctx.conn, ctx.tenant
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
    return {"experiment": exp, "variants": variants, "verdicts": verdicts, "chart": chart,
            "learning": learning(ctx, name)}


# What each learning measure means, and its axis (app.serving.experiment_results, docs/EXPERIMENTS.md).
MEASURES = (
    ("learning", "difficulty-adjusted learning: growth of ability on a skill per attempt at it, in logits, "
                 "beyond the items' difficulty, on first attempts at new items"),
    ("attempts_to_mastery", "attempts spent per unit mastered (fewer is better)"),
    ("retention", "success after a day or more away, beyond what the items' difficulty predicts"),
)


def _results_key(cache, tenant: str, name: str) -> str:
    return cache.key("expres", tenant, name)


def forget_results(cache, tenant: str, name: str) -> None:
    """Drop the page's kept results of `name` (it was started or stopped: a new version may begin)."""
    if cache is None:
        return
    try:
        cache.client.delete(_results_key(cache, tenant, name))
    except (redis.RedisError, OSError) as exc:
        log.warning("experiment results cache unavailable: %s", exc)


def learning(ctx: RequestContext, name: str) -> dict:
    """The experiment judged by learning, as drawn at most RESULTS_TTL_S ago (kept in Redis; Redis
    down: computed every time)."""
    key = _results_key(ctx.cache, ctx.tenant, name) if ctx.cache is not None else None
    if key is not None:
        try:
            raw = ctx.cache.client.get(key)
        except (redis.RedisError, OSError) as exc:
            log.warning("experiment results cache unavailable: %s", exc)
            raw = None
        if raw is not None:
            kept = json.loads(raw)
            return {**kept, "frozen_at": datetime.fromisoformat(kept["frozen_at"]),
                    "computed_at": datetime.fromisoformat(kept["computed_at"])}
    drawn = draw_learning(ctx, name)
    if key is not None:
        try:
            ctx.cache.client.set(key, json.dumps({**drawn, "frozen_at": drawn["frozen_at"].isoformat(),
                                                  "computed_at": drawn["computed_at"].isoformat()}),
                                 ex=RESULTS_TTL_S)
        except (redis.RedisError, OSError) as exc:
            log.warning("experiment results cache write failed: %s", exc)
    return drawn


def draw_learning(ctx: RequestContext, name: str) -> dict:
    """The experiment judged by learning (GET /v1/experiments/{name}/results): a chart per measure
    with 95 % intervals, the guardrails' warnings and the verdict."""
    found = experiment_results.results(ctx, name)
    charts_by_measure = []
    for key, meaning in MEASURES:
        rows = [(v.variant, i.estimate, i.low, i.high) for v in found.variants
                for i in [v.result.measures[key]] if i.estimate is not None and i.low is not None]
        charts_by_measure.append({"key": key, "meaning": meaning, "chart": charts.interval_chart(
            rows, label=f"{meaning}, per variant of {name}, with 95 % intervals", x_label=meaning.split(":")[0],
            proportions=False)})
    guard = found.guardrails
    warnings = []
    srm = guard["sample_ratio_mismatch"]
    if srm.get("flagged"):
        warnings.append(f"sample ratio mismatch: learners per variant {guard['sample_ratio_mismatch']['learners']} "
                        f"differ from the weights (p = {srm['p_value']:.2g}); check the routing before trusting "
                        "any figure")
    if guard["too_few_learners"]:
        warnings.append(f"fewer than {guard['min_learners']} learners in {', '.join(guard['too_few_learners'])}: "
                        "the intervals are wide and the verdict waits")
    return {"version": found.version, "verdict": found.verdict, "warnings": warnings, "measures": charts_by_measure,
            "frozen_at": found.started_at, "computed_at": datetime.now(UTC)}


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

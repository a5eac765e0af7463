"""What a learner knows and how many learners have mastered a unit: the teacher's questions.

The learner's part is GET /v1/users/{user_id}/knowledge's own computation (app.serving.knowledge),
run in the page's request context, so the learner page reads the history and the model once for
its predictions, its next items and this. The unit's part reads the nightly snapshot
(`adaptrec knowledge snapshot`, the unit_mastery view of migration 010): a unit page must not fit
every learner of a class live.
"""
from __future__ import annotations

from datetime import datetime

from app.dashboard import charts
from app.infra import queries as q
from app.serving.context import RequestContext
from app.serving.knowledge import MasterySettings, inherited_settings, mastery_settings, unit_knowledge

MOST_SKILLS = 60          # skills drawn on a learner's page (the table lists every one)
SNAPSHOTS = 30            # snapshots in a unit's mastery-over-time chart
MOST_BELOW = 100          # units below a unit listed with their mastery
STATE_CSS = {"mastered": "k-mastered", "due": "k-due", "learning": "k-learning", "not started": "k-new"}


def state_of(mastered: bool, attempts: int, due: datetime | None, now: datetime) -> str:
    """A skill's state as a teacher reads it: mastered (the interval's low end at the threshold),
    due (practised, and the forecast p has fallen below the review threshold), learning, not started."""
    if mastered:
        return "mastered"
    if not attempts:
        return "not started"
    return "due" if due is not None and due <= now else "learning"


def learner(ctx: RequestContext, user_id: str, unit_id: str) -> dict:
    """The learner's knowledge of `unit_id` and of every skill below it, as the endpoint answers it,
    with each one's state, a chart of the estimates with their 90 % intervals and the counts."""
    found, _ = unit_knowledge(ctx, ctx.learner(user_id), [unit_id])
    rows = []
    for k in found:
        rows.append({**k.answer(), "state": state_of(k.mastered, k.attempts, k.due, ctx.now),
                     "threshold": k.settings.threshold, "review": k.settings.review,
                     "due_at": k.due, "last_at": k.last_practised})
    drawn = [r for r in rows if r["p"] is not None][:MOST_SKILLS]
    thresholds = sorted({r["threshold"] for r in drawn})
    chart = charts.interval_chart(
        [(r["unit_id"], r["p"], r["low"], r["high"]) for r in drawn],
        label=f"{user_id}'s mean p(correct) over each unit's items, with 90 % intervals",
        x_label="mean p(correct) now over the unit's items", level="90 %", row_height=22,
        marks=[(t, "mastery threshold") for t in thresholds], row_css=[STATE_CSS[r["state"]] for r in drawn],
        empty="no practice model covers these units")
    skills = [r for r in rows if r["skill"]]
    counts = {s: sum(1 for r in skills if r["state"] == s) for s in STATE_CSS}
    return {"rows": rows, "chart": chart, "counts": counts, "skills": len(skills), "drawn": len(drawn),
            "capped": len([r for r in rows if r["p"] is not None]) > len(drawn)}


def unit(conn, tenant: str, unit_id: str, attrs: dict | None) -> dict:
    """A unit's mastery across its learners from the newest snapshot (in all and per cohort), the
    share mastered over the recent snapshots, the thresholds the unit uses, and the mastery of
    each unit below it (the snapshot holds a learner's practised units, the ones holding items: a
    chapter's page shows its sections')."""
    inherited = inherited_settings(conn, tenant, [unit_id]).get(unit_id, MasterySettings())
    settings = mastery_settings(attrs, inherited)
    latest = q.fetch_all(conn, "dash_unit_mastery", tenant=tenant, unit_id=unit_id)
    history = list(reversed(q.fetch_all(conn, "dash_unit_mastery_history", tenant=tenant, unit_id=unit_id,
                                        limit=SNAPSHOTS)))
    chart = None
    if len(history) > 1:
        labels = [f"{h['as_of']:%Y-%m-%d %H:%M}: {h['mastered']} of {h['learners']}" for h in history]
        chart = charts.line_chart(
            [charts.Series("share mastered", [(k, float(h["mastered_share"])) for k, h in enumerate(history)],
                           "s3", labels)],
            label=f"share of {unit_id}'s learners who had mastered it, per nightly snapshot",
            y_label="share mastered", y_range=(0.0, 1.0),
            x_ticks=[(k, f"{h['as_of']:%m-%d}") for k, h in enumerate(history)])
    below = q.fetch_all(conn, "dash_units_below_mastery", tenant=tenant, unit_id=unit_id, limit=MOST_BELOW)
    return {"settings": settings, "latest": latest, "as_of": latest[0]["as_of"] if latest else None,
            "chart": chart, "below": below, "below_capped": len(below) == MOST_BELOW}

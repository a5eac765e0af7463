"""What a learner knows, per unit (no Flask): GET /v1/users/{user_id}/knowledge, the `mastery` and
`review` strategies and the nightly snapshot (jobs/knowledge.py) call this.

The units reported: the units asked (default: the learner's practised ones, the units that hold
an item they attempted) and every unit below them with active items of its own (a skill). Each
with the learner's mean p(correct) now over its active items and a 90 % interval
(app.online.knowledge: the recommendation's own live fit and scoring, from the practice model of
the nearest unit at or above it), the learner's attempts at its items over their whole history,
`mastered` and `due`.

Settings per unit, in units.attrs under "mastery", e.g.
`{"mastery": {"threshold": 0.85, "review": 0.75, "ordered": true}}`; a unit without a threshold
takes the nearest unit's above it that has one, else the default:
- threshold (default 0.8): mastered when the interval's low end is at or above it;
- review (default 0.7): due when the forecast p falls below it;
- ordered (default false; the unit's own, not inherited): its children are learned in order, the
  hierarchy's (their ids', as GET /v1/units/{unit_id} lists them): the mastery strategy works on
  the first one not mastered.
With the defaults, forgetting takes `mastered` away (the interval's low end under 0.8) before the
skill falls due (p under 0.7), so the mastery strategy serves it again as a skill to learn; a
platform that wants mastered skills reviewed first sets `review` above where p stands when the low
end reaches `threshold` (e.g. threshold 0.7, review 0.9).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from app import strategies
from app.catalogue import history as hist
from app.errors import InputError, UnknownIds
from app.infra import queries as q
from app.online.knowledge import UnitLayout, estimate_units, typical_rows
from app.serving import item_learning
from app.serving.learner_fit import practice_inputs

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.online.scoring import ServingModel
    from app.serving.context import Learner, RequestContext

MASTERY_THRESHOLD = 0.8
REVIEW_THRESHOLD = 0.7
MAX_REPORTED = 1000     # units in one answer of the endpoint (a catalogue's root can hold thousands of skills)
INTERVAL = ("90 % credible interval of the live fit's Laplace posterior, by the delta method on the mean p over "
            "the unit's items and then on its logit (the skill offsets' own variance added), widened by the model's "
            "error on each item, shared by every learner, as the nightly job measured it on held-out learners")


@dataclass(frozen=True)
class MasterySettings:
    threshold: float = MASTERY_THRESHOLD
    review: float = REVIEW_THRESHOLD
    ordered: bool = False


def mastery_settings(attrs: dict | None, inherited: MasterySettings) -> MasterySettings:
    """The unit's settings (attrs["mastery"]) over its parent's thresholds (`ordered` is the unit's
    own: it says how its children are learned); a value of the wrong type or out of (0, 1) is
    ignored (attrs are the platform's free-form JSON: never a reason to fail)."""
    own = (attrs or {}).get("mastery") if isinstance(attrs, dict) else None
    if not isinstance(own, dict):
        return MasterySettings(inherited.threshold, inherited.review)

    def probability(name: str, default: float) -> float:
        v = own.get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and 0.0 < v < 1.0 else default

    ordered = own.get("ordered")
    return MasterySettings(probability("threshold", inherited.threshold), probability("review", inherited.review),
                           ordered is True)


@dataclass(frozen=True)
class Planned:
    """A unit to report, before any estimate."""
    unit_id: str
    skill: bool                  # has active items of its own
    settings: MasterySettings
    order: tuple[int, ...]       # its place among the siblings of ordered units on the way down (empty: none)
    items: tuple[str, ...]       # every item under it (the attempts, the typical item of the forecast)
    active: tuple[str, ...]      # the active items under it (what a strategy can serve)


def plan(nodes: dict[str, dict], asked: list[str], inherited: dict[str, MasterySettings] | None = None
         ) -> list[Planned]:
    """The units asked, in order, then below each the skills it reaches (depth first, children in
    id order), each unit once (its first route wins); `nodes`: rows of knowledge_units by id;
    `inherited`: the settings each unit asked takes from the units above it (default: the defaults)."""
    under: dict[str, tuple[set, set]] = {}

    def items_under(unit_id: str, visiting: set) -> tuple[set, set]:
        if unit_id in under:
            return under[unit_id]
        node = nodes[unit_id]
        items, active = set(node["items"]), set(node["active_items"])
        visiting.add(unit_id)
        for child in node["children"]:
            if child in nodes and child not in visiting:   # a cycle adds nothing new
                more, more_active = items_under(child, visiting)
                items |= more
                active |= more_active
        visiting.discard(unit_id)
        under[unit_id] = (items, active)
        return items, active

    out: dict[str, Planned] = {}
    walked: set[str] = set()   # each unit is walked once: its first route wins, a cycle or a diamond ends there

    def walk(unit_id: str, settings: MasterySettings, order: tuple, top: bool) -> None:
        node = nodes[unit_id]
        settings = mastery_settings(node["attrs"], settings)
        if top or node["active_items"]:
            items, active = items_under(unit_id, set())
            out[unit_id] = Planned(unit_id, bool(node["active_items"]), settings, order,
                                   tuple(sorted(items)), tuple(sorted(active)))
        walked.add(unit_id)
        for k, child in enumerate(node["children"]):
            if child in nodes and child not in walked:
                walk(child, settings, order + (k,) if settings.ordered else order, False)

    for unit_id in asked:
        if unit_id in nodes and unit_id not in walked:
            walk(unit_id, (inherited or {}).get(unit_id, MasterySettings()), (), True)
        elif unit_id in nodes and unit_id not in out:   # asked, and already walked below another unit asked
            items, active = items_under(unit_id, set())
            out[unit_id] = Planned(unit_id, bool(nodes[unit_id]["active_items"]),
                                   (inherited or {}).get(unit_id, MasterySettings()), (), tuple(sorted(items)),
                                   tuple(sorted(active)))
    return list(out.values())


def inherited_settings(conn: Connection, tenant: str, units: list[str]) -> dict[str, MasterySettings]:
    """The settings each of `units` inherits from the units above it: the nearest one's over the
    farther ones' (several routes: the shortest)."""
    out: dict[str, MasterySettings] = {}
    for row in q.fetch_all(conn, "knowledge_ancestors", tenant=tenant, unit_ids=list(units)):   # farthest first
        out[row["start"]] = mastery_settings(row["attrs"], out.get(row["start"], MasterySettings()))
    # `ordered` says how a unit's own children are learned: a parent's is not the unit's
    return {unit_id: MasterySettings(s.threshold, s.review) for unit_id, s in out.items()}


@dataclass(frozen=True)
class UnitKnowledge:
    unit_id: str
    skill: bool
    p: float | None              # None: no practice model at or above the unit
    low: float | None
    high: float | None
    attempts: int
    correct: int
    last_practised: datetime | None
    mastered: bool
    due: datetime | None
    model_id: int | None
    order: tuple[int, ...]
    active: tuple[str, ...]
    settings: MasterySettings = MasterySettings()   # its thresholds (the dashboard draws them)

    def answer(self) -> dict:
        def r(v):
            return None if v is None else round(v, 6)
        return {"unit_id": self.unit_id, "skill": self.skill, "p": r(self.p), "low": r(self.low), "high": r(self.high),
                "attempts": self.attempts, "correct": self.correct,
                "last_practised": self.last_practised.isoformat() if self.last_practised else None,
                "mastered": self.mastered, "due": self.due.isoformat() if self.due else None,
                "model_id": self.model_id}


def attempts_by_item(events: list[hist.Event]) -> list[tuple]:
    """user_item_counts's rows (item_id, attempts, correct, last_at) from a learner's events, when
    they are the whole history."""
    out: dict[str, list] = {}
    for e in events:   # newest first: an item's first event seen is its last
        if e.kind == "attempt" and e.outcome is not None:
            row = out.setdefault(e.item_id, [e.item_id, 0, 0, e.occurred_at])
            row[1] += 1
            row[2] += e.outcome == 1
    return [tuple(row) for row in out.values()]


@dataclass
class KnowledgePlan:
    """What a list of units asked comes to at a catalogue version: the units to report (`planned`),
    the planned units holding each item (positions in `planned`), and, per model, the layout of
    the units it serves (app.online.knowledge.UnitLayout: their rows, typical rows and the
    matrices that average over their items), made once. A worker keeps it
    (app.catalogue.candidates.CandidateCache.remember) until the catalogue changes: reading every
    item of a 20-skill unit and walking them per request cost most of the endpoint's time, then
    laying out its 8,000 items did (docs/benchmarks-log.md, issue 26's latency and cost)."""
    planned: list[Planned]
    units_of_item: dict[str, tuple[int, ...]]
    _layouts: dict[tuple, UnitLayout] = field(default_factory=dict, repr=False)
    _positions: dict[int, tuple[dict, np.ndarray]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def layout(self, model: ServingModel, mine: list[int]) -> UnitLayout:
        """The layout of the planned units at positions `mine` under `model`: their typical rows
        (typical_rows, over every item) and the rows of their active items (every item when none
        is active), what p is the mean over. Kept per model and its item count: a hybrid model
        grows when new items are covered."""
        key = (model.model_id, len(model.item_ids), tuple(mine))
        with self._lock:
            found = self._layouts.get(key)
        if found is None:
            units = [self.planned[k] for k in mine]
            found = UnitLayout.of(model, [model.rows(list(u.active or u.items)) for u in units],
                                  typical_rows(model, [model.rows(list(u.items)) for u in units]))
            with self._lock:
                found = self._layouts.setdefault(key, found)
        return found

    def positions(self, k: int, positions: dict[str, int]) -> np.ndarray:
        """The positions in a candidate list (`positions`: item id -> position) of the active items
        of the planned unit at `k`, kept for the last list asked: a worker's candidate list is one
        object until the catalogue changes, and finding a 5,000-item skill's items in it cost a
        mastery recommendation 0.4 ms (docs/benchmarks-log.md, issue 26's cost)."""
        with self._lock:
            found = self._positions.get(k)
        if found is not None and found[0] is positions:
            return found[1]
        made = np.array([positions[i] for i in self.planned[k].active if i in positions], dtype=np.intp)
        with self._lock:
            self._positions[k] = (positions, made)
        return made


def build_plan(conn: Connection, tenant: str, units: list[str]) -> KnowledgePlan:
    """The plan of `units` read from Postgres; UnknownIds when one does not exist."""
    nodes = {r["unit_id"]: r for r in q.fetch_all(conn, "knowledge_units", tenant=tenant, unit_ids=list(units))}
    missing = [u for u in units if u not in nodes]
    if missing:
        raise UnknownIds("units", missing)
    planned = plan(nodes, units, inherited_settings(conn, tenant, units))
    holding: dict[str, list[int]] = {}
    for k, u in enumerate(planned):
        for item in u.items:
            holding.setdefault(item, []).append(k)
    return KnowledgePlan(planned, {item: tuple(ks) for item, ks in holding.items()})


def knowledge_plan(ctx: RequestContext, units: list[str]) -> KnowledgePlan:
    """The plan of `units`, kept by the worker per catalogue version (read afresh without a
    candidate cache, e.g. in a replay)."""
    if ctx.candidates is None:
        return build_plan(ctx.conn, ctx.tenant, units)
    version = ctx.candidates.version(ctx.conn, ctx.tenant)
    return ctx.candidates.remember(("knowledge", ctx.tenant, version, tuple(units)),
                                   lambda: build_plan(ctx.conn, ctx.tenant, units))


def unit_knowledge(ctx: RequestContext, learner: Learner, units: list[str] | None, tag: str = "default",
                   most: int | None = None) -> tuple[list[UnitKnowledge], list[ServingModel]]:
    """The learner's knowledge of `units` (None: their practised ones) and the skills below them, and
    the models that gave it; UnknownIds when a unit named does not exist, InputError when they
    come to more than `most` units; as of `ctx.now`."""
    found, used, _ = _unit_knowledge(ctx, learner, units, tag, most)
    return found, used


def _unit_knowledge(ctx: RequestContext, learner: Learner, units: list[str] | None, tag: str = "default",
                    most: int | None = None) -> tuple[list[UnitKnowledge], list[ServingModel], KnowledgePlan | None]:
    """unit_knowledge, and the plan it came from (None: no units)."""
    conn, tenant, models, now = ctx.conn, ctx.tenant, ctx.models, ctx.now
    user_id, events = learner.user_id, learner.events
    # (item_id, attempts, correct, last_at[, units]) per item attempted, as tuples: a learner of a few
    # hundred items made building a dict per row a third of the request's CPU
    if units is not None and len(events) < hist.KEEP:   # the whole history is at hand: no query
        attempted = attempts_by_item(events)
    elif units is not None:                               # the units are named: no unit per item
        attempted = q.fetch_tuples(conn, "user_item_counts", tenant=tenant, user_id=user_id)
    else:
        attempted = q.fetch_tuples(conn, "user_item_attempts", tenant=tenant, user_id=user_id)
    if units is None:
        units = sorted({u for row in attempted for u in row[4]})
    if not units:
        return [], [], None
    found_plan = knowledge_plan(ctx, list(units))
    planned = found_plan.planned
    if most is not None and len(planned) > most:
        raise InputError(f"units: these units hold {len(planned)} units with items, more than the {most} one answer "
                         "reports; ask for units lower in the hierarchy", [{"field": "units", "message": "too many"}])
    # each unit's attempts, from the items the learner attempted (not every item of every unit)
    attempts, correct = [0] * len(planned), [0] * len(planned)
    last: list[datetime | None] = [None] * len(planned)
    units_of_item = found_plan.units_of_item
    for item_id, n, right, last_at, *_ in attempted:
        for k in units_of_item.get(item_id, ()):
            attempts[k] += n
            correct[k] += right
            if last[k] is None or last_at > last[k]:
                last[k] = last_at
    chosen = ctx.model_of_each([u.unit_id for u in planned], "practice", tag)
    used = {m.model_id: m for m in chosen if m is not None}
    estimates: dict[str, tuple[float, float, float, float]] = {}
    for model in used.values():
        mine = [k for k, m in enumerate(chosen) if m is not None and m.model_id == model.model_id]
        if model.feature_vectors is not None:   # a hybrid model scores items newer than itself from metadata
            models.cover(conn, tenant, model, sorted({i for k in mine for i in planned[k].items}))
        inputs = practice_inputs(ctx, model, learner)
        h = inputs.history
        layout = found_plan.layout(model, mine)
        learned = item_learning.candidate_offsets(ctx, model, None, layout.laid.rows)   # as recommendations score
        found = estimate_units(model, h.rows, h.outcomes, layout, None,
                               np.array([planned[k].settings.review for k in mine]), h.times, h.now,
                               inputs.prior, inputs.theta, learned)
        for j, k in enumerate(mine):
            estimates[planned[k].unit_id] = (float(found.p[j]), float(found.low[j]), float(found.high[j]),
                                             float(found.due_days[j]))
    out = []
    for k, (u, model) in enumerate(zip(planned, chosen)):
        p, low, high, due_days = estimates.get(u.unit_id, (None, None, None, float("nan")))
        due = now + timedelta(days=due_days) if attempts[k] and not np.isnan(due_days) else None
        out.append(UnitKnowledge(u.unit_id, u.skill, p, low, high, attempts[k], correct[k], last[k],
                                 low is not None and low >= u.settings.threshold, due,
                                 model.model_id if model else None, u.order, u.active, u.settings))
    return out, list(used.values()), found_plan


def knowledge(ctx: RequestContext, user_id: str, units: list[str] | None, tag: str = "default") -> dict:
    """The answer of GET /v1/users/{user_id}/knowledge as of `ctx.now`; UnknownIds when a unit named
    does not exist."""
    now = ctx.now
    found, used = unit_knowledge(ctx, ctx.learner(user_id), units, tag, most=MAX_REPORTED)
    refs = [{"model_id": m.model_id, "unit_id": m.unit_id, "objective": m.objective, "mode": m.mode, "tag": m.tag,
             "forgetting": m.calibration.learning is not None} for m in used]
    return {"user_id": user_id, "as_of": now.isoformat(), "units": [k.answer() for k in found],
            "model": {"forgetting": any(r["forgetting"] for r in refs), "interval": INTERVAL,
                      "defaults": {"threshold": MASTERY_THRESHOLD, "review": REVIEW_THRESHOLD},
                      "models": refs}}


def skill_states(ctx: RequestContext, learner: Learner, units: list[str], positions: dict,
                 tag: str = "default") -> list[strategies.SkillState]:
    """The learner's knowledge of each skill under `units`, as the mastery and review strategies take
    it: `positions` maps the request's candidates (item id -> position)."""
    now = ctx.now
    found, _, plan = _unit_knowledge(ctx, learner, units, tag)
    return [strategies.SkillState(k.unit_id, k.p, k.mastered, None if k.due is None else (now - k.due).total_seconds(),
                                  k.order, plan.positions(j, positions))
            for j, k in enumerate(found) if k.skill]

"""One recommendation request, start to finish (no Flask: routes and benchmarks call this).

1. the variant, when the request names a running experiment;
2. candidates: active items under the units (cached per catalogue version), minus exclusions;
3. the model: the active one of the nearest unit at or above the units;
4. the learner's recent history (Redis, Postgres on a miss);
5. the live fit and calibrated scores (practice) or the fold-in blend (engagement);
6. the strategy; 7. the log row. Every fallback taken is named in the answer.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from app import strategies
from app.catalogue import candidates as cand
from app.catalogue import history as hist
from app.errors import InputError
from app.infra import metrics
from app.infra import queries as q
from app.online.scoring import (
    CandidateRows,
    ServingModel,
    cold_user_scores,
    engagement_scores,
    practice_probabilities,
)
from app.serving import experiments, knowledge
from app.serving.learner_fit import cover_new_items, learner_prior, practice_history

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache
    from app.model.cache import ModelCache
    from app.serving.recommendation_log import RecommendationLog


@dataclass
class RecommendationRequest:
    user_id: str
    units: list[str]
    n: int = 10
    strategy: str | None = None
    target: float | None = None
    band: tuple[float, float] | None = None
    exclude: list[str] = field(default_factory=list)
    experiment: str | None = None
    explore: bool | None = None     # Thompson sampling (None: the variant's setting, else off)
    exclude_positive: bool = False  # never return items of the learner's positive engagements (Totara)


def explore_rng(request_id: str) -> np.random.Generator:
    """The draw of an exploring request, fixed by its id."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big"))


def _variant(conn: Connection, tenant: str, req: RecommendationRequest) -> tuple[dict | None, strategies.Strategy,
                                                                                 dict, str]:
    """(variant, strategy, params, model tag) after experiment routing."""
    strategy, params, tag, variant = req.strategy or "target", {}, "default", None
    if req.experiment:
        exp = experiments.get(conn, tenant, req.experiment)
        if exp["active"]:
            variant = experiments.assign(exp["name"], req.user_id, exp["variants"])
            strategy = variant["strategy"]
            params = dict(variant.get("params") or {})
            tag = variant.get("model_tag") or "default"
    if req.target is not None:
        params["target"] = req.target
    if req.band is not None:
        params["band"] = req.band
    if req.explore is not None:
        params["explore"] = req.explore
    if strategy not in strategies.REGISTRY:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(sorted(strategies.REGISTRY))}",
                         [{"field": "strategy", "message": "unknown strategy"}])
    return variant, strategies.get(strategy), params, tag


def learner_state(events: list[hist.Event], now: datetime) -> strategies.LearnerState:
    state = strategies.LearnerState(now=now)
    for e in events:  # newest first: the first event seen for an item is its last
        state.last.setdefault(e.item_id, (e.kind, e.outcome, e.occurred_at))
        if e.kind == "attempt" and e.outcome == 1:
            state.solved.add(e.item_id)
    return state


def add_older(conn: Connection, tenant: str, user_id: str, state: strategies.LearnerState, candidates,
              until: datetime) -> None:
    """Complete `state` with the candidates (a container of item ids) the learner touched before
    their cached history, which starts at `until` (its oldest event)."""
    for item_id, kind, outcome, occurred_at, solved in q.fetch_tuples(conn, "user_items_touched", tenant=tenant,
                                                                      user_id=user_id, until=until):
        if item_id in candidates:
            state.last.setdefault(item_id, (kind, outcome, occurred_at))
            if solved:
                state.solved.add(item_id)


def _fallback_scores(conn: Connection, tenant: str, items: list[str], probabilities: bool) -> np.ndarray:
    """Without a model: each item's smoothed success rate (practice) or attempt count."""
    stats = {r["item_id"]: r for r in q.fetch_all(conn, "item_success_rates", tenant=tenant, item_ids=items)}
    attempts = np.array([stats[i]["attempts"] if i in stats else 0 for i in items], dtype=np.float64)
    if not probabilities:
        return attempts
    correct = np.array([stats[i]["correct"] if i in stats else 0 for i in items], dtype=np.float64)
    overall = (correct.sum() + 1.0) / (attempts.sum() + 2.0)
    return (correct + 5.0 * overall) / (attempts + 5.0)


def positive(e: hist.Event) -> bool:
    """A positive engagement: any event but an attempt, not marked 0, with no value or one above 0."""
    return e.kind != "attempt" and e.outcome != 0 and (e.value is None or e.value > 0)


def positive_items(conn: Connection, tenant: str, user_id: str, events: list[hist.Event], items) -> set[str]:
    """The items among `items` (a container of ids; None: any) the user engaged with positively:
    from the cached history, and from Postgres too when that history is cut at its cap (a learner
    with a long past)."""
    liked = {e.item_id for e in events if positive(e)}
    if len(events) >= hist.KEEP:
        liked |= {r["item_id"] for r in q.fetch_all(conn, "user_positive_items", tenant=tenant, user_id=user_id)}
    return liked if items is None else {i for i in liked if i in items}


class CandidateScores(NamedTuple):
    scores: np.ndarray                 # p(correct) (practice, or no model) or a ranking score
    history_rows: int                  # history entries the model used
    fallbacks: list[str]
    explored: np.ndarray | None = None  # p under a posterior draw, when asked to explore (practice)


def score_candidates(model: ServingModel | None, items: list[str], events: list[hist.Event], conn, tenant: str,
                     practice: bool, rows: np.ndarray | CandidateRows | None = None,
                     explore: np.random.Generator | None = None,
                     user_id: str | None = None, now: datetime | None = None) -> CandidateScores:
    """Scores of `items` for this learner.

    rows : each item's row in the model (-1 when not covered), if already known, or the items laid
        out for the model (ServingModel.lay_out: what the request path caches per candidate list).
    explore : practice models only: also p under a learner vector drawn from the live fit's posterior.
    user_id : whose metadata shifts the prior (hybrid models that learned shifts).
    now : the time of the prediction (default: the clock), for a model whose calibration has
        learning terms (practice and time away since the history's attempts).
    """
    if model is None:
        return CandidateScores(_fallback_scores(conn, tenant, items, practice), 0, ["no_model"])
    rows = model.rows(items) if rows is None else rows
    laid = rows if isinstance(rows, CandidateRows) else None
    rows = laid.rows if laid is not None else rows
    fallbacks = []
    if model.objective == "practice":
        h = practice_history(model, events, now)
        if not len(h.rows):
            fallbacks.append("no_history")
        # recency as the nightly job chose it on dev (no half-life: all attempts weigh the same)
        p, _, explored = practice_probabilities(model, h.rows, h.outcomes, laid or rows,
                                                model.calibration.half_life, explore,
                                                learner_prior(conn, tenant, model, user_id), h.times, h.now)
        return CandidateScores(p, len(h.rows), fallbacks, explored)
    positives = [e.item_id for e in events if positive(e) and e.item_id in model.index]
    if len(events) >= hist.KEEP and user_id:  # a long past: every positive, as the nightly model saw them
        positives = [i for i in positive_items(conn, tenant, user_id, events, None) if i in model.index]
    if not positives:
        # a hybrid model builds the user from their metadata; else only the item biases rank
        row = q.fetch_one(conn, "user_attrs", tenant=tenant, user_id=user_id) \
            if model.user_token_shifts is not None and user_id else None
        cold = cold_user_scores(model, row["attrs"] if row else None, rows)
        if cold is not None:
            return CandidateScores(cold, 0, ["metadata"])
        fallbacks.append("no_history")
    p_rows = np.array([model.index[i] for i in positives], dtype=np.int64)
    return CandidateScores(engagement_scores(model, p_rows, rows), len(positives), fallbacks)


class Served(NamedTuple):
    answer: dict                # what the API returns
    candidates: list[str]       # the items under the request's units
    liked: set[str]             # the learner's positive items among them (only with exclude_positive)


def recommend(conn: Connection, tenant: str, cache: Cache, models: ModelCache, req: RecommendationRequest,
              request_id: str, now: datetime | None = None, log: RecommendationLog | None = None,
              local_candidates=None) -> dict:
    return serve(conn, tenant, cache, models, req, request_id, now, log, local_candidates).answer


def serve(conn: Connection, tenant: str, cache: Cache, models: ModelCache, req: RecommendationRequest,
          request_id: str, now: datetime | None = None, log: RecommendationLog | None = None,
          local_candidates=None) -> Served:
    """`recommend`, and what it learned on the way that a caller building on the answer needs
    (app.serving.related.user_top_items), so it is not read twice. `log`: where the answer's row goes
    (written off the request path); None: not logged."""
    now = now or datetime.now(UTC)
    variant, strategy, params, tag = _variant(conn, tenant, req)
    explore = bool(params.pop("explore", False))
    found = cand.resolve(conn, tenant, cache, local_candidates, req.units)
    items = found.items
    wants_probability = strategy.needs == strategies.PROBABILITY
    model = None
    for objective in strategy.objectives:  # the first kind of model that gives what it needs
        model = models.nearest(conn, tenant, req.units, objective, tag)
        if model is not None:
            break
    events, source = hist.recent(conn, tenant, cache, req.user_id)
    metrics.CACHE_REQUESTS.labels("history", {"redis": "hit", "postgres": "miss"}.get(source, "error")).inc()

    fallbacks: list[str] = []
    chosen: list[int] = []
    scores = np.empty(0)
    history_rows = 0
    excluded = list(dict.fromkeys(i for i in req.exclude if i in found.positions))
    liked = positive_items(conn, tenant, req.user_id, events, found.positions) if req.exclude_positive else set()
    if liked:  # not a pass over every candidate on the /v1 path, where nothing is excluded this way
        excluded += [i for i in items if i in liked and i not in excluded]
    if len(excluded) == len(items):
        fallbacks.append("no_candidates")
    else:
        rows = laid = None
        if model is not None:
            laid = found.rows.get(model.model_id)
            if laid is None:  # the items laid out for this model: once per candidate list
                cover_new_items(conn, tenant, model, items)
                laid = found.rows[model.model_id] = model.lay_out(model.rows(items))
            rows = laid.rows
        started = time.perf_counter()
        # Exploring (Thompson sampling): choose as if the learner were a draw from the posterior; the
        # answer still reports the estimate. Seeded by the request id, so a request is reproducible.
        scored_now = score_candidates(model, items, events, conn, tenant, wants_probability, laid,
                                      explore_rng(request_id) if explore else None, req.user_id, now)
        scores, history_rows, fallbacks = scored_now.scores, scored_now.history_rows, scored_now.fallbacks
        choose_by = scores if scored_now.explored is None else scored_now.explored
        metrics.LIVE_FIT_SECONDS.labels(model.objective if model else "none").observe(time.perf_counter() - started)
        metrics.CANDIDATES_SCORED.observe(len(items) - len(excluded))
        scored = strategies.Scored(items, choose_by, found.positions, model.unit_vectors if model else None, rows,
                                   probabilities=wants_probability or model is None)
        if excluded:  # never returned, not even when a strategy relaxes its rules
            scored.allowed = ~scored.mask(excluded)
        state = learner_state(events, now)
        if len(events) >= hist.KEEP:  # a long past: what the learner did before the cached window counts too
            add_older(conn, tenant, req.user_id, state, found.positions, events[-1].occurred_at)
        if strategy.knowledge:   # mastery, review: what the learner knows of each skill under the units
            state.skills = knowledge.skill_states(conn, tenant, cache, models, req.user_id, req.units, found.positions,
                                                  now, tag, events)
        choice = strategy(scored, state, req.n, params)
        chosen = choice.positions
        if choice.fallback:
            fallbacks.append(choice.fallback)

    for reason in fallbacks:
        metrics.FALLBACKS.labels(reason).inc()
    is_probability = (model is not None and model.objective == "practice") or (model is None and wants_probability)
    answer_items = [{"item_id": items[i], ("p" if is_probability else "score"): round(float(scores[i]), 6)}
                    for i in chosen]
    answer = {
        "request_id": request_id,
        "user_id": req.user_id,
        "items": answer_items,
        "model": None if model is None else {"model_id": model.model_id, "unit_id": model.unit_id,
                                             "objective": model.objective, "mode": model.mode, "tag": model.tag},
        "strategy": strategy.name,
        "experiment": req.experiment if variant else None,
        "variant": variant["name"] if variant else None,
        "fallback": "+".join(fallbacks) if fallbacks else None,
        "history_rows": history_rows,
        "candidates": len(items),
        "explored": explore and model is not None and model.objective == "practice",
    }
    if log is not None:
        log.add({"tenant": tenant, "request_id": request_id, "user_id": req.user_id, "units": list(req.units),
                 "experiment": answer["experiment"], "variant": answer["variant"], "strategy": strategy.name,
                 "model_id": model.model_id if model else None, "fallback": answer["fallback"],
                 "history_rows": history_rows, "item_ids": [a["item_id"] for a in answer_items],
                 "scores": [float(scores[i]) for i in chosen]})
    return Served(answer, items, liked)


def predict(conn: Connection, tenant: str, cache: Cache, models: ModelCache, user_id: str, units: list[str],
            item_ids: list[str],
            tag: str = "default", now: datetime | None = None) -> dict:
    """Calibrated p(correct) of `user_id` on each of `item_ids`, from the practice model of the
    nearest unit at or above `units` fitted live to the learner's current history (`now`: the
    time of the prediction, default the clock; a replay gives each attempt's own)."""
    cand.check_units(conn, tenant, units)
    model = models.nearest(conn, tenant, units, "practice", tag)
    events, _ = hist.recent(conn, tenant, cache, user_id)
    cover_new_items(conn, tenant, model, list(item_ids))
    p, history_rows, fallbacks, _ = score_candidates(model, list(item_ids), events, conn, tenant, practice=True,
                                                     user_id=user_id, now=now)
    return {"user_id": user_id,
            "items": [{"item_id": i, "p": round(float(v), 6)} for i, v in zip(item_ids, p)],
            "model": None if model is None else {"model_id": model.model_id, "unit_id": model.unit_id,
                                                 "objective": model.objective, "mode": model.mode, "tag": model.tag},
            "fallback": "+".join(fallbacks) if fallbacks else None,
            "history_rows": history_rows}

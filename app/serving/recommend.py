"""One recommendation request, start to finish (no Flask: routes, jobs and benchmarks call this),
as a chain of the steps of app.serving.pipeline:

1. the route: the variant, when the request names a running experiment, its strategy and tag;
2. candidates: active items under the units (cached per catalogue version), minus exclusions;
3. the model: the active one of the nearest unit at or above the units;
4. the learner's recent history (Redis, Postgres on a miss), read once per request;
5. the live fit and calibrated scores (practice) or the fold-in blend (engagement);
6. the strategy; 7. the answer (app.serving.answers) and its log row. Every fallback taken is
named in the answer. `predict` shares steps 3-5.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from app import strategies
from app.catalogue import candidates as cand
from app.infra import metrics
from app.serving import knowledge
from app.serving.answers import ModelRef, Prediction, Recommendation
from app.serving.context import RequestContext
from app.serving.pipeline import (
    RecommendationRequest,
    Route,
    explore_rng,
    laid_out,
    learner_state,
    model_for,
    positives,
    score_candidates,
)
from app.serving.pipeline import candidates as find_candidates
from app.serving.pipeline import route as find_route

__all__ = ["RecommendationRequest", "RequestContext", "Served", "predict", "recommend", "serve"]


class Served(NamedTuple):
    answer: Recommendation
    candidates: list[str]       # the items under the request's units
    liked: set[str]             # the learner's positive items among them (only with exclude_positive)


def recommend(ctx: RequestContext, req: RecommendationRequest) -> Recommendation:
    return serve(ctx, req).answer


def serve(ctx: RequestContext, req: RecommendationRequest) -> Served:
    """`recommend`, and what it learned on the way that a caller building on the answer needs
    (app.serving.related.user_top_items), so it is not read twice. The answer is logged to
    `ctx.log` (written off the request path) unless that is None."""
    way = find_route(ctx, req)
    found = find_candidates(ctx, req.units)
    items = found.items
    model = model_for(ctx, req.units, way.strategy, way.tag)
    learner = ctx.learner(req.user_id)

    excluded = list(dict.fromkeys(i for i in req.exclude if i in found.positions))
    liked = {i for i in positives(ctx, learner) if i in found.positions} if req.exclude_positive else set()
    if liked:  # not a pass over every candidate on the /v1 path, where nothing is excluded this way
        excluded += [i for i in items if i in liked and i not in excluded]
    if len(excluded) == len(items):
        chosen, scores, history_rows, fallbacks = [], np.empty(0), 0, ["no_candidates"]
    else:
        chosen, scores, history_rows, fallbacks = _choose(ctx, req, way, found, model, learner, excluded)

    for reason in fallbacks:
        metrics.FALLBACKS.labels(reason).inc()
    wants_probability = way.strategy.needs == strategies.PROBABILITY
    answer = Recommendation(
        request_id=ctx.request_id, user_id=req.user_id, items=[items[i] for i in chosen],
        scores=[float(scores[i]) for i in chosen],
        probabilities=(model is not None and model.objective == "practice") or (model is None and wants_probability),
        model=ModelRef.of(model), strategy=way.strategy.name,
        experiment=req.experiment if way.variant else None,
        variant=way.variant["name"] if way.variant else None, fallbacks=fallbacks, history_rows=history_rows,
        candidates=len(items), explored=way.explore and model is not None and model.objective == "practice")
    if ctx.log is not None:
        ctx.log.add(answer.log_row(ctx.tenant, req.units))
    return Served(answer, items, liked)



def _choose(ctx: RequestContext, req: RecommendationRequest, way: Route, found, model, learner,
            excluded: list[str]) -> tuple[list[int], np.ndarray, int, list[str]]:
    """Score the candidates and let the strategy choose: (positions chosen, scores, history rows
    used, fallbacks)."""
    items = found.items
    wants_probability = way.strategy.needs == strategies.PROBABILITY
    laid = laid_out(ctx, found, model) if model is not None else None
    started = time.perf_counter()
    # Exploring (Thompson sampling): choose as if the learner were a draw from the posterior; the
    # answer still reports the estimate. Seeded by the request id, so a request is reproducible.
    scored_now = score_candidates(ctx, model, items, learner, wants_probability, laid,
                                  explore_rng(ctx.request_id) if way.explore else None)
    fallbacks = list(scored_now.fallbacks)
    choose_by = scored_now.scores if scored_now.explored is None else scored_now.explored
    metrics.LIVE_FIT_SECONDS.labels(model.objective if model else "none").observe(time.perf_counter() - started)
    metrics.CANDIDATES_SCORED.observe(len(items) - len(excluded))
    scored = strategies.Scored(items, choose_by, found.positions, model.unit_vectors if model else None,
                               laid.rows if laid is not None else None,
                               probabilities=wants_probability or model is None)
    if excluded:  # never returned, not even when a strategy relaxes its rules
        scored.allowed = ~scored.mask(excluded)
    state = learner_state(ctx, learner, found)
    if way.strategy.knowledge:   # mastery, review: what the learner knows of each skill under the units
        state.skills = knowledge.skill_states(ctx, learner, req.units, found.positions, way.tag)
    choice = way.strategy(scored, state, req.n, way.params)
    if choice.fallback:
        fallbacks.append(choice.fallback)
    return choice.positions, scored_now.scores, scored_now.history_rows, fallbacks


def predict(ctx: RequestContext, user_id: str, units: list[str], item_ids: list[str],
            tag: str = "default") -> Prediction:
    """Calibrated p(correct) of `user_id` on each of `item_ids` at `ctx.now`, from the practice
    model of the nearest unit at or above `units` fitted live to the learner's current history."""
    cand.check_units(ctx.conn, ctx.tenant, units)
    model = ctx.model(units, "practice", tag)
    learner = ctx.learner(user_id)
    if model is not None:
        ctx.models.cover(ctx.conn, ctx.tenant, model, list(item_ids))
    p, history_rows, fallbacks, _ = score_candidates(ctx, model, list(item_ids), learner, practice=True)
    return Prediction(user_id, list(item_ids), [float(v) for v in p], ModelRef.of(model), list(fallbacks),
                      history_rows)

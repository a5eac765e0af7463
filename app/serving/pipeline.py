"""The steps of a request, each taking and returning typed values (app.serving.recommend chains
them): the route (experiment variant, strategy, model tag), the model, the candidates laid out for
it, the learner, the scores and the learner's state for the strategy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from app import strategies
from app.catalogue import candidates as cand
from app.catalogue import history as hist
from app.errors import InputError
from app.infra import queries as q
from app.online.scoring import CandidateRows, cold_user_scores, engagement_scores, practice_probabilities
from app.serving import experiments, item_learning
from app.serving.learner_fit import practice_inputs

if TYPE_CHECKING:
    from app.catalogue.candidates import Candidates
    from app.online.scoring import ServingModel
    from app.serving.context import Learner, RequestContext


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


@dataclass
class Route:
    """The request after experiment routing: the strategy and its parameters, the model tag."""
    strategy: strategies.Strategy
    params: dict
    tag: str = "default"
    variant: dict | None = None
    explore: bool = False


def route(ctx: RequestContext, req: RecommendationRequest) -> Route:
    strategy, params, tag, variant = req.strategy or "target", {}, "default", None
    if req.experiment:
        exp = experiments.get(ctx.conn, ctx.tenant, req.experiment)
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
    explore = bool(params.pop("explore", False))
    return Route(strategies.get(strategy), params, tag, variant, explore)


def model_for(ctx: RequestContext, units: list[str], strategy: strategies.Strategy, tag: str) -> ServingModel | None:
    """The first kind of model that gives what the strategy needs, of the nearest unit."""
    for objective in strategy.objectives:
        model = ctx.model(units, objective, tag)
        if model is not None:
            return model
    return None


def candidates(ctx: RequestContext, units: list[str]) -> Candidates:
    return cand.resolve(ctx.conn, ctx.tenant, ctx.cache, ctx.candidates, units)


def laid_out(ctx: RequestContext, found: Candidates, model: ServingModel) -> CandidateRows:
    """The candidates laid out for the model, once per candidate list (the list owns its layouts);
    a hybrid model first gives items newer than itself vectors (the model cache owns that)."""
    return found.laid_out(model.model_id, lambda: _lay_out(ctx, model, found.items))


def _lay_out(ctx: RequestContext, model: ServingModel, items: list[str]) -> CandidateRows:
    ctx.models.cover(ctx.conn, ctx.tenant, model, items)
    return model.lay_out(model.rows(items))


def explore_rng(request_id: str) -> np.random.Generator:
    """The draw of an exploring request, fixed by its id."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big"))


def positive(e: hist.Event) -> bool:
    """A positive engagement: any event but an attempt, not marked 0, with no value or one above 0."""
    return e.kind != "attempt" and e.outcome != 0 and (e.value is None or e.value > 0)


def positives(ctx: RequestContext, learner: Learner) -> set[str]:
    """Every item the learner engaged with positively: from the cached history, and from Postgres
    too when that history is cut at its cap (a learner with a long past); read once per request."""
    if learner._positives is None:
        liked = {e.item_id for e in learner.events if positive(e)}
        if learner.long_past:
            liked |= {r["item_id"] for r in q.fetch_all(ctx.conn, "user_positive_items", tenant=ctx.tenant,
                                                        user_id=learner.user_id)}
        learner._positives = liked
    return learner._positives


class CandidateScores(NamedTuple):
    scores: np.ndarray                 # p(correct) (practice, or no model) or a ranking score
    history_rows: int                  # history entries the model used
    fallbacks: list[str]
    explored: np.ndarray | None = None  # p under a posterior draw, when asked to explore (practice)


def fallback_scores(ctx: RequestContext, items: list[str], probabilities: bool) -> np.ndarray:
    """Without a model: each item's smoothed success rate (practice) or attempt count."""
    stats = {r["item_id"]: r for r in q.fetch_all(ctx.conn, "item_success_rates", tenant=ctx.tenant, item_ids=items)}
    attempts = np.array([stats[i]["attempts"] if i in stats else 0 for i in items], dtype=np.float64)
    if not probabilities:
        return attempts
    correct = np.array([stats[i]["correct"] if i in stats else 0 for i in items], dtype=np.float64)
    overall = (correct.sum() + 1.0) / (attempts.sum() + 2.0)
    return (correct + 5.0 * overall) / (attempts + 5.0)


def score_candidates(ctx: RequestContext, model: ServingModel | None, items: list[str], learner: Learner,
                     practice: bool, laid: CandidateRows | np.ndarray | None = None,
                     explore: np.random.Generator | None = None) -> CandidateScores:
    """Scores of `items` for the learner at `ctx.now`.

    laid : the items laid out for the model (laid_out), or their rows in it (-1 when not covered);
        None: looked up here.
    explore : practice models only: also p under a learner vector drawn from the live fit's posterior.
    """
    if model is None:
        return CandidateScores(fallback_scores(ctx, items, practice), 0, ["no_model"])
    laid = model.rows(items) if laid is None else laid
    rows = laid.rows if isinstance(laid, CandidateRows) else laid
    if model.objective == "practice":
        inputs = practice_inputs(ctx, model, learner)
        h = inputs.history
        # recency as the nightly job chose it on dev (no half-life: all attempts weigh the same)
        learned = item_learning.candidate_offsets(ctx, model, items, rows)   # item difficulty since training
        p, inputs.theta, explored = practice_probabilities(model, h.rows, h.outcomes, laid, model.calibration.half_life,
                                                           explore, inputs.prior, h.times, h.now, inputs.theta,
                                                           learned)
        return CandidateScores(p, len(h.rows), [] if len(h.rows) else ["no_history"], explored)
    return _engagement(ctx, model, rows, learner)


def _engagement(ctx: RequestContext, model: ServingModel, rows: np.ndarray, learner: Learner) -> CandidateScores:
    if learner.long_past:  # a long past: every positive, as the nightly model saw them
        liked = [i for i in positives(ctx, learner) if i in model.index]
    else:
        liked = [e.item_id for e in learner.events if positive(e) and e.item_id in model.index]
    fallbacks = []
    if not liked:
        # a hybrid model builds the user from their metadata; else only the item biases rank
        row = q.fetch_one(ctx.conn, "user_attrs", tenant=ctx.tenant, user_id=learner.user_id) \
            if model.user_token_shifts is not None else None
        cold = cold_user_scores(model, row["attrs"] if row else None, rows)
        if cold is not None:
            return CandidateScores(cold, 0, ["metadata"])
        fallbacks.append("no_history")
    p_rows = np.array([model.index[i] for i in liked], dtype=np.int64)
    return CandidateScores(engagement_scores(model, p_rows, rows), len(liked), fallbacks)


def learner_state(ctx: RequestContext, learner: Learner, found: Candidates) -> strategies.LearnerState:
    """Per candidate item, the learner's last interaction and whether ever solved."""
    state = strategies.LearnerState(now=ctx.now)
    for e in learner.events:  # newest first: the first event seen for an item is its last
        state.last.setdefault(e.item_id, (e.kind, e.outcome, e.occurred_at))
        if e.kind == "attempt" and e.outcome == 1:
            state.solved.add(e.item_id)
    if learner.long_past:  # what the learner did before the cached window counts too
        _add_older(ctx, learner, state, found.positions)
    return state


def _add_older(ctx: RequestContext, learner: Learner, state: strategies.LearnerState, candidates) -> None:
    """Complete `state` with the candidates (a container of item ids) the learner touched before
    their cached history, which starts at its oldest event."""
    until = learner.events[-1].occurred_at
    for item_id, kind, outcome, occurred_at, solved in q.fetch_tuples(ctx.conn, "user_items_touched",
                                                                      tenant=ctx.tenant, user_id=learner.user_id,
                                                                      until=until):
        if item_id in candidates:
            state.last.setdefault(item_id, (kind, outcome, occurred_at))
            if solved:
                state.solved.add(item_id)

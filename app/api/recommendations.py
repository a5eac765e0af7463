"""Recommendation endpoints: next items for a learner, personalised top-N, related, trending."""
from __future__ import annotations

from flask import Blueprint

from app import strategies
from app.api.context import request_context
from app.api.query import ids_arg, int_arg
from app.api.schemas import (
    PredictionQuery,
    Predictions,
    Problem,
    RecommendationQuery,
    Recommendations,
    SimilarItems,
    Trending,
)
from app.api.spec import documented, parse_body
from app.catalogue.records import ID_SCHEMA, identifier
from app.errors import InputError
from app.infra import queries as q
from app.serving import related
from app.serving.recommend import RecommendationRequest, predict, recommend

bp = Blueprint("recommendations", __name__)
_ERRORS = {401: Problem, 404: Problem, 422: Problem, 503: Problem}
_UNITS_EXIST = {"units": "every unit named must exist"}
_STRATEGY = {"strategy": f"must name a registered strategy ({', '.join(sorted(strategies.REGISTRY))})"}


def _query_param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_N = _query_param("n", "how many items (1-100, default 10)", {"type": "integer", "minimum": 1, "maximum": 100})
# A comma-separated list (form style, not exploded): units=a,b,c. Repeating units= works too.
_UNITS = {**_query_param("units", "comma-separated unit ids (default: the whole catalogue)",
                         {"type": "array", "minItems": 1, "maxItems": 100,
                          "items": {**ID_SCHEMA, "pattern": r"^[^,\x00-\x1f]+$"}}),
          "style": "form", "explode": False}


@bp.post("/v1/recommendations")
@documented("post", "/v1/recommendations",
            "The next items for a learner, each with its calibrated p(correct) (or score), from a model fitted "
            "live to the learner's history", tag="recommendations", body=RecommendationQuery,
            responses={200: Recommendations, **_ERRORS},
            description="404 when `experiment` names no experiment.",
            unprocessable={**_UNITS_EXIST, **_STRATEGY, "band": "must be [low, high] with low <= high"})
def post_recommendations():
    body = parse_body(RecommendationQuery)
    req = RecommendationRequest(user_id=body.user_id, units=list(dict.fromkeys(body.units)), n=body.n,
                                strategy=body.strategy, target=body.target, band=body.band,
                                exclude=body.exclude, experiment=body.experiment, explore=body.explore)
    ctx = request_context()
    with ctx.conn:
        return recommend(ctx, req).as_json()


@bp.get("/v1/users/<user_id>/recommendations")
@documented("get", "/v1/users/{user_id}/recommendations", "Personalised top-N (strategy top)",
            tag="recommendations", responses={200: Recommendations, **_ERRORS},
            params=[{"name": "user_id", "in": "path", "required": True, "schema": ID_SCHEMA}, _N, _UNITS],
            unprocessable={"units": "every unit named must exist; without `units` the catalogue must have a unit"})
def get_user_recommendations(user_id: str):
    user_id = identifier("user_id", user_id)
    n = int_arg("n", 10, 1, 100)
    ctx = request_context()
    with ctx.conn:
        units = ids_arg("units", 100) or [r["unit_id"] for r in q.fetch_all(ctx.conn, "root_units",
                                                                            tenant=ctx.tenant)]
        if not units:
            raise InputError("the catalogue has no units yet; create units first",
                             [{"field": "units", "message": "no units to recommend from"}])
        req = RecommendationRequest(user_id=user_id, units=units, n=n, strategy="top")
        return recommend(ctx, req).as_json()


@bp.get("/v1/items/<item_id>/similar")
@documented("get", "/v1/items/{item_id}/similar", "Related items: nearest by cosine similarity of item vectors",
            tag="recommendations", responses={200: SimilarItems, **_ERRORS},
            description="The answer lists active items only. A deactivated item is never recommended, but it still "
                        "has neighbours: asking for them is how a platform finds replacements for a retired item, "
                        "so it answers 200 like GET /v1/items/{item_id} does. 404 only for an item never created.",
            params=[{"name": "item_id", "in": "path", "required": True, "schema": ID_SCHEMA}, _N])
def get_similar(item_id: str):
    n = int_arg("n", 10, 1, 100)
    return related.similar_items(request_context(), identifier("item_id", item_id), n)


@bp.get("/v1/trending")
@documented("get", "/v1/trending", "Most-interacted items recently, with exponential decay by age",
            tag="recommendations", responses={200: Trending, **_ERRORS}, unprocessable=_UNITS_EXIST,
            params=[_N, _UNITS,
                    _query_param("days", "window in days (1-365, default 7)",
                                 {"type": "integer", "minimum": 1, "maximum": 365}),
                    _query_param("half_life_days", "decay half-life in days (1-365, default 3)",
                                 {"type": "integer", "minimum": 1, "maximum": 365})])
def get_trending():
    n = int_arg("n", 10, 1, 100)
    days = int_arg("days", 7, 1, 365)
    half_life = int_arg("half_life_days", 3, 1, 365)
    return related.trending(request_context(), n, ids_arg("units", 100), days, float(half_life))


@bp.post("/v1/predictions")
@documented("post", "/v1/predictions",
            "Calibrated p(correct) of a learner on given items, fitted live to their history",
            tag="recommendations", body=PredictionQuery, responses={200: Predictions, **_ERRORS},
            unprocessable=_UNITS_EXIST)
def post_predictions():
    body = parse_body(PredictionQuery)
    ctx = request_context()
    with ctx.conn:
        return predict(ctx, body.user_id, list(dict.fromkeys(body.units)), body.item_ids).as_json()

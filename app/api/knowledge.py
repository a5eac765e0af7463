"""What a learner knows: GET /v1/users/{user_id}/knowledge (app.serving.knowledge does the work)."""
from __future__ import annotations

from flask import Blueprint

from app.api.context import request_context
from app.api.query import ids_arg
from app.api.schemas import Knowledge, Problem
from app.api.spec import documented
from app.catalogue.records import ID_SCHEMA, identifier
from app.serving import knowledge

bp = Blueprint("knowledge", __name__)

_UNITS = {"name": "units", "in": "query", "required": False, "style": "form", "explode": False,
          "description": "comma-separated unit ids (default: the units holding an item the learner attempted)",
          "schema": {"type": "array", "minItems": 1, "maxItems": 100,
                     "items": {**ID_SCHEMA, "pattern": r"^[^,\x00-\x1f]+$"}}}


@bp.get("/v1/users/<user_id>/knowledge")
@documented("get", "/v1/users/{user_id}/knowledge",
            "What a learner knows: per unit and each skill below it, p(correct) now with a 90 % interval, "
            "attempts, mastered and when it is due for review", tag="recommendations",
            responses={200: Knowledge, 401: Problem, 404: Problem, 422: Problem, 503: Problem},
            params=[{"name": "user_id", "in": "path", "required": True, "schema": ID_SCHEMA}, _UNITS],
            description="A learner with no history gets the model's prior (and no units by default). Per-unit "
                        "settings live in the unit's attrs: `{\"mastery\": {\"threshold\": 0.8, \"review\": 0.7, "
                        "\"ordered\": false}}` (thresholds not set take the nearest unit's above; `ordered`: the "
                        "`mastery` strategy takes the children in id order). 404 only for an operator key naming an "
                        "unknown tenant: a user without history is answered like any other.",
            unprocessable={"units": "every unit named must exist, and together they must hold at most 1000 units "
                                    "with items"})
def get_knowledge(user_id: str):
    user_id = identifier("user_id", user_id)
    units = ids_arg("units", 100)
    ctx = request_context()
    with ctx.conn:
        return knowledge.knowledge(ctx, user_id, list(dict.fromkeys(units)) if units else None)

"""Event ingest: one interaction or a batch, idempotent by event_id."""
from __future__ import annotations

from flask import Blueprint
from pydantic import ValidationError

from app.api.context import current_tenant, get_cache, get_conn, request_context
from app.api.schemas import IngestResult, InteractionBatch, Problem
from app.api.spec import documented, request_json, validation_problem
from app.catalogue.ingest import record_interactions
from app.catalogue.records import Interaction
from app.errors import InputError
from app.infra import metrics
from app.serving import item_learning

bp = Blueprint("interactions", __name__)


@bp.post("/v1/interactions")
@documented("post", "/v1/interactions",
            "Record one interaction, or a batch as {\"interactions\": [...]}; a repeated event_id is stored once",
            tag="interactions", body=Interaction | InteractionBatch,
            responses={201: IngestResult, 200: IngestResult, 401: Problem, 413: Problem, 415: Problem, 422: Problem},
            unprocessable={"item_id": "every item named must exist (users are created on first sight)"})
def post_interactions():
    data = request_json()
    if not isinstance(data, dict):
        raise InputError(f"the body must be a JSON object, not {type(data).__name__}")
    try:
        if "interactions" in data:
            events = InteractionBatch.model_validate(data).interactions
        else:
            events = [Interaction.model_validate(data)]
    except ValidationError as exc:
        raise validation_problem(exc) from None
    results = record_interactions(get_conn(), current_tenant(), get_cache(), events)
    item_learning.learn(request_context(), events, results)   # the items' difficulty, between trainings
    created = sum(1 for _, status in results if status == "created")
    metrics.INGESTED.labels("created").inc(created)
    metrics.INGESTED.labels("duplicate").inc(len(results) - created)
    body = {"created": created, "duplicates": len(results) - created,
            "events": [{"event_id": e, "status": s} for e, s in results]}
    # 201 when anything new was stored; 200 when the whole request was a retry.
    return body, (201 if created else 200)

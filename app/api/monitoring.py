"""GET /metrics: Prometheus exposition of every worker (open, like the health checks: it carries
no ids of learners and no secrets; keep it on the internal network)."""
from __future__ import annotations

from flask import Blueprint, Response

from app.api.context import services
from app.api.spec import documented
from app.infra import metrics

bp = Blueprint("monitoring", __name__)


@bp.get("/metrics")
@documented("get", "/metrics", "Prometheus metrics (text exposition format)", tag="meta", public=True,
            responses={200: str})
def get_metrics():
    body, content_type = metrics.render(services().pool)
    return Response(body, content_type=content_type)

"""The dashboard's experiment page keeps its judgement by learning in Redis for a minute (the
endpoint's SQL and resampling take seconds on a large experiment), forgets it when the experiment
is started or stopped, and computes it every time when Redis is down. Real Postgres and Redis, on
test_experiment_results' experiment."""
from __future__ import annotations

from app.catalogue.ingest import record_interactions
from app.catalogue.records import Interaction
from app.dashboard import experiments as dash_experiments
from app.infra.cache import Cache
from app.serving.context import RequestContext
from tests.service.test_experiment_results import at, experiment  # noqa: F401  (the fixture)


def context(app, conn, cache) -> RequestContext:
    return RequestContext(conn, "default", cache, app.extensions["adaptrec"].models)


def test_the_page_keeps_its_results_for_a_minute_and_forgets_them_on_start_or_stop(app, conn, experiment):  # noqa: F811
    cache = app.extensions["adaptrec"].cache
    first = dash_experiments.learning(context(app, conn, cache), "exp")
    assert cache.client.ttl(cache.key("expres", "default", "exp")) > 50
    # b1 now answers wrongly many times: fresh results would change, the kept ones do not
    record_interactions(conn, "default", cache, [
        Interaction(event_id=f"late-{k}", user_id="b1", item_id="i4", outcome=0, occurred_at=at(10 + k))
        for k in range(20)], now=at(days=30))
    kept = dash_experiments.learning(context(app, conn, cache), "exp")
    assert kept == first
    dash_experiments.forget_results(cache, "default", "exp")
    fresh = dash_experiments.learning(context(app, conn, cache), "exp")
    assert fresh["computed_at"] > first["computed_at"]
    assert [m["chart"] for m in fresh["measures"]] != [m["chart"] for m in first["measures"]]


def test_without_redis_the_page_computes_its_results_every_time(app, conn, experiment, redis_prefix):  # noqa: F811
    down = Cache("redis://127.0.0.1:1/0", redis_prefix + "down:")
    one = dash_experiments.learning(context(app, conn, down), "exp")
    two = dash_experiments.learning(context(app, conn, down), "exp")
    assert one["verdict"] == two["verdict"] and two["computed_at"] > one["computed_at"]

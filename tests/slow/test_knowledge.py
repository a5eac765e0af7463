"""What a learner knows, on a trained demo: each learner's estimate follows their answers. (The numbers,
the endpoint, the strategies and the snapshot on a course of known parameters:
tests/service/test_knowledge.py.)"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from app.serving.context import RequestContext
from app.serving.knowledge import knowledge


def test_on_the_trained_demo_knowledge_follows_each_learners_answers(servers, settings):
    import psycopg2

    from app.infra.cache import Cache
    from app.serving.model_cache import ModelCache
    from harness.databases import scratch_database
    from jobs.demo import REFERENCE_TIME, DemoConfig, generate_demo
    from jobs.train import TrainConfig, run_training

    with scratch_database(servers[0], "adaptrec_knowledge") as url:
        conn = psycopg2.connect(url)
        try:
            generate_demo(conn, DemoConfig(seed=9, learners=400, attempts=40_000, engagements=0))
            report = run_training(url, TrainConfig(max_trials=1, max_eval_users=60), units=["demo"], progress=False)
            assert "activated" in {o.status for o in report.outcomes}, report.table()
            now = datetime.fromisoformat(REFERENCE_TIME).replace(tzinfo=UTC) + timedelta(days=1)
            cache, models = Cache(settings.redis_url, settings.redis_prefix), ModelCache()
            with conn.cursor() as cur:
                cur.execute("""SELECT i.user_id, ui.unit_id, count(*), avg(i.outcome)
                               FROM interactions i JOIN unit_items ui USING (tenant, item_id)
                               WHERE i.kind = 'attempt' GROUP BY 1, 2 HAVING count(*) >= 8""")
                practised = cur.fetchall()
            conn.rollback()
            learners = sorted({r[0] for r in practised})[:40]
            rates, ps = [], []
            for user in learners:
                ctx = RequestContext(conn, "default", cache, models, now=now)
                found = {u["unit_id"]: u for u in knowledge(ctx, user, None)["units"]}
                for user_id, unit_id, attempts, rate in practised:
                    if user_id == user:
                        k = found[unit_id]
                        assert k["attempts"] == attempts and k["low"] < k["p"] < k["high"]
                        assert k["mastered"] == (k["low"] >= 0.8)
                        rates.append(float(rate))
                        ps.append(k["p"])
            assert len(ps) >= 40
            rank = np.argsort(np.argsort(ps)), np.argsort(np.argsort(rates))
            assert np.corrcoef(*rank)[0, 1] > 0.5      # who answers a skill well is estimated to know it
        finally:
            conn.close()

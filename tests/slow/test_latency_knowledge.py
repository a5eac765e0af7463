"""bench.latency's knowledge phase on a trained demo: the units and learners it picks, and its
in-process floor (app.serving.knowledge.knowledge timed and profiled against real Postgres).
(The phases' requests and targets: tests/unit/test_latency_bench.py.)"""
from __future__ import annotations

from urllib.parse import unquote


def test_the_knowledge_phase_picks_the_most_attempted_skills_and_long_histories(servers):
    import psycopg2

    from bench.request_mix import MixRequests, knowledge_floor, knowledge_target
    from harness.databases import scratch_database
    from jobs.demo import DemoConfig, generate_demo
    from jobs.train import TrainConfig, run_training

    with scratch_database(servers[0], "adaptrec_latency_knowledge") as url:
        conn = psycopg2.connect(url)
        try:
            generate_demo(conn, DemoConfig(seed=4, learners=120, attempts=12_000, engagements=0))
            report = run_training(url, TrainConfig(max_trials=1, max_eval_users=40), units=["demo"], progress=False)
            assert "activated" in {o.status for o in report.outcomes}, report.table()
            with conn.cursor() as cur:
                cur.execute("SELECT user_id, count(*) FROM interactions WHERE kind = 'attempt' GROUP BY 1")
                counts = dict(cur.fetchall())
                cur.execute("""SELECT ui.unit_id, count(*) FROM unit_items ui JOIN interactions x
                               USING (tenant, item_id) GROUP BY 1 ORDER BY 2 DESC, 1""")
                by_unit = cur.fetchall()
            conn.rollback()
            learners = sorted(counts) + ["never-seen"]
            long = sorted(u for u, c in counts.items() if c >= 100)
            found = knowledge_target(conn, "default", learners, skills=5, history=100, exclude=(by_unit[0][0],))
            assert found["learners"] == long and long
            assert found["skills"] == [u for u, _ in by_unit[1:6]]   # the most attempted, the excluded one left out

            floor = knowledge_floor(url, "default", found["skills"], found["learners"], samples=15)
            assert floor["samples"] == 15 and floor["units_answered"] >= 5
            assert 0 < floor["wall_ms"]["p50"] <= floor["wall_ms"]["p99"] and floor["cpu_ms"]["mean"] > 0
            profile = floor["profile"]
            assert 0 < profile["share_in_postgres_execute"] < 1 and len(profile["top_by_own_time"]) == 20

            method, path, _ = MixRequests("knowledge", found["learners"], found["skills"], "default", miss=0.0)(0)
            user, query = path.removeprefix("/v1/users/").split("/knowledge?units=")
            assert method == "GET" and unquote(user) in long
            assert [unquote(u) for u in query.split(",")] == found["skills"]
        finally:
            conn.close()

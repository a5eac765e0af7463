"""How long GET /v1/experiments/{name}/results takes to compute (issue 27: under 2 s for an
experiment of 2,000 learners and 200,000 attempts).

    python -m bench.experiment_results [--learners 2000] [--attempts 200000] [--items 500]
                                       [--units 10] [--repeat 5] [--json OUT]

Prepares a scratch database (adaptrec_bench_<random>) on ADAPTREC_DATABASE_URL's server when set,
else on the embedded servers: units of items, a 1PL practice model active before the experiment,
an experiment of two variants, each learner's answers logged in it and their attempts spread over
30 days (generated in SQL); then times app.serving.experiment_results.results, the endpoint's
whole work but HTTP (SQL, the frozen model, the bootstrap of 1,000 resamples per variant), once
with a cold model cache and `--repeat` times warm; reports every time, and drops the database.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

import numpy as np

from app.config import Settings
from app.model import store as modelstore
from app.model.artifact import Embedding, ModelArtifact
from app.serving.context import RequestContext
from app.serving.experiment_results import results
from app.serving.model_cache import ModelCache
from cli.embedded import servers_for
from harness.databases import connected_scratch_database
from harness.measure import percentile
from harness.report import emit, header, teller

say = teller("bench.experiment_results")
START = datetime(2026, 1, 5, tzinfo=UTC)


def prepare(conn, learners: int, attempts: int, items: int, units: int, seed: int) -> int:
    """The catalogue, the frozen model, the experiment, its log and the attempts; returns the model id."""
    rng = np.random.default_rng(seed)
    biases = rng.normal(0.0, 1.0, items)
    ids = [f"q{k}" for k in range(items)]
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO units (tenant, unit_id) SELECT 'default', 'course' UNION ALL "
                    "SELECT 'default', 'u' || g FROM generate_series(0, %s - 1) g", (units,))
        cur.execute("INSERT INTO unit_children (tenant, parent, child) "
                    "SELECT 'default', 'course', 'u' || g FROM generate_series(0, %s - 1) g", (units,))
        cur.execute("INSERT INTO items (tenant, item_id) SELECT 'default', 'q' || g FROM generate_series(0, %s - 1) g",
                    (items,))
        cur.execute("INSERT INTO unit_items (tenant, unit_id, item_id) "
                    "SELECT 'default', 'u' || (g %% %s), 'q' || g FROM generate_series(0, %s - 1) g", (units, items))
        cur.execute("INSERT INTO users (tenant, user_id) SELECT 'default', 'l' || g FROM generate_series(0, %s - 1) g",
                    (learners,))
        artifact = ModelArtifact.from_json(
            Embedding(ids, np.zeros((items, 1)), biases, np.zeros(2), np.diag([0.01, 1.0])),
            {"a": 1.0, "b": 0.0}, {}, "practice")
        model_id = modelstore.save_model(conn, "default", artifact, modelstore.ModelMeta("course", "practice", "mf"))
        modelstore.activate(conn, "default", model_id)
        cur.execute("UPDATE models SET activated_at = %s WHERE model_id = %s", (START, model_id))
        cur.execute("INSERT INTO experiments (tenant, name, variants, created_at) VALUES ('default', 'bench', "
                    "'[{\"name\": \"a\", \"weight\": 1}, {\"name\": \"b\", \"weight\": 1}]', %s)", (START,))
        cur.execute("INSERT INTO experiment_versions (tenant, name, version, variants, started_at) "
                    "SELECT tenant, name, 1, variants, created_at FROM experiments")
        per = attempts // learners
        # one answer per learner a minute after the start, listing 5 items; variant by parity
        cur.execute("SELECT setseed(%s)", (seed / 2**31,))
        cur.execute("""
            INSERT INTO recommendation_log (tenant, request_id, user_id, units, experiment, variant, strategy,
                                            item_ids, scores, created_at)
            SELECT 'default', 'r' || g, 'l' || g, ARRAY['course'], 'bench', CASE WHEN g %% 2 = 0 THEN 'a' ELSE 'b' END,
                   'target', ARRAY(SELECT 'q' || ((g * 7 + k) %% %(items)s) FROM generate_series(0, 4) k),
                   ARRAY[0.7, 0.7, 0.7, 0.7, 0.7]::real[], %(start)s + interval '1 minute'
            FROM generate_series(0, %(learners)s - 1) g""",
                    {"items": items, "learners": learners, "start": START})
        # each learner's attempts over 30 days, random items, right with a learner-specific rate
        cur.execute("""
            INSERT INTO interactions (tenant, user_id, event_id, item_id, kind, outcome, occurred_at)
            SELECT 'default', 'l' || g, 'e' || g || '-' || k, 'q' || floor(random() * %(items)s)::int, 'attempt',
                   (random() < 0.5 + 0.3 * ((g %% 10) / 10.0))::int,
                   %(start)s + interval '2 minutes' + k * (interval '30 days' / %(per)s)
            FROM generate_series(0, %(learners)s - 1) g, generate_series(0, %(per)s - 1) k""",
                    {"items": items, "learners": learners, "per": per, "start": START})
        cur.execute("ANALYZE")
    return model_id


def measure(conn, repeat: int) -> dict:
    models = ModelCache()
    times, answer = [], None
    for k in range(repeat + 1):
        ctx = RequestContext(conn, "default", None, models)
        started = time.perf_counter()
        answer = results(ctx, "bench").as_json()
        times.append(time.perf_counter() - started)
        conn.rollback()
        say(f"run {k}: {times[-1]:.3f} s")
    warm = times[1:]
    return {"cold_s": round(times[0], 3), "warm_s": [round(t, 3) for t in warm],
            "warm_median_s": round(percentile(warm, 50), 3) if warm else None,
            "learners": sum(v["learners"] for v in answer["variants"]),
            "attempts": sum(v["attempts"] for v in answer["variants"]), "verdict": answer["verdict"]}


def run(args: argparse.Namespace, database_url: str) -> dict:
    result = {**header(), "bench": "experiment_results", "learners": args.learners, "attempts": args.attempts,
              "items": args.items, "units": args.units, "repeat": args.repeat}
    with connected_scratch_database(database_url, "adaptrec_bench") as (_, conn):
        started = time.perf_counter()
        prepare(conn, args.learners, args.attempts, args.items, args.units, args.seed)
        say(f"prepared in {time.perf_counter() - started:.1f} s")
        result.update(measure(conn, args.repeat))
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.experiment_results", description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--attempts", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="warm runs after the cold one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write the result to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configured = os.environ.get("ADAPTREC_DATABASE_URL")
    if configured:
        result = run(args, configured)
    else:
        with servers_for(Settings.from_env()) as settings:
            result = run(args, settings.database_url)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

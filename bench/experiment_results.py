"""How long GET /v1/experiments/{name}/results takes to compute (issue 27: under 2 s for an
experiment of 2,000 learners and 200,000 attempts).

    python -m bench.experiment_results [--learners 2000] [--attempts 200000] [--items 500]
                                       [--units 10] [--repeat 5] [--skew 0.05] [--json OUT]

Prepares a scratch database (adaptrec_bench_<random>) on ADAPTREC_DATABASE_URL's server when set,
else on the embedded servers: units of items, a 1PL practice model active before the experiment,
an experiment of two variants, each learner's answers logged in it and their attempts spread over
30 days (generated in SQL); then times app.serving.experiment_results.results, the endpoint's
whole work but HTTP (SQL, the frozen model, the bootstrap of 1,000 resamples per variant), once
with a cold model cache and `--repeat` times warm; reports every time, and drops the database.

Learners are routed by the service's own rule (app.serving.experiments.assign: SHA-256 of the
experiment and the learner, onto the weights). `--skew F` breaks the routing as a faulty worker or
cache would: a share F of the learners routed to b is logged under a instead, and the report says
whether the sample-ratio-mismatch guardrail flagged it (issue 27: it must, for a 5 % skew, at a
size where a chi-square test can see it: `--learners 20000 --attempts 200000 --skew 0.05`).
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
from app.serving.experiments import assign
from app.serving.model_cache import ModelCache
from cli.embedded import servers_for
from harness.databases import connected_scratch_database
from harness.measure import percentile
from harness.report import emit, header, teller

say = teller("bench.experiment_results")
START = datetime(2026, 1, 5, tzinfo=UTC)


VARIANTS = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]


def routed(learners: int, skew: float, rng: np.random.Generator) -> list[str]:
    """Each learner's logged variant: the service's routing, then a share `skew` of b's moved to a."""
    variants = [assign("bench", f"l{g}", VARIANTS)["name"] for g in range(learners)]
    moved = rng.random(learners) < skew
    return ["a" if v == "b" and m else v for v, m in zip(variants, moved)]


def prepare(conn, learners: int, attempts: int, items: int, units: int, seed: int, skew: float = 0.0) -> int:
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
        # one answer per learner a minute after the start, listing 5 items, in the variant routed
        cur.execute("SELECT setseed(%s)", (seed / 2**31,))
        cur.execute("""
            INSERT INTO recommendation_log (tenant, request_id, user_id, units, experiment, variant, strategy,
                                            item_ids, scores, created_at)
            SELECT 'default', 'r' || g, 'l' || g, ARRAY['course'], 'bench', v.variant,
                   'target', ARRAY(SELECT 'q' || ((g * 7 + k) %% %(items)s) FROM generate_series(0, 4) k),
                   ARRAY[0.7, 0.7, 0.7, 0.7, 0.7]::real[], %(start)s + interval '1 minute'
            FROM unnest(%(variants)s::text[]) WITH ORDINALITY AS v (variant, n), LATERAL (SELECT v.n - 1 AS g) l""",
                    {"items": items, "start": START, "variants": routed(learners, skew, rng)})
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
            "attempts": sum(v["attempts"] for v in answer["variants"]), "verdict": answer["verdict"],
            "learners_per_variant": {v["variant"]: v["learners"] for v in answer["variants"]},
            "sample_ratio_mismatch": answer["guardrails"]["sample_ratio_mismatch"]}


def run(args: argparse.Namespace, database_url: str) -> dict:
    result = {**header(), "bench": "experiment_results", "learners": args.learners, "attempts": args.attempts,
              "items": args.items, "units": args.units, "repeat": args.repeat, "skew": args.skew}
    with connected_scratch_database(database_url, "adaptrec_bench") as (_, conn):
        started = time.perf_counter()
        prepare(conn, args.learners, args.attempts, args.items, args.units, args.seed, args.skew)
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
    parser.add_argument("--skew", type=float, default=0.0,
                        help="share of the learners routed to b logged under a (a broken routing; default 0)")
    parser.add_argument("--json", metavar="OUT", help="also write the result to this file")
    args = parser.parse_args(argv)
    if not 0.0 <= args.skew < 1.0:
        parser.error(f"--skew must be in [0, 1), got {args.skew}")
    if args.learners < 1 or args.attempts < args.learners:
        parser.error("--learners must be at least 1 and --attempts at least --learners")
    return args


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

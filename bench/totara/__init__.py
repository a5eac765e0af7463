"""Totara drop-in: the quality and the speed of GET /user-items and /similar-items as Totara calls them.

    python -m bench.totara [--quality] [--speed] [--modes full mf] [--data ../shared/data/ml-100k]
                           [--no-component-columns] [--speed-data movielens|fixture] [--rate 200]
                           [--seconds 20] [--json OUT]

QUALITY, per training mode (--modes, default full: Totara's default). MovieLens-100k becomes a Totara export
with one tenant, 0: item_data_0.csv holds every movie as `engage_article{id}` (the five one-hot component
columns, one-hot `topic_<Genre>` columns, `document` = the title with commas and quotes scrubbed, as Totara's
exporter writes it; --no-component-columns leaves the five component columns out, so the component is only in
the ids, as in issue 28's export); user_data_0.csv holds lang (always en), gender, occupation and an age group;
user_interactions_0.csv rates 4-5 stars 1, else 0. The split is seeded (numpy default_rng(seed)): 15 % of the
users are COLD (their user_data row is written, none of their ratings), and of every other user 20 % of their
4-5 star ratings are held out; held-out rows are never written. Then the product's own path:
jobs.importers.run_import (format totara, the mode ADAPTREC_TOTARA_MODE would set), jobs.train.run_training
over every tenant (`adaptrec train --all`; TrainConfig defaults but --seed, --threads), and the service as
`adaptrec serve` runs it (harness.service: gunicorn, 2 workers), asked GET
/user-items?item_type=engage_article&n_items=10 once for every user with a held-out positive, one request after
another, signed as Totara signs. precision@10, recall@10 and NDCG@10 (jobs.training.metrics' definitions; a
short answer misses at the places it lacks) against the held-out positives, beside, on the same users and
split: the stored model scored offline from all the user's exported positives (bench.topn_job.serving_scores,
the service's own engagement_scores) with every exported item of the user excluded, as the service's `top`
strategy excludes them ("the nightly model's figure for the same split"; also with only the positives excluded,
jobs.training.engagement_fit.evaluate's rule); popularity (most exported positives, the user's items excluded); and the
job's own figure from models.metrics, which is on a DIFFERENT split (20 % of the pairs it was given, before its
refit). Differences carry a 95 % interval from a paired bootstrap over users. Cold users with a 4-5 star rating
ask the same; their answers are compared with popularity by exported positives and by exported interactions.
Nothing is tuned (product defaults; in mf the job's own grid on its own validation pairs), so there is no dev
split and the test split is scored once.
SPEED: the MovieLens export (the same split, mode full) or the fixture tests/fixtures/totara_export
(--speed-data) imported and trained in a scratch database, gunicorn started as above (one BLAS thread per
worker); a separate process sends signed GETs open-loop at --rate for --seconds per phase after --warmup
(latency from the scheduled send time, as bench.latency; a fresh signature per request): /user-items of users
with a history, /user-items of users without one (the popularity path), /similar-items of random items, and
/healthz as the floor. The answer for users without history is cached for 60 s (app.serving.related.TRENDING_TTL_S),
so a phase covers an expiry or not by its timing; each phase says when it started. Reported: p50/p90/p99/max,
errors, server CPU per request (gunicorn workers, Postgres backends, Redis), the access log's own durations and
statuses, the workers' memory, the load average and the busiest processes before. Target: p99 <= 25 ms at 200
requests/s. Prints one JSON object; --json also writes it.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.totara.export import COLD_USERS, DEFAULT_DATA, HOLD_OUT, MIN_RATING, read_movielens, split
from bench.totara.quality import bench_quality_mode
from bench.totara.speed import bench_speed
from harness.measure import add_settle_arguments
from harness.report import emit, header, teller


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.totara", description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true", help="run the quality part (default: both parts)")
    parser.add_argument("--speed", action="store_true", help="run the speed part (default: both parts)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the MovieLens-100k folder")
    parser.add_argument("--modes", nargs="+", default=["full"], choices=("mf", "partial", "full"),
                        help="training modes of the quality part (default: full, Totara's default)")
    parser.add_argument("--no-component-columns", action="store_true",
                        help="quality part: item_data without the component columns (the component only in the ids)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the job's seed")
    parser.add_argument("--threads", type=int, default=1, help="LightFM threads of the job (1 = reproducible)")
    parser.add_argument("--speed-data", choices=("movielens", "fixture"), default="movielens")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of each speed phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per speed phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each speed phase")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--client-threads", type=int, default=64, help="threads of the load process")
    add_settle_arguments(parser, "before the speed phases", 1.0, 60.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.quality or args.speed):
        args.quality = args.speed = True
    if (args.quality or args.speed_data == "movielens") and not (args.data / "u.data").is_file():
        parser.error(f"{args.data}: no MovieLens-100k here (u.data); pass --data")
    return args


@dataclass
class MovieLens:
    """MovieLens-100k and its split (bench.totara.export); all None when neither part needs it."""
    ratings: np.ndarray | None = None
    movies: list | None = None
    users: list | None = None
    cold: np.ndarray | None = None
    held: np.ndarray | None = None


def prepare(args, result: dict) -> MovieLens:
    """MovieLens read and split, for the quality part and the speed part's data; the split in `result`."""
    if not (args.quality or args.speed_data == "movielens"):
        return MovieLens()
    ratings, movies, users = read_movielens(args.data)
    cold, held = split(ratings, args.seed)
    result["data"] = os.path.abspath(args.data)
    result["split"] = {"cold_users": len(cold), "cold_share": COLD_USERS, "hold_out_per_user": HOLD_OUT,
                       "held_out_rows": int(held.sum()), "positives": f"ratings >= {MIN_RATING}",
                       "tuned": "nothing: product defaults, so no dev split; the test split is scored once"}
    return MovieLens(ratings, movies, users, cold, held)


def measure(args, data: MovieLens, result: dict, say) -> None:
    """The quality part per mode and the speed part, on the configured (or embedded) servers."""
    from app.config import Settings
    from cli.embedded import servers_for

    parts = (data.ratings, data.movies, data.users, data.cold, data.held)
    with servers_for(Settings.from_env()) as settings:
        if args.quality:
            result["quality"] = {mode: bench_quality_mode(settings.database_url, settings, *parts, mode, args, say)
                                 for mode in args.modes}
        if args.speed:
            result["speed"] = bench_speed(settings.database_url, settings, *parts, args, say)


def report(args, result: dict, started: float) -> None:
    """The whole run's seconds, and the JSON."""
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.json)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    result = header() | {"seed": args.seed, "threads": args.threads,
                         "component_columns": not args.no_component_columns}
    data = prepare(args, result)
    measure(args, data, result, teller("bench.totara"))
    report(args, result, started)
    return 0

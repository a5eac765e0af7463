"""Serving latency under load: `python -m bench.latency --json OUT [--seconds S] [--url URL --key KEY]`.

1. Setup (skipped with --url): a scratch database on the configured (or embedded) servers; the
   ASSISTments 2009 attempts imported; the root unit `assistments` trained (practice model,
   TrainConfig(max_trials=1): one hyperparameter trial, for speed; the serving cost does not
   depend on the trial count). A unit `bench-5k` of the 5,000 most attempted items is created
   as a child of `assistments` (so the root model, the nearest unit above, serves it). The
   learners of the mix (bench/request_mix.py): 10,000 by default, every real learner plus copies
   of real histories, 5 % with no history; histories of 0 to 500 attempts, most short, a tail at
   the cap. MovieLens 100K is imported as tenant `movies` and trained: the top-N phase's data.
   The in-process floor: the live fit + scores of the 5,000 candidates on histories of the mix;
   and the knowledge phase's (`knowledge_floor`): app.serving.knowledge.knowledge of its unit for
   its learners, queries included, timed and then profiled (cProfile: the top functions and the
   share of the time waiting on Postgres).
2. The service: the same server command `adaptrec serve` builds (gunicorn unless --server) (workers, worker class and
   access log as configured there, logs to a file), started as a separate process on a free
   port with OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 (BLAS threads would make 2 workers
   fight over 2 cores), a Redis key prefix of its own; then /readyz is awaited and every
   learner's history is cached in Redis.
3. The load: a SEPARATE process (multiprocessing, spawn) sends requests open-loop at a fixed
   rate: request i is scheduled at start + i / rate and its latency is measured from that
   scheduled time, not from when it was actually sent (no coordinated omission); a pool of
   client threads, each with its own http.client connection, kept alive between requests as a
   backend's connection pool does (when the server keeps it open), or a new connection per
   request in the `_new_connection` phases. Phases, each after a short unmeasured warm-up:
     recommend      POST /v1/recommendations {user_id, units: [bench-5k], n: 10, strategy: target},
                    a learner of the mix drawn uniformly; 20 % of requests (--miss) first delete
                    that learner's history from Redis, so the service reads it from Postgres
     recommend_new_connection   the same, a new connection per request
     topn           GET /v1/users/{id}/recommendations?units=movielens&n=10 on tenant `movies`
                    (the engagement model's top-N), MovieLens users, 20 % evicted likewise
     ingest_single  POST /v1/interactions, one attempt of a synthetic learner on a bench-5k item
     ingest_batch   POST /v1/interactions, {"interactions": [100 attempts]} (--batch-rate, default 20/s)
     similar        GET /v1/items/{id}/similar?n=10 for random bench-5k items
     knowledge      GET /v1/users/{id}/knowledge?units=bench-20-skills at --knowledge-rate (200/s):
                    a unit made a child of the root with the 20 most attempted skills as its
                    children (the answer: 21 units), a learner of the mix with a history at the
                    500-attempt cap drawn uniformly, --miss of them evicted likewise (with
                    --database: the 20 skills named in `units`, nothing written)
     mastery, review   the recommend phase's requests with strategy `mastery` / `review` (the same
                    learners, unit and evictions; bench-5k holds its items itself, so it is one skill
                    to these strategies)
     healthz, healthz_new_connection   GET /healthz: the HTTP stack's own cost (--no-baseline skips)
   then a search for the highest recommend rate whose p99 stays under 25 ms without errors
   (--search-start, --search-step: 200, 300, 400, ... until a step fails; the highest passing).
   Each measured phase also reports the CPU time per request of the gunicorn workers, of the
   Postgres backends of the scratch database and of the Redis server (from /proc), and of the
   load generator itself.
4. The resident memory (VmRSS) of each gunicorn worker at the end.
5. One JSON object (printed, and written to --json), with `ratios` (the service over its floors)
   and `targets`.
With --servers gunicorn,granian (issue 29), steps 2 to 4 run for each server in turn, --rounds
times, interleaved, on the one setup: `runs` holds each, `servers` the medians per server and the
targets of issue 29 (bench/latency/servers.py). --server picks the one server of a plain run.

Targets (issue 26): the knowledge endpoint p50 <= 5 ms at 200/s; the mastery and review
strategies within the recommendation budget (p50 <= 3 ms, p99 <= 15 ms at 400/s).
Targets (issue 13): recommendations p50 <= 3 ms and p99 <= 15 ms at 400 requests/s; highest rate
with p99 < 25 ms >= 500/s; worker CPU per recommendation <= 2 ms; and within the same run:
recommendation p50 <= 1.3 x /healthz p50, worker CPU <= 2 x the in-process fit + score, /healthz
<= 0.5 ms of worker CPU, highest rate >= 2 x --before-max-rate; under 300 MB per worker.
"""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from bench.latency.phases import PHASE_SPECS, run_phases
from bench.latency.report import ratios, targets
from bench.latency.setup import DEFAULT_DATA, DEFAULT_MOVIELENS, UNIT_ID, Target, prepare
from harness.measure import add_settle_arguments, child_pids, loadavg, proc_rss_mb, rss_of, settle
from harness.report import emit, header, teller


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s of every phase but ingest_batch "
                                                                   "(default 400)")
    parser.add_argument("--batch-rate", type=float, default=20.0, help="requests/s of ingest_batch (100 events each)")
    parser.add_argument("--knowledge-rate", type=float, default=200.0, help="requests/s of knowledge (default 200)")
    parser.add_argument("--search-start", type=float, default=200.0)
    parser.add_argument("--search-step", type=float, default=100.0)
    parser.add_argument("--search-limit", type=float, default=2000.0, help="highest rate tried (0: no search)")
    parser.add_argument("--search-seconds", type=float, default=None,
                        help="seconds per search step (default --seconds)")
    parser.add_argument("--phases", type=lambda text: [p for p in text.split(",") if p],
                        help=f"only these fixed-rate phases, comma-separated (of {', '.join(PHASE_SPECS)}); "
                             f"'' for none (the rate search only)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the /healthz phases (the HTTP stack's own cost, for comparison)")
    parser.add_argument("--server", choices=("gunicorn", "granian"), default=None,
                        help="the HTTP server to start (default ADAPTREC_SERVER or gunicorn)")
    parser.add_argument("--servers", type=lambda text: [p for p in text.split(",") if p],
                        help="compare these servers (e.g. gunicorn,granian) on one setup, interleaved "
                             "(bench/latency/servers.py)")
    parser.add_argument("--rounds", type=int, default=2, help="with --servers: rounds of each server (default 2)")
    parser.add_argument("--gunicorn-args", default="",
                        help="extra gunicorn arguments, for experiments (e.g. \"--worker-class gthread --threads 2\")")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the load process")
    parser.add_argument("--workers", type=int, default=2, help="server workers")
    parser.add_argument("--learners", type=int, default=10_000, help="learners of the mix (default 10,000)")
    parser.add_argument("--new-share", type=float, default=0.05, help="share of learners with no history (0.05)")
    parser.add_argument("--miss", type=float, default=0.2,
                        help="share of recommendations whose history is first evicted from Redis (0.2)")
    parser.add_argument("--floor-samples", type=int, default=2000, help="histories of the in-process floor")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ASSISTments attempts file")
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS,
                        help="MovieLens 100K folder: the tenant of the top-N phase")
    parser.add_argument("--no-topn", dest="topn", action="store_false", help="skip the top-N (engagement) phase")
    parser.add_argument("--before-max-rate", type=float,
                        help="the highest passing rate of the code before a change, measured the same day: "
                             "the target is twice that")
    add_settle_arguments(parser, "before measuring", 0.6, 180.0)
    parser.add_argument("--url", help="benchmark a running service instead (no setup, no history evictions)")
    parser.add_argument("--key", help="API key of --url")
    parser.add_argument("--unit", default=UNIT_ID, help="with --url or --database: the unit to ask for")
    parser.add_argument("--database", help="use this database, already imported and trained (e.g. the scale run's), "
                                           "instead of a scratch one with ASSISTments; learners drawn from it; "
                                           "no top-N phase")
    parser.add_argument("--user", action="append", default=[], help="with --url: a user with a history (repeatable)")
    parser.add_argument("--gunicorn-pid", type=int, help="with --url: gunicorn master pid, for the workers' memory")
    return checked(parser, parser.parse_args(argv))


def checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The arguments with their defaults that depend on others filled in; a bad one stops here."""
    if args.search_seconds is None:
        args.search_seconds = args.seconds
    if args.url and (not args.key or not args.user):
        parser.error("--url needs --key and at least one --user")
    if args.database:
        args.topn = False
    if args.servers and (args.url or set(args.servers) - {"gunicorn", "granian"} or args.rounds < 1):
        parser.error("--servers: a comma-separated list of gunicorn, granian, without --url; --rounds >= 1")
    if not args.url and not args.database and not args.data.exists():
        parser.error(f"{args.data}: no such file")
    if not args.url and args.topn and not (args.movielens / "u.data").exists():
        parser.error(f"{args.movielens}: no MovieLens 100K folder (u.data); give --movielens DIR or --no-topn")
    if not 0 <= args.miss <= 1 or not 0 <= args.new_share < 1:
        parser.error("--miss must be in [0, 1] and --new-share in [0, 1)")
    return args


def measure(args, target: Target, result: dict, say) -> None:
    """The phases and the rate search on a settled machine, then the workers' memory, into `result`."""
    result["load_before"] = settle(args.settle_load, args.settle_max, say)
    result["rates"] = {"every phase but ingest_batch and knowledge": args.rate,
                       "ingest_batch": f"{args.batch_rate} requests/s x 100 events", "knowledge": args.knowledge_rate}
    result["method"] = (f"open-loop, latency from the scheduled send time; {args.threads} client threads in a "
                        f"separate process; {args.warmup} s unmeasured warm-up per phase; "
                        f"{args.seconds} s measured per phase, {args.search_seconds} s per search step; "
                        f"recommend/topn: a learner drawn uniformly, {args.miss:.0%} of requests first evict "
                        f"the learner's history from Redis; the search uses keep-alive connections")
    spec = {"users": target.users, "items": target.items, "unit": target.unit, "mix": target.mix}
    result.update(run_phases(args, target.base, target.key, spec, say, target.meter))
    result["load_after"] = loadavg()
    if target.master_pid:
        result["worker_rss_mb"] = rss_of(child_pids(target.master_pid))
        result["worker_rss_max_mb"] = max(result["worker_rss_mb"], default=None)
        result["master_rss_mb"] = proc_rss_mb(target.master_pid)
    else:
        result["worker_rss_mb"] = None


def report(args, result: dict) -> None:
    """The service beside its floors, every target, and the JSON."""
    result["ratios"] = ratios(result)
    result["targets"] = targets(result, args.before_max_rate)
    emit(result, args.json)


def main(argv=None) -> int:
    args = parse_args(argv)
    say = teller("bench.latency")
    result = header()
    with ExitStack() as stack:
        target = prepare(args, stack, result, say)
        if args.servers:
            from bench.latency.servers import compare

            compare(args, target, result, say, measure)
            emit(result, args.json)
            return 0
        measure(args, target, result, say)
    report(args, result)
    return 0

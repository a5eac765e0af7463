"""Serving latency under load: `python -m bench.latency --json OUT [--seconds S] [--url URL --key KEY]`.

1. Setup (skipped with --url): a scratch database on the configured (or embedded) servers; the
   ASSISTments 2009 attempts imported; the root unit `assistments` trained (practice model,
   TrainConfig(max_trials=1): one hyperparameter trial, for speed; the serving cost does not
   depend on the trial count). A unit `bench-5k` of 5,000 of the root's items is created as a
   child of `assistments` (so the root model, the nearest unit above, serves it): every item
   attempted by a few real learners with at least 200 attempts, filled up with the most
   attempted other items. Those learners (the ones whose attempt count is nearest above 200)
   are the recommendation users: the live fit uses their 200 most recent attempts.
2. The service: the same gunicorn command `adaptrec serve` builds (2 sync workers, access log
   to a file), started as a separate process on a free port with OPENBLAS_NUM_THREADS=1 and
   OMP_NUM_THREADS=1 (BLAS threads would make 2 workers fight over 2 cores), a Redis key prefix
   of its own; then /readyz is awaited.
3. The load: a SEPARATE process (multiprocessing, spawn) sends requests open-loop at a fixed
   rate: request i is scheduled at start + i / rate and its latency is measured from that
   scheduled time, not from when it was actually sent (no coordinated omission); a pool of
   client threads, each with its own http.client connection (keep-alive is asked for, but
   gunicorn's sync worker closes every connection, so each request pays a localhost connect).
   Phases, each after a short unmeasured warm-up at the same rate:
     recommend      POST /v1/recommendations {user_id, units: [bench-5k], n: 10}, the users rotating
     ingest_single  POST /v1/interactions, one attempt of a synthetic learner on a bench-5k item
     ingest_batch   POST /v1/interactions, {"interactions": [100 attempts]} (--batch-rate, default 20/s)
     similar        GET /v1/items/{id}/similar?n=10 for random bench-5k items
     healthz        GET /healthz (extra, --no-baseline skips it): the HTTP stack's and client's own cost
   then a search for the highest recommend rate whose p99 stays under 25 ms without errors
   (--search-start, --search-step: 200, 300, 400, ... until a step fails; the highest passing).
   Each measured phase also reports the CPU time per request of the gunicorn workers, of the
   Postgres backends of the scratch database and of the Redis server (from /proc), and of the
   load generator itself.
4. The resident memory (VmRSS) of each gunicorn worker at the end.
5. One JSON object (printed, and written to --json).

Targets: recommendations p50 <= 5 ms and p99 <= 25 ms at 200 requests/s; under 300 MB per worker.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shlex
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from bench.load import send_times
from bench.report import emit
from harness.client import http_json
from harness.measure import (
    CpuMeter,
    child_pids,
    loadavg,
    machine,
    percentile,
    pids_matching,
    proc_rss_mb,
    redis_pids,
    settle,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"
UNIT_ID = "bench-5k"
UNIT_ITEMS = 5000
HISTORY = 200
P99_LIMIT_MS = 25.0
TARGETS = {"recommend_p50_ms": 5.0, "recommend_p99_ms": 25.0, "worker_rss_mb": 300.0}
PHASES = ("recommend", "ingest_single", "ingest_batch", "similar")


# ---- pure helpers (tested in tests/test_latency_bench.py) -------------------------------------
def scheduled_latency(scheduled: float, done: float) -> float:
    """Latency in ms counted from when the request was due, not from when it left: a request
    that waited for a free client (the server being slow) carries that wait too."""
    return (done - scheduled) * 1000.0


def summarise(latencies_ms, errors: int, elapsed_s: float, rate: float | None = None,
              send_lag_ms=None) -> dict:
    """The figures of one phase. `latencies_ms` are the successful requests' latencies;
    `elapsed_s` runs from the phase start to the last completion."""
    lat = sorted(latencies_ms)
    ok = len(lat)
    out = {
        "requests": ok + errors,
        "errors": errors,
        "rps": round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": _r(percentile(lat, 50)),
        "p90_ms": _r(percentile(lat, 90)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(lat[-1] if lat else None),
        "mean_ms": _r(sum(lat) / ok if ok else None),
    }
    if rate is not None:
        out["target_rps"] = rate
    if send_lag_ms:
        out["client_send_lag_p99_ms"] = _r(percentile(send_lag_ms, 99))
    return out


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def passes(summary: dict, limit_ms: float = P99_LIMIT_MS, min_fraction: float = 0.95) -> bool:
    """A search step passes: no errors, p99 under the limit, and the rate was actually delivered."""
    target = summary.get("target_rps") or 0
    return (summary["errors"] == 0 and summary["p99_ms"] is not None and summary["p99_ms"] <= limit_ms
            and summary["rps"] >= min_fraction * target)


def search_max_rate(measure, start: float, step: float, limit: float, refine: bool = True) -> tuple[float | None, list]:
    """Step the rate up from `start` by `step` while `measure(rate)` (a summary) passes, up to
    `limit`; with `refine`, try once halfway between the last pass and the first failure.
    Returns (highest passing rate or None, every step's summary)."""
    steps, best, failed_at = [], None, None
    rate = start
    while rate <= limit:
        s = measure(rate)
        steps.append(s)
        if not passes(s):
            failed_at = rate
            break
        best = rate
        rate += step
    if refine and best is not None and failed_at is not None and step >= 20:
        mid = best + step / 2
        s = measure(mid)
        steps.append(s)
        if passes(s):
            best = mid
    return best, steps


# ---- requests of each phase -------------------------------------------------------------------
class Requests:
    """Builds request i of a phase: (method, path, body bytes or None). Deterministic by seed."""

    def __init__(self, phase: str, users: list[str], items: list[str], unit: str, run: str, seed: int = 0,
                 batch: int = 100, learners: int = 200):
        self.phase, self.users, self.items, self.unit, self.run = phase, users, items, unit, run
        self.batch, self.learners = batch, learners
        self.rng = random.Random(f"{seed}-{phase}")
        self._lock = threading.Lock()

    def _attempt(self, tag: str) -> dict:
        return {"event_id": f"bench-{self.run}-{tag}", "user_id": f"bench-learner-{self.rng.randrange(self.learners)}",
                "item_id": self.rng.choice(self.items), "kind": "attempt", "outcome": self.rng.randrange(2)}

    def __call__(self, i: int) -> tuple[str, str, bytes | None]:
        with self._lock:  # random.Random is shared by the client threads
            if self.phase == "recommend":
                body = {"user_id": self.users[i % len(self.users)], "units": [self.unit], "n": 10}
                return "POST", "/v1/recommendations", json.dumps(body).encode()
            if self.phase == "ingest_single":
                return "POST", "/v1/interactions", json.dumps(self._attempt(f"s{i}")).encode()
            if self.phase == "ingest_batch":
                events = [self._attempt(f"b{i}-{j}") for j in range(self.batch)]
                return "POST", "/v1/interactions", json.dumps({"interactions": events}).encode()
            if self.phase == "similar":
                return "GET", f"/v1/items/{self.rng.choice(self.items)}/similar?n=10", None
            if self.phase == "healthz":
                return "GET", "/healthz", None
        raise ValueError(f"unknown phase {self.phase!r}")


# ---- the load generator (runs in its own process) ----------------------------------------------
def drive(base_url: str, key: str, phase: str, rate: float, seconds: float, users: list[str], items: list[str],
          unit: str, run: str, threads: int = 64, timeout_s: float = 10.0, tag: str = "") -> dict:
    """Open-loop load: `rate` requests per second for `seconds`; returns the phase summary."""
    from bench.load import open_loop

    latencies, lags, errors, error_kinds = [], [], [0], {}
    last_done = [0.0]
    lock = threading.Lock()
    cpu0 = time.process_time()

    def record(o) -> None:
        with lock:
            last_done[0] = max(last_done[0], o.done)
            if o.ok:
                latencies.append(scheduled_latency(o.due, o.done))
                lags.append((o.sent - o.due) * 1000.0)
            else:
                errors[0] += 1
                error_kinds[o.what] = error_kinds.get(o.what, 0) + 1

    start = open_loop(base_url, key, send_times(rate, seconds), Requests(phase, users, items, unit, f"{run}{tag}"),
                      record, threads, timeout_s)
    elapsed = max(last_done[0] - start, seconds) if (latencies or errors[0]) else seconds
    out = summarise(latencies, errors[0], elapsed, rate, lags)
    out["seconds"] = seconds
    done_requests = out["requests"]
    if done_requests:
        out["client_cpu_ms_per_request"] = round((time.process_time() - cpu0) * 1000.0 / done_requests, 3)
    if error_kinds:
        out["error_kinds"] = error_kinds
    return out


def _drive_in_child(kwargs: dict) -> dict:
    return drive(**kwargs)


# ---- setup: data, model, the 5k unit ---------------------------------------------------------
def prepare(conn, url: str, data: Path, n_users: int, say) -> dict:
    """Import, train the root, build the 5k unit; returns the users and items of the benchmark."""
    from app import catalog
    from app import queries as q
    from app.records import Unit
    from app.tenants import DEFAULT
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    t0 = time.perf_counter()
    run_import(conn, "assistments", [data], progress=False)
    import_s = time.perf_counter() - t0
    say(f"imported {data.name} in {import_s:.1f} s")
    t0 = time.perf_counter()
    report = run_training(url, TrainConfig(max_trials=1), units=["assistments"], progress=False)
    train_s = time.perf_counter() - t0
    root = next((o for o in report.outcomes if o.unit_id == "assistments"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"training the root unit failed: {root}")
    say(f"trained `assistments` (max_trials=1) in {train_s:.1f} s")

    with conn.cursor() as cur:
        # learners with at least HISTORY attempts, those nearest above HISTORY first
        cur.execute("""SELECT user_id, count(*) FROM interactions WHERE kind = 'attempt' AND outcome IS NOT NULL
                       GROUP BY user_id HAVING count(*) >= %s ORDER BY count(*), user_id LIMIT %s""",
                    (HISTORY, n_users))
        users = [(r[0], r[1]) for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT item_id FROM interactions WHERE user_id = ANY(%s)", ([u for u, _ in users],))
        theirs = sorted(r[0] for r in cur.fetchall())
        cur.execute("""SELECT i.item_id FROM items i LEFT JOIN interactions x ON x.item_id = i.item_id
                       WHERE i.active GROUP BY i.item_id ORDER BY count(x.id) DESC, i.item_id""")
        popular = [r[0] for r in cur.fetchall()]
    chosen = set(theirs)
    items = list(theirs)
    for item_id in popular:
        if len(items) >= UNIT_ITEMS:
            break
        if item_id not in chosen:
            chosen.add(item_id)
            items.append(item_id)
    catalog.upsert_units(conn, DEFAULT, [Unit(unit_id=UNIT_ID, name="latency benchmark: 5,000 items", items=items)])
    q.execute(conn, "insert_children", tenant=DEFAULT, parents=["assistments"], children=[UNIT_ID])
    conn.commit()
    say(f"unit {UNIT_ID}: {len(items)} items ({len(theirs)} attempted by {len(users)} learners with "
        f"{', '.join(str(c) for _, c in users)} attempts), child of `assistments`")
    return {"users": [u for u, _ in users], "user_attempts": [c for _, c in users], "items": items,
            "import_seconds": round(import_s, 1), "train_seconds": round(train_s, 1),
            "model_auc": (root.metrics or {}).get("model", {}).get("auc")}


# ---- the run ----------------------------------------------------------------------------------
def run_phases(args, base: str, key: str, users: list[str], items: list[str], unit: str, say,
               meter: CpuMeter | None = None) -> dict:
    run = uuid.uuid4().hex[:8]
    common = {"base_url": base, "key": key, "users": users, "items": items, "unit": unit, "run": run,
              "threads": args.threads}
    rates = {"recommend": args.rate, "ingest_single": args.rate, "ingest_batch": args.batch_rate,
             "similar": args.rate}
    results: dict = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        def phase(name: str, rate: float, seconds: float, tag: str, measure_cpu: bool = False) -> dict:
            if meter and measure_cpu:
                meter.start()
            out = ex.submit(_drive_in_child, {**common, "phase": name, "rate": rate, "seconds": seconds,
                                              "tag": tag}).result()
            if meter and measure_cpu and out["requests"]:
                used = meter.stop()
                out["server_cpu_ms_per_request"] = {k: round(v * 1000.0 / out["requests"], 2) for k, v in used.items()}
            return out

        rates["healthz"] = args.rate
        for name in PHASES + (("healthz",) if args.baseline else ()):
            if args.warmup > 0:
                phase(name, rates[name], args.warmup, f"w-{name}")
            results[name] = phase(name, rates[name], args.seconds, f"m-{name}", measure_cpu=True)
            say(f"{name} at {rates[name]}/s: {json.dumps(results[name])}")

        if args.search_limit >= args.search_start:
            def measure(rate: float) -> dict:
                if args.warmup > 0:
                    phase("recommend", rate, min(args.warmup, 2.0), f"sw-{rate}")
                s = phase("recommend", rate, args.search_seconds, f"s-{rate}", measure_cpu=True)
                say(f"search: recommend at {rate}/s: p50 {s['p50_ms']} p99 {s['p99_ms']} ms, "
                    f"{s['rps']}/s, {s['errors']} errors -> {'pass' if passes(s) else 'FAIL'}")
                return s

            best, steps = search_max_rate(measure, args.search_start, args.search_step, args.search_limit)
            results["max_rps_p99_under_25ms"] = best
            keys = ("target_rps", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "server_cpu_ms_per_request",
                    "client_cpu_ms_per_request")
            results["search"] = [{k: s.get(k) for k in keys} for s in steps]
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of recommend, ingest_single, similar")
    parser.add_argument("--batch-rate", type=float, default=20.0, help="requests/s of ingest_batch (100 events each)")
    parser.add_argument("--search-start", type=float, default=200.0)
    parser.add_argument("--search-step", type=float, default=100.0)
    parser.add_argument("--search-limit", type=float, default=2000.0, help="highest rate tried (0: no search)")
    parser.add_argument("--search-seconds", type=float, default=None,
                        help="seconds per search step (default --seconds)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the extra GET /healthz phase (the HTTP stack's own cost, for comparison)")
    parser.add_argument("--gunicorn-args", default="",
                        help="extra gunicorn arguments, for experiments (e.g. \"--worker-class gthread --threads 2\")")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the load process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--users", type=int, default=5, help="recommendation users (learners with >= 200 attempts)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ASSISTments attempts file")
    parser.add_argument("--settle-load", type=float, default=0.6,
                        help="before measuring, wait for the 1-minute load to drop below this (default 0.6)")
    parser.add_argument("--settle-max", type=float, default=180.0,
                        help="... for at most this many seconds (0: do not wait)")
    parser.add_argument("--url", help="benchmark a running service instead (no setup)")
    parser.add_argument("--key", help="API key of --url")
    parser.add_argument("--unit", default=UNIT_ID, help="with --url: the unit to ask for")
    parser.add_argument("--user", action="append", default=[], help="with --url: a user with a history (repeatable)")
    parser.add_argument("--gunicorn-pid", type=int, help="with --url: gunicorn master pid, for the workers' memory")
    args = parser.parse_args(argv)
    if args.search_seconds is None:
        args.search_seconds = args.seconds
    if args.url and (not args.key or not args.user):
        parser.error("--url needs --key and at least one --user")
    if not args.url and not args.data.exists():
        parser.error(f"{args.data}: no such file")

    def say(message: str) -> None:
        print(f"bench.latency: {message}", file=sys.stderr, flush=True)

    result: dict = {"date": date.today().isoformat(), "machine": machine(), "load_at_start": loadavg()}
    with ExitStack() as stack:
        master_pid = args.gunicorn_pid
        if args.url:
            base, key, unit, users = args.url.rstrip("/"), args.key, args.unit, list(args.user)
            status, body = http_json(base, key, "GET", f"/v1/units/{unit}")
            if status != 200 or not body.get("items"):
                raise SystemExit(f"bench.latency: GET /v1/units/{unit}: {status} {body}")
            items = body["items"]
        else:
            from app.config import Settings
            from app.embedded import servers_for
            from harness.databases import connected_scratch_database, scratch_redis_prefix
            from harness.service import running_service

            settings = stack.enter_context(servers_for(Settings.from_env()))
            url, conn = stack.enter_context(connected_scratch_database(settings.database_url))
            prepared = prepare(conn, url, args.data, args.users, say)
            users, items, unit = prepared["users"], prepared["items"], UNIT_ID
            result["setup"] = {k: prepared[k]
                               for k in ("import_seconds", "train_seconds", "model_auc", "user_attempts")}
            result["setup"]["train_config"] = "TrainConfig(max_trials=1), unit assistments only"
            key = "bench-" + uuid.uuid4().hex
            prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-bench"))
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-latency-")))
            service = stack.enter_context(running_service(
                url, settings.redis_url, key, tmp / "gunicorn.log", redis_prefix=prefix, workers=args.workers,
                gunicorn_args=shlex.split(args.gunicorn_args)))
            base, master_pid = service.base_url, service.proc.pid
            from cli.serve import gunicorn_command

            shown = gunicorn_command("127.0.0.1:PORT", args.workers, shlex.split(args.gunicorn_args))
            result["service"] = {"command": " ".join(["python"] + shown[1:]) + " (cli.serve.gunicorn_command; "
                                            "JSON logs to a file)",
                                 "env": "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1",
                                 "worker_class": "sync (gunicorn's default; closes each connection)"
                                 if "worker-class" not in args.gunicorn_args else args.gunicorn_args}
            say(f"gunicorn ready on {base} (pid {master_pid})")

        status, answer = http_json(base, key, "POST", "/v1/recommendations",
                                   {"user_id": users[0], "units": [unit], "n": 10})
        if status != 200:
            raise SystemExit(f"bench.latency: the first recommendation failed: {status} {answer}")
        result["candidates"] = answer["candidates"]
        result["history_rows"] = answer["history_rows"]
        result["model_unit"] = (answer.get("model") or {}).get("unit_id")
        result["fallback"] = answer.get("fallback")
        result["users"] = len(users)
        say(f"first answer: {answer['candidates']} candidates, {answer['history_rows']} history rows, "
            f"model of {result['model_unit']}, fallback {answer.get('fallback')}")

        result["load_before"] = settle(args.settle_load, args.settle_max, say) if args.settle_max > 0 else loadavg()
        result["rates"] = {"recommend": args.rate, "ingest_single": args.rate,
                           "ingest_batch": f"{args.batch_rate} requests/s x 100 events", "similar": args.rate}
        result["method"] = (f"open-loop, latency from the scheduled send time; {args.threads} client threads in a "
                            f"separate process; {args.warmup} s unmeasured warm-up per phase; "
                            f"{args.seconds} s measured per phase, {args.search_seconds} s per search step")
        meter = None
        if master_pid and not args.url:
            dbname = urlsplit(url).path.lstrip("/")
            meter = CpuMeter({"gunicorn_workers": lambda: child_pids(master_pid),
                              "postgres_backends": lambda: pids_matching("postgres:", dbname),
                              "redis": lambda: redis_pids(settings.redis_url)})
        phases = run_phases(args, base, key, users, items, unit, say, meter)
        result.update(phases)
        result["load_after"] = loadavg()
        if master_pid:
            workers = child_pids(master_pid)
            rss = [proc_rss_mb(p) for p in workers]
            result["worker_rss_mb"] = [r for r in rss if r is not None]
            result["worker_rss_max_mb"] = max(result["worker_rss_mb"], default=None)
            result["master_rss_mb"] = proc_rss_mb(master_pid)
        else:
            result["worker_rss_mb"] = None
        rec = result["recommend"]
        result["targets"] = {
            "recommend_p50_ms<=5": rec["p50_ms"] is not None and rec["p50_ms"] <= TARGETS["recommend_p50_ms"],
            "recommend_p99_ms<=25": rec["p99_ms"] is not None and rec["p99_ms"] <= TARGETS["recommend_p99_ms"],
            "worker_rss_mb<300": (result.get("worker_rss_max_mb") or 0) < TARGETS["worker_rss_mb"]
            if result.get("worker_rss_mb") else None,
        }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

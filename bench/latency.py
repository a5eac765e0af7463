"""Serving latency under load: `python -m bench.latency --json OUT [--seconds S] [--url URL --key KEY]`.

1. Setup (skipped with --url): a scratch database on the configured (or embedded) servers; the
   ASSISTments 2009 attempts imported; the root unit `assistments` trained (practice model,
   TrainConfig(max_trials=1): one hyperparameter trial, for speed; the serving cost does not
   depend on the trial count). A unit `bench-5k` of the 5,000 most attempted items is created
   as a child of `assistments` (so the root model, the nearest unit above, serves it). The
   learners of the mix (bench/request_mix.py): 10,000 by default, every real learner plus copies
   of real histories, 5 % with no history; histories of 0 to 500 attempts, most short, a tail at
   the cap. MovieLens 100K is imported as tenant `movies` and trained: the top-N phase's data.
   The in-process floor: the live fit + scores of the 5,000 candidates on histories of the mix.
2. The service: the same gunicorn command `adaptrec serve` builds (workers, worker class and
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
     healthz, healthz_new_connection   GET /healthz: the HTTP stack's own cost (--no-baseline skips)
   then a search for the highest recommend rate whose p99 stays under 25 ms without errors
   (--search-start, --search-step: 200, 300, 400, ... until a step fails; the highest passing).
   Each measured phase also reports the CPU time per request of the gunicorn workers, of the
   Postgres backends of the scratch database and of the Redis server (from /proc), and of the
   load generator itself.
4. The resident memory (VmRSS) of each gunicorn worker at the end.
5. One JSON object (printed, and written to --json), with `ratios` (the service over its floors)
   and `targets`.

Targets (issue 13): recommendations p50 <= 3 ms and p99 <= 15 ms at 400 requests/s; highest rate
with p99 < 25 ms >= 500/s; worker CPU per recommendation <= 2 ms; and within the same run:
recommendation p50 <= 1.3 x /healthz p50, worker CPU <= 2 x the in-process fit + score, /healthz
<= 0.5 ms of worker CPU, highest rate >= 2 x --before-max-rate; under 300 MB per worker.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
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
P99_LIMIT_MS = 25.0
TARGETS = {"recommend_p50_ms": 3.0, "recommend_p99_ms": 15.0, "max_rps": 500.0, "worker_cpu_ms": 2.0,
           "healthz_worker_cpu_ms": 0.5, "worker_rss_mb": 300.0}
PHASES = ("recommend", "recommend_new_connection", "topn", "ingest_single", "ingest_batch", "similar")
BASELINES = ("healthz", "healthz_new_connection")
DEFAULT_MOVIELENS = PROJECT_ROOT.parent / "shared" / "data" / "ml-100k"


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
def _maker(phase: str, spec: dict):
    """The request builder of `phase`, built in the load process from plain data (`spec`)."""
    mix = spec.get("mix")
    if mix is not None and phase in ("recommend", "topn"):
        from bench.request_mix import Evictor, MixRequests

        evict = Evictor(mix["redis_url"], mix["redis_prefix"]) if mix.get("redis_url") else None
        learners = mix["learners"] if phase == "recommend" else mix["topn_learners"]
        unit = spec["unit"] if phase == "recommend" else mix["topn_unit"]
        tenant = mix["tenant"] if phase == "recommend" else mix["topn_tenant"]
        return MixRequests(phase, learners, unit, tenant, mix["miss"], evict, seed=spec.get("seed", 0))
    return Requests(phase, spec["users"], spec["items"], spec["unit"], spec["run"])


def drive(base_url: str, key: str, phase: str, rate: float, seconds: float, spec: dict, threads: int = 64,
          timeout_s: float = 10.0, tag: str = "", keepalive: bool = True) -> dict:
    """Open-loop load: `rate` requests per second for `seconds`; returns the phase summary.
    `spec`: users, items, unit, run, and `mix` (bench.request_mix) for the recommend/topn phases."""
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

    make = _maker(phase, {**spec, "run": f"{spec['run']}{tag}"})
    headers = {"X-Adaptrec-Tenant": spec["mix"]["topn_tenant"]} if phase == "topn" else None
    start = open_loop(base_url, key, send_times(rate, seconds), make, record, threads, timeout_s,
                      keepalive=keepalive, headers=headers)
    elapsed = max(last_done[0] - start, seconds) if (latencies or errors[0]) else seconds
    out = summarise(latencies, errors[0], elapsed, rate, lags)
    out["seconds"] = seconds
    out["connection"] = "keep-alive" if keepalive else "new per request"
    if getattr(make, "misses", None) is not None and out["requests"]:
        out["history_not_in_redis"] = round(make.misses / out["requests"], 3)
    done_requests = out["requests"]
    if done_requests:
        out["client_cpu_ms_per_request"] = round((time.process_time() - cpu0) * 1000.0 / done_requests, 3)
    if error_kinds:
        out["error_kinds"] = error_kinds
    return out


def _drive_in_child(kwargs: dict) -> dict:
    return drive(**kwargs)


def _floor_in_child(kwargs: dict) -> dict:
    from bench.request_mix import in_process_floor

    return in_process_floor(**kwargs)


def measure_floor(**kwargs) -> dict:
    """bench.request_mix.in_process_floor in a fresh process with one BLAS thread, as each
    gunicorn worker runs (a multi-threaded BLAS would bill its spinning threads to the fit)."""
    from harness.service import ONE_BLAS_THREAD

    saved = {k: os.environ.get(k) for k in ONE_BLAS_THREAD}
    os.environ.update(ONE_BLAS_THREAD)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
            return ex.submit(_floor_in_child, kwargs).result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- setup: data, models, the 5k unit, the learners --------------------------------------------
def prepare(conn, url: str, data: Path, movielens: Path | None, learners: int, new_share: float, say) -> dict:
    """Import, train the root, build the 5k unit and the learners of the mix; MovieLens as the
    tenant of the top-N phase. Returns what the phases need."""
    from app.access.tenants import DEFAULT
    from app.catalogue import catalog
    from app.catalogue.records import Unit
    from app.infra import queries as q
    from bench.request_mix import TOPN_TENANT, TOPN_UNIT, build_learners, history_lengths
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

    with conn.cursor() as cur:  # the most attempted items: the ones learners' histories touch most
        cur.execute("""SELECT i.item_id FROM items i LEFT JOIN interactions x ON x.tenant = i.tenant
                       AND x.item_id = i.item_id WHERE i.tenant = %s AND i.active
                       GROUP BY i.item_id ORDER BY count(x.id) DESC, i.item_id LIMIT %s""", (DEFAULT, UNIT_ITEMS))
        items = [r[0] for r in cur.fetchall()]
    catalog.upsert_units(conn, DEFAULT, [Unit(unit_id=UNIT_ID, name="latency benchmark: 5,000 items", items=items)])
    q.execute(conn, "insert_children", tenant=DEFAULT, parents=["assistments"], children=[UNIT_ID])
    conn.commit()
    new = round(learners * new_share)
    t0 = time.perf_counter()
    mix = build_learners(conn, DEFAULT, learners - new, new)
    lengths = history_lengths(conn, DEFAULT, mix)
    say(f"unit {UNIT_ID}: {len(items)} items, child of `assistments`; {len(mix)} learners "
        f"({time.perf_counter() - t0:.1f} s): {lengths}")
    out = {"users": mix[:5], "learners": mix, "history_lengths": lengths, "items": items,
           "import_seconds": round(import_s, 1), "train_seconds": round(train_s, 1),
           "model_auc": (root.metrics or {}).get("model", {}).get("auc"), "topn_learners": []}
    if movielens is not None:
        t0 = time.perf_counter()
        run_import(conn, "movielens", [movielens], progress=False, tenant=TOPN_TENANT)
        report = run_training(url, TrainConfig(tenant=TOPN_TENANT, max_trials=1), units=[TOPN_UNIT], progress=False)
        outcome = next((o for o in report.outcomes if o.unit_id == TOPN_UNIT), None)
        if outcome is None or outcome.status != "activated":
            raise RuntimeError(f"training MovieLens failed: {outcome}")
        with conn.cursor() as cur:
            cur.execute("SELECT user_id FROM users WHERE tenant = %s ORDER BY user_id", (TOPN_TENANT,))
            out["topn_learners"] = [r[0] for r in cur.fetchall()]
        conn.rollback()
        out["topn_setup_seconds"] = round(time.perf_counter() - t0, 1)
        say(f"tenant {TOPN_TENANT}: MovieLens imported and `{TOPN_UNIT}` trained in {out['topn_setup_seconds']} s "
            f"({len(out['topn_learners'])} users)")
    return out


def prepare_existing(conn, unit: str, learners: int, new_share: float, say, seed: int = 0) -> dict:
    """The learners and items of the mix in a database already imported and trained (--database,
    e.g. the scale run's, docs/SCALING.md): learners drawn at random among those with a history
    (no copies are written), `new_share` of them new; the items under `unit`."""
    from app.access.tenants import DEFAULT
    from app.infra import queries as q
    from bench.request_mix import history_lengths

    items = [r["item_id"] for r in q.fetch_all(conn, "items_under_units", tenant=DEFAULT, unit_ids=[unit])]
    if not items:
        raise SystemExit(f"bench.latency: unit {unit!r} has no active items in the --database")
    new = round(learners * new_share)
    with conn.cursor() as cur:
        cur.execute("SELECT setseed(%s)", (1.0 / (seed + 2),))
        cur.execute("SELECT user_id FROM users u WHERE tenant = %s AND EXISTS (SELECT 1 FROM interactions i "
                    "WHERE i.tenant = u.tenant AND i.user_id = u.user_id) ORDER BY random() LIMIT %s",
                    (DEFAULT, learners - new))
        mix = [r[0] for r in cur.fetchall()] + [f"mix-new-{k}" for k in range(new)]
    conn.rollback()
    lengths = history_lengths(conn, DEFAULT, mix)
    say(f"unit {unit}: {len(items)} items; {len(mix)} learners: {lengths}")
    return {"users": mix[:5], "learners": mix, "history_lengths": lengths, "items": items, "topn_learners": []}


# ---- the run ----------------------------------------------------------------------------------
PHASE_SPECS = {  # phase: (requests of, keep-alive)
    "recommend": ("recommend", True),
    "recommend_new_connection": ("recommend", False),
    "topn": ("topn", True),
    "ingest_single": ("ingest_single", True),
    "ingest_batch": ("ingest_batch", True),
    "similar": ("similar", True),
    "healthz": ("healthz", True),
    "healthz_new_connection": ("healthz", False),
}


def run_phases(args, base: str, key: str, spec: dict, say, meter: CpuMeter | None = None) -> dict:
    spec = {**spec, "run": uuid.uuid4().hex[:8]}
    common = {"base_url": base, "key": key, "spec": spec, "threads": args.threads}
    names = [p for p in PHASES if p != "topn" or spec.get("mix", {}).get("topn_learners")]
    if args.baseline:
        names += list(BASELINES)
    if args.phases is not None:
        names = [p for p in names if p in args.phases]
    results: dict = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        def phase(name: str, rate: float, seconds: float, tag: str, measure_cpu: bool = False) -> dict:
            requests_of, keepalive = PHASE_SPECS[name]
            if meter and measure_cpu:
                meter.start()
            out = ex.submit(_drive_in_child, {**common, "phase": requests_of, "rate": rate, "seconds": seconds,
                                              "tag": tag, "keepalive": keepalive}).result()
            if meter and measure_cpu and out["requests"]:
                used = meter.stop()
                out["server_cpu_ms_per_request"] = {k: round(v * 1000.0 / out["requests"], 2) for k, v in used.items()}
            return out

        for name in names:
            rate = args.batch_rate if name == "ingest_batch" else args.rate
            if args.warmup > 0:
                phase(name, rate, args.warmup, f"w-{name}")
            results[name] = phase(name, rate, args.seconds, f"m-{name}", measure_cpu=True)
            say(f"{name} at {rate}/s: {json.dumps(results[name])}")

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


def _worker_cpu(phase: dict | None) -> float | None:
    return ((phase or {}).get("server_cpu_ms_per_request") or {}).get("gunicorn_workers")


def targets(result: dict, before_max_rate: float | None = None) -> dict:
    """Every target of the request path (absolute, and as ratios within this run); None: not measured."""
    rec, health = result.get("recommend") or {}, result.get("healthz") or {}
    floor = (result.get("floor") or {}).get("mean_ms")
    cpu, health_cpu = _worker_cpu(rec), _worker_cpu(health)
    best = result.get("max_rps_p99_under_25ms")

    def check(value, limit, higher=False):
        if value is None or limit is None:
            return None
        return value >= limit if higher else value <= limit

    return {
        "recommend_p50_ms<=3": check(rec.get("p50_ms"), TARGETS["recommend_p50_ms"]),
        "recommend_p99_ms<=15": check(rec.get("p99_ms"), TARGETS["recommend_p99_ms"]),
        "max_rps_p99_under_25ms>=500": check(best, TARGETS["max_rps"], higher=True),
        "worker_cpu_ms_per_recommendation<=2": check(cpu, TARGETS["worker_cpu_ms"]),
        "recommend_p50<=1.3x_healthz_p50": check(rec.get("p50_ms"),
                                                  1.3 * health["p50_ms"] if health.get("p50_ms") else None),
        "worker_cpu<=2x_in_process_fit_score": check(cpu, 2 * floor if floor else None),
        "healthz_worker_cpu_ms<=0.5": check(health_cpu, TARGETS["healthz_worker_cpu_ms"]),
        "max_rps>=2x_before": check(best, 2 * before_max_rate if before_max_rate else None, higher=True),
        "worker_rss_mb<300": check(result.get("worker_rss_max_mb"), TARGETS["worker_rss_mb"]),
    }


def ratios(result: dict) -> dict:
    """The service beside its floors: HTTP alone (/healthz) and the numbers alone (in-process fit + score)."""
    rec, health = result.get("recommend") or {}, result.get("healthz") or {}
    floor = (result.get("floor") or {}).get("mean_ms")
    cpu = _worker_cpu(rec)
    out = {}
    if rec.get("p50_ms") and health.get("p50_ms"):
        out["recommend_p50/healthz_p50"] = round(rec["p50_ms"] / health["p50_ms"], 2)
    if cpu and floor:
        out["worker_cpu/in_process_fit_score"] = round(cpu / floor, 2)
    if cpu and _worker_cpu(health):
        out["worker_cpu_recommend-healthz_ms"] = round(cpu - _worker_cpu(health), 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s of every phase but ingest_batch "
                                                                   "(default 400)")
    parser.add_argument("--batch-rate", type=float, default=20.0, help="requests/s of ingest_batch (100 events each)")
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
    parser.add_argument("--gunicorn-args", default="",
                        help="extra gunicorn arguments, for experiments (e.g. \"--worker-class gthread --threads 2\")")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the load process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
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
    parser.add_argument("--settle-load", type=float, default=0.6,
                        help="before measuring, wait for the 1-minute load to drop below this (default 0.6)")
    parser.add_argument("--settle-max", type=float, default=180.0,
                        help="... for at most this many seconds (0: do not wait)")
    parser.add_argument("--url", help="benchmark a running service instead (no setup, no history evictions)")
    parser.add_argument("--key", help="API key of --url")
    parser.add_argument("--unit", default=UNIT_ID, help="with --url or --database: the unit to ask for")
    parser.add_argument("--database", help="use this database, already imported and trained (e.g. the scale run's), "
                                           "instead of a scratch one with ASSISTments; learners drawn from it; "
                                           "no top-N phase")
    parser.add_argument("--user", action="append", default=[], help="with --url: a user with a history (repeatable)")
    parser.add_argument("--gunicorn-pid", type=int, help="with --url: gunicorn master pid, for the workers' memory")
    args = parser.parse_args(argv)
    if args.search_seconds is None:
        args.search_seconds = args.seconds
    if args.url and (not args.key or not args.user):
        parser.error("--url needs --key and at least one --user")
    if args.database:
        args.topn = False
    if not args.url and not args.database and not args.data.exists():
        parser.error(f"{args.data}: no such file")
    if not args.url and args.topn and not (args.movielens / "u.data").exists():
        parser.error(f"{args.movielens}: no MovieLens 100K folder (u.data); give --movielens DIR or --no-topn")
    if not 0 <= args.miss <= 1 or not 0 <= args.new_share < 1:
        parser.error("--miss must be in [0, 1] and --new-share in [0, 1)")

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
            mix = {"learners": users, "miss": 0.0, "tenant": "default", "topn_learners": []}
        else:
            from app.access.tenants import DEFAULT
            from app.config import Settings
            from app.embedded import servers_for
            from bench.request_mix import TOPN_TENANT, TOPN_UNIT, warm_histories
            from harness.databases import connected_scratch_database, scratch_redis_prefix
            from harness.service import running_service

            settings = stack.enter_context(servers_for(Settings.from_env()))
            if args.database:
                import psycopg2

                url, unit = args.database, args.unit
                conn = psycopg2.connect(url)
                stack.callback(conn.close)
                prepared = prepare_existing(conn, unit, args.learners, args.new_share, say)
                result["setup"] = {"database": urlsplit(url).path.lstrip("/"), "unit": unit,
                                   "history_lengths": prepared["history_lengths"]}
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM interactions")
                    result["setup"]["interactions"] = cur.fetchone()[0]
                conn.rollback()
            else:
                url, conn = stack.enter_context(connected_scratch_database(settings.database_url))
                prepared = prepare(conn, url, args.data, args.movielens if args.topn else None, args.learners,
                                   args.new_share, say)
                unit = UNIT_ID
                result["setup"] = {k: prepared.get(k) for k in ("import_seconds", "train_seconds", "model_auc",
                                                                "history_lengths", "topn_setup_seconds")}
                result["setup"]["train_config"] = "TrainConfig(max_trials=1), unit assistments only"
            users, items = prepared["users"], prepared["items"]
            say(f"in-process floor on {args.floor_samples} histories of the mix ...")
            result["floor"] = measure_floor(database_url=url, tenant=DEFAULT, unit=unit,
                                            learners=prepared["learners"], samples=args.floor_samples)
            say(f"floor: {result['floor']}")
            key = "bench-" + uuid.uuid4().hex
            prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-bench"))
            mix = {"learners": prepared["learners"], "miss": args.miss, "tenant": DEFAULT,
                   "redis_url": settings.redis_url, "redis_prefix": prefix,
                   "topn_learners": prepared["topn_learners"], "topn_tenant": TOPN_TENANT, "topn_unit": TOPN_UNIT}
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
                                 "gunicorn_args": args.gunicorn_args or None}
            say(f"gunicorn ready on {base} (pid {master_pid})")
            import redis as redis_client

            used = redis_client.Redis.from_url(settings.redis_url).info("memory")["used_memory"]
            warmed = warm_histories(url, settings.redis_url, prefix, DEFAULT, prepared["learners"])
            # What a learner's cached history costs Redis (for sizing: docs/SCALING.md); the server
            # is shared, so only an estimate.
            grown = redis_client.Redis.from_url(settings.redis_url).info("memory")["used_memory"] - used
            result["redis_bytes_per_cached_learner"] = round(grown / max(1, len(prepared["learners"])))
            if prepared["topn_learners"]:
                warmed += warm_histories(url, settings.redis_url, prefix, TOPN_TENANT, prepared["topn_learners"])
            say(f"histories of every learner cached in Redis in {warmed:.1f} s")

        status, answer = http_json(base, key, "POST", "/v1/recommendations",
                                   {"user_id": users[0], "units": [unit], "n": 10})
        if status != 200:
            raise SystemExit(f"bench.latency: the first recommendation failed: {status} {answer}")
        result["candidates"] = answer["candidates"]
        result["model_unit"] = (answer.get("model") or {}).get("unit_id")
        result["learners"] = len(mix["learners"])
        result["history_not_in_redis"] = mix["miss"]
        say(f"first answer: {answer['candidates']} candidates, model of {result['model_unit']}")

        result["load_before"] = settle(args.settle_load, args.settle_max, say) if args.settle_max > 0 else loadavg()
        result["rates"] = {"every phase but ingest_batch": args.rate,
                           "ingest_batch": f"{args.batch_rate} requests/s x 100 events"}
        result["method"] = (f"open-loop, latency from the scheduled send time; {args.threads} client threads in a "
                            f"separate process; {args.warmup} s unmeasured warm-up per phase; "
                            f"{args.seconds} s measured per phase, {args.search_seconds} s per search step; "
                            f"recommend/topn: a learner drawn uniformly, {args.miss:.0%} of requests first evict "
                            f"the learner's history from Redis; the search uses keep-alive connections")
        meter = None
        if master_pid and not args.url:
            dbname = urlsplit(url).path.lstrip("/")
            meter = CpuMeter({"gunicorn_workers": lambda: child_pids(master_pid),
                              "postgres_backends": lambda: pids_matching("postgres:", dbname),
                              "redis": lambda: redis_pids(settings.redis_url)})
        spec = {"users": users, "items": items, "unit": unit, "mix": mix}
        result.update(run_phases(args, base, key, spec, say, meter))
        result["load_after"] = loadavg()
        if master_pid:
            workers = child_pids(master_pid)
            rss = [proc_rss_mb(p) for p in workers]
            result["worker_rss_mb"] = [r for r in rss if r is not None]
            result["worker_rss_max_mb"] = max(result["worker_rss_mb"], default=None)
            result["master_rss_mb"] = proc_rss_mb(master_pid)
        else:
            result["worker_rss_mb"] = None
        result["ratios"] = ratios(result)
        result["targets"] = targets(result, args.before_max_rate)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

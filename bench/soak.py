"""Soak test: `python -m bench.soak --minutes M [--rate R] [--json OUT] [--url URL --key KEY [--pid PID]]`.

Mixed traffic at a steady rate for a bounded time, from a separate process over loopback: is the
service still error-free, fast and the same size at the end?

1. The service (skipped with --url): a scratch database on the configured (or embedded) servers,
   the demo data set (`adaptrec demo`, --demo-* sizes), the root unit `demo` trained
   (TrainConfig(max_trials=1): practice and engagement models), and gunicorn as `adaptrec serve`
   runs it (--workers, default 2) through harness.service (OPENBLAS_NUM_THREADS=1, its own
   Redis key prefix, a fresh API key). Real ids come from the database: learners with a history,
   every unit, every active item.
   With --url: --unit (default `demo`) and the units under it give the units and items, --user
   (default: the demo's first learners, checked to exist) the learners.
2. The traffic: an open-loop schedule at --rate (bench.load.open_loop, latency counted from each
   request's due time) for --warmup-s and then --minutes; request i is drawn from --mix:
     recommend  POST /v1/recommendations {user_id, units: [a random unit], n: 10}
     ingest     POST /v1/interactions, 1 event (60 %) or a batch of 2-5 events of one learner, fresh
                event_ids: attempts on questions, views on other items. A share (--retry-share,
                default 5 %) resends the body of an earlier ingest that was answered 2xx: label
                ingest_retry, which must answer 200 (all duplicates); anything else is an error.
     similar    GET /v1/items/{id}/similar?n=10
     trending   GET /v1/trending?n=10, half of them with &units=<a random unit>
   Every request is valid, so any non-2xx answer or connection error is an error.
3. Memory: the resident size (VmRSS) of the gunicorn master and of every worker at the end of the
   warm-up and then every --sample-s seconds, and once after the last answer.
   memory_growth_pct is the growth of the workers' summed RSS from the first sample to the last;
   also per worker, and max(last minute) vs max(first minute) (robust to noise).
4. A short summary on stdout; the whole report as JSON with --json.

Targets: 0 errors; worker memory growth under 10 % over 10 minutes at 200 requests/s.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import shlex
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench.load import send_times
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

KINDS = ("recommend", "ingest", "similar", "trending")
LABELS = ("recommend", "ingest", "ingest_retry", "similar", "trending")  # what the report counts
DEFAULT_MIX = "recommend=60,ingest=20,similar=10,trending=10"
TARGETS = {"errors": 0, "memory_growth_pct": 10.0}
DEMO_ROOT = "demo"


# ---- pure helpers (tested in tests/test_soak_bench.py) ----------------------------------------
def parse_mix(text: str) -> dict[str, float]:
    """`recommend=60,ingest=20,...` -> the share of each kind (summing to 1); kinds left out get 0."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if name not in KINDS or not sep:
            raise ValueError(f"--mix: expected kind=weight with kind one of {', '.join(KINDS)}, got {part!r}")
        try:
            weights[name] = float(raw)
        except ValueError:
            raise ValueError(f"--mix: the weight of {name} must be a number, got {raw!r}") from None
        if not weights[name] >= 0:
            raise ValueError(f"--mix: the weight of {name} must be 0 or more, got {raw!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("--mix: at least one weight must be positive")
    return {k: weights.get(k, 0.0) / total for k in KINDS}


class Traffic:
    """Request i of the mix as (label, method, path, body). Request i's draw is deterministic (its
    own Random from seed and i); which earlier body a retry resends depends on what was answered."""

    def __init__(self, ids: dict, mix: dict[str, float], run: str, seed: int = 0, retry_share: float = 0.05,
                 keep: int = 1000):
        self.users, self.units = ids["users"], ids["units"]
        self.items = [i for i, _ in ids["items"]]
        self.item_kind = dict(ids["items"])
        self.kinds, self.weights = list(mix), list(mix.values())
        self.run, self.seed, self.retry_share = run, seed, retry_share
        self._done: list[bytes] = []  # bodies of ingests answered 2xx (the last `keep`), the retries' source
        self._keep, self._answered = keep, 0
        self._lock = threading.Lock()

    def answered(self, body: bytes) -> None:
        """An ingest was stored: its body may be sent again as a retry."""
        with self._lock:
            if len(self._done) < self._keep:
                self._done.append(body)
            else:
                self._done[self._answered % self._keep] = body
            self._answered += 1

    def _event(self, rng: random.Random, event_id: str, user: str) -> dict:
        item = rng.choice(self.items)
        if self.item_kind.get(item, "question") == "question":
            return {"event_id": event_id, "user_id": user, "item_id": item, "kind": "attempt",
                    "outcome": rng.randrange(2)}
        return {"event_id": event_id, "user_id": user, "item_id": item, "kind": "view",
                "duration_ms": rng.randrange(5_000, 600_000)}

    def __call__(self, i: int) -> tuple[str, str, str, bytes | None]:
        rng = random.Random(f"{self.seed}-{i}")
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "recommend":
            body = {"user_id": rng.choice(self.users), "units": [rng.choice(self.units)], "n": 10}
            return "recommend", "POST", "/v1/recommendations", json.dumps(body).encode()
        if kind == "ingest":
            if rng.random() < self.retry_share:
                with self._lock:
                    earlier = rng.choice(self._done) if self._done else None
                if earlier is not None:
                    return "ingest_retry", "POST", "/v1/interactions", earlier
            user = rng.choice(self.users)
            size = 1 if rng.random() < 0.6 else rng.randint(2, 5)
            events = [self._event(rng, f"soak-{self.run}-{i}-{j}", user) for j in range(size)]
            body = events[0] if size == 1 else {"interactions": events}
            return "ingest", "POST", "/v1/interactions", json.dumps(body).encode()
        if kind == "similar":
            return "similar", "GET", f"/v1/items/{quote(rng.choice(self.items), safe='')}/similar?n=10", None
        units = f"&units={quote(rng.choice(self.units), safe='')}" if rng.random() < 0.5 else ""
        return "trending", "GET", f"/v1/trending?n=10{units}", None


def latency_figures(latencies_ms: list[float]) -> dict:
    lat = sorted(latencies_ms)
    r = lambda x: None if x is None else round(x, 2)  # noqa: E731
    return {"p50_ms": r(percentile(lat, 50)), "p95_ms": r(percentile(lat, 95)), "p99_ms": r(percentile(lat, 99)),
            "max_ms": r(lat[-1] if lat else None), "mean_ms": r(sum(lat) / len(lat) if lat else None)}


def summarise_requests(rows: list[tuple], warmup_s: float, duration_s: float, interval_s: float) -> dict:
    """The report's request figures from rows of (label, due offset s, latency ms, error or None):
    the measured window is [warmup_s, warmup_s + duration_s) of due offsets."""
    measured = [r for r in rows if r[1] >= warmup_s]
    warm = [r for r in rows if r[1] < warmup_s]

    def block(part: list[tuple]) -> dict:
        errors: dict[str, int] = {}
        for _, _, _, err in part:
            if err is not None:
                errors[err] = errors.get(err, 0) + 1
        out = {"requests": len(part), "errors": sum(errors.values())}
        out.update(latency_figures([r[2] for r in part if r[3] is None]))
        out["errors_by_status"] = dict(sorted(errors.items()))
        return out

    out = block(measured)
    # The service kept up if the measured requests were answered about as fast as they were due:
    # achieved_rps counts successes over the time until the last answer (at least the window).
    last_done = max((r[1] + r[2] / 1000.0 for r in measured), default=warmup_s + duration_s)
    elapsed = max(duration_s, last_done - warmup_s)
    out["achieved_rps"] = round((out["requests"] - out["errors"]) / elapsed, 1) if elapsed > 0 else 0.0
    out["drain_s"] = round(max(0.0, last_done - warmup_s - duration_s), 2)
    out["kinds"] = {label: block([r for r in measured if r[0] == label]) for label in LABELS
                    if any(r[0] == label for r in measured)}
    out["warmup"] = {k: v for k, v in block(warm).items() if k in ("requests", "errors", "errors_by_status")}
    timeline = []
    buckets = max(1, round(duration_s / interval_s))
    for b in range(buckets):
        lo = warmup_s + b * interval_s
        hi = warmup_s + duration_s if b == buckets - 1 else lo + interval_s
        part = [r for r in measured if lo <= r[1] < hi]
        lat = [r[2] for r in part if r[3] is None]
        timeline.append({"from_s": round(lo - warmup_s, 1), "to_s": round(hi - warmup_s, 1), "requests": len(part),
                         "errors": len(part) - len(lat), "p50_ms": latency_figures(lat)["p50_ms"],
                         "p99_ms": latency_figures(lat)["p99_ms"]})
    out["timeline"] = timeline
    return out


def memory_growth(samples: list[dict], window_s: float = 60.0) -> dict:
    """Growth of the workers' RSS over `samples` (each {"t_s", "master_mb", "workers_mb": {pid: MB}},
    in time order, taken after the warm-up). growth_pct: summed RSS, last sample vs first;
    window_growth_pct: max of the summed RSS over the last `window_s` vs over the first (for runs
    shorter than two windows, half the run each)."""
    samples = [s for s in samples if s["workers_mb"]]
    if len(samples) < 2:
        return {"growth_pct": None, "reason": f"{len(samples)} memory sample(s) with workers; 2 needed"}
    total = [sum(s["workers_mb"].values()) for s in samples]
    first, last = samples[0], samples[-1]
    span = last["t_s"] - first["t_s"]
    window = min(window_s, span / 2)
    head = max(t for s, t in zip(samples, total) if s["t_s"] <= first["t_s"] + window)
    tail = max(t for s, t in zip(samples, total) if s["t_s"] >= last["t_s"] - window)
    pct = lambda a, b: round((b - a) / a * 100.0, 2) if a else None  # noqa: E731
    steady = sorted(set(first["workers_mb"]) & set(last["workers_mb"]))
    out = {"growth_pct": pct(total[0], total[-1]), "window_growth_pct": pct(head, tail), "window_s": round(window, 1),
           "workers_first_mb": round(total[0], 1), "workers_last_mb": round(total[-1], 1),
           "workers_peak_mb": round(max(total), 1),
           "per_worker_growth_pct": {pid: pct(first["workers_mb"][pid], last["workers_mb"][pid]) for pid in steady},
           "master_growth_pct": pct(first.get("master_mb") or 0, last.get("master_mb") or 0),
           "workers_replaced": set(first["workers_mb"]) != set(last["workers_mb"])}
    if out["workers_replaced"]:
        out["reason"] = ("the worker pids changed during the run (a worker died or was recycled): the sum "
                         "compares different processes; see per_worker_growth_pct and the samples")
    return out


# ---- the load generator (runs in its own process) ---------------------------------------------
def soak_load(base_url: str, key: str, ids: dict, mix: dict, rate: float, warmup_s: float, duration_s: float,
              start_wall: float, run: str, seed: int = 0, retry_share: float = 0.05, threads: int = 64,
              timeout_s: float = 10.0, progress_s: float = 30.0) -> dict:
    """Drive the mix open-loop; the schedule starts at `start_wall` (time.time()), so the parent
    knows when the warm-up ends without talking to this process."""
    from bench.load import open_loop

    traffic = Traffic(ids, mix, run, seed, retry_share)
    offsets = send_times(rate, warmup_s + duration_s)
    labels: dict[int, tuple[str, bytes | None]] = {}
    rows: list[tuple] = []
    lags: list[float] = []
    samples: list[dict] = []
    retries = {"sent": 0, "answered_200": 0}
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + (start_wall - time.time())
    late_s = max(0.0, time.perf_counter() - start)
    cpu0 = time.process_time()

    def make(i: int):
        label, method, path, body = traffic(i)
        with lock:
            labels[i] = (label, body if label == "ingest" else None)
        return method, path, body

    def record(o) -> None:
        with lock:
            label, body = labels.pop(o.index)
        error = None if o.ok else o.what
        if label == "ingest_retry" and error is None and o.status != 200:
            error = f"retry answered {o.status}"  # a stored event was stored again
        if label == "ingest" and error is None:
            traffic.answered(body)
        with lock:
            rows.append((label, o.due - start, o.latency_ms, error))
            errors[0] += error is not None
            lags.append((o.sent - o.due) * 1000.0)
            if label == "ingest_retry":
                retries["sent"] += 1
                retries["answered_200"] += o.status == 200
            if error is not None and len(samples) < 10:
                samples.append({"label": label, "error": error, "t_s": round(o.due - start - warmup_s, 2),
                                "body": o.payload[:300].decode(errors="replace")})

    stop = threading.Event()

    def progress():
        seen = 0
        while not stop.wait(progress_s):
            with lock:
                new, n, failed = rows[seen:], len(rows), errors[0]
            seen = n
            lat = [r[2] for r in new if r[3] is None]
            print(f"bench.soak: {time.perf_counter() - start:.0f} s: {n} answered, {failed} errors, "
                  f"last {progress_s:.0f} s p99 "
                  f"{latency_figures(lat)['p99_ms']} ms", file=sys.stderr, flush=True)

    reporter = threading.Thread(target=progress, daemon=True)
    reporter.start()
    try:
        open_loop(base_url, key, offsets, make, record, threads, timeout_s, start=start)
    finally:
        stop.set()
        reporter.join()
    out = summarise_requests(rows, warmup_s, duration_s, interval_s=max(1.0, min(30.0, duration_s / 4)))
    out["retries"] = retries
    out["error_samples"] = samples
    out["client"] = {"threads": threads, "timeout_s": timeout_s, "start_late_s": round(late_s, 3),
                     "send_lag_p99_ms": latency_figures(lags)["p99_ms"],
                     "cpu_ms_per_request": (round((time.process_time() - cpu0) * 1000.0 / len(rows), 3)
                                            if rows else None)}
    return out


def _soak_in_child(kwargs: dict) -> dict:
    return soak_load(**kwargs)


# ---- ids: from the scratch database, or from a running service --------------------------------
def prepare_demo(url: str, args, say) -> dict:
    """The demo data set and the root's models in the scratch database; returns its ids."""
    import psycopg2

    from jobs.demo import DemoConfig, generate_demo
    from jobs.train import TrainConfig, run_training

    conn = psycopg2.connect(url)
    try:
        t0 = time.perf_counter()
        report = generate_demo(conn, DemoConfig(seed=args.seed, learners=args.demo_learners,
                                                attempts=args.demo_attempts, engagements=args.demo_engagements))
        say(report.summary())
        demo_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trained = run_training(url, TrainConfig(max_trials=1, min_interactions=1), units=[DEMO_ROOT], progress=False)
        train_s = time.perf_counter() - t0
        models = {o.objective: o.status for o in trained.outcomes if o.unit_id == DEMO_ROOT}
        if models.get("practice") != "activated":
            raise RuntimeError(f"training the demo root failed: {trained.outcomes}")
        say(f"trained `{DEMO_ROOT}` (max_trials=1) in {train_s:.1f} s: {models}")
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT user_id FROM interactions ORDER BY user_id")
            users = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT unit_id FROM units ORDER BY unit_id")
            units = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT item_id, kind FROM items WHERE active ORDER BY item_id")
            items = [(r[0], r[1]) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    return {"users": users, "units": units, "items": items,
            "setup": {"demo": {"learners": args.demo_learners, "attempts": args.demo_attempts,
                               "engagements": args.demo_engagements, "seed": args.seed},
                      "demo_seconds": round(demo_s, 1), "train_seconds": round(train_s, 1), "models": models}}


def remote_ids(base: str, key: str, roots: list[str], users: list[str], max_units: int = 300,
               max_items: int = 300) -> dict:
    """Units under `roots` (breadth first), a sample of their items with kinds, and the learners
    (`users`, or the demo's first learners that exist) of a running service."""
    units, queue, direct = [], list(roots), []
    while queue and len(units) < max_units:
        unit = queue.pop(0)
        if unit in units:
            continue
        status, body = http_json(base, key, "GET", f"/v1/units/{quote(unit, safe='')}")
        if status != 200:
            raise SystemExit(f"bench.soak: GET /v1/units/{unit}: {status} {body}")
        units.append(unit)
        queue.extend(body["children"])
        direct.extend(body["items"])
    sample = random.Random(0).sample(sorted(set(direct)), min(max_items, len(set(direct))))
    items = []
    for item_id in sample:
        status, body = http_json(base, key, "GET", f"/v1/items/{quote(item_id, safe='')}")
        if status == 200 and body.get("active"):
            items.append((item_id, body["kind"]))
    if not items:
        raise SystemExit(f"bench.soak: no active items under {', '.join(roots)}")
    if not users:
        candidates = [f"{DEMO_ROOT}.u{i:04d}" for i in range(1, 51)]  # the demo's learner ids
        users = [u for u in candidates if http_json(base, key, "GET", f"/v1/users/{u}")[0] == 200]
        if not users:
            raise SystemExit("bench.soak: the demo's learners are not there; name learners with --user")
    return {"users": users, "units": units, "items": items}


# ---- memory -----------------------------------------------------------------------------------
def memory_sample(master: int, t_s: float) -> dict:
    workers = sorted(child_pids(master))
    rss = {str(p): proc_rss_mb(p) for p in workers}
    return {"t_s": round(t_s, 1), "master_mb": proc_rss_mb(master),
            "workers_mb": {p: mb for p, mb in rss.items() if mb is not None}}


def log_problems(path: Path, limit: int = 20) -> list[str]:
    """The service log's error lines (the last `limit`), to say why requests failed."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [line[:500] for line in lines if re.search(r"ERROR|CRITICAL|Traceback|Exception|WORKER TIMEOUT", line)]
    return bad[-limit:]


def run_soak(args, base: str, key: str, ids: dict, master: int | None, cpu_groups: dict) -> dict:
    """Start the load process, sample memory while it runs, return the report's figures.
    `cpu_groups` (name -> a function returning pids) are metered from the end of the warm-up."""
    mix = parse_mix(args.mix)
    duration = args.minutes * 60.0
    kwargs = {"base_url": base, "key": key, "ids": ids, "mix": mix, "rate": args.rate, "warmup_s": args.warmup_s,
              "duration_s": duration, "run": uuid.uuid4().hex[:8], "seed": args.seed,
              "retry_share": args.retry_share, "threads": args.threads, "progress_s": args.progress_s}
    samples, idle, meter, metered = [], None, CpuMeter(cpu_groups), False
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        start_wall = time.time() + 2.0  # the child's interpreter starts meanwhile
        future = ex.submit(_soak_in_child, {**kwargs, "start_wall": start_wall})
        if master:
            idle = memory_sample(master, time.time() - start_wall)
        next_t = args.warmup_s
        while not future.done():
            wait([future], timeout=max(0.0, start_wall + next_t - time.time()))
            if future.done():
                break
            if not metered:
                meter.start()
                metered = True
            if master:
                samples.append(memory_sample(master, time.time() - start_wall - args.warmup_s))
            next_t += args.sample_s
        figures = future.result()
    used = meter.stop() if cpu_groups and metered else {}
    if used and figures["requests"]:
        figures["server_cpu_ms_per_request"] = {k: round(v * 1000.0 / figures["requests"], 2) for k, v in used.items()}
    if master:
        samples.append(memory_sample(master, time.time() - start_wall - args.warmup_s))
        growth = memory_growth(samples)
        figures["memory_growth_pct"] = growth["growth_pct"]
        figures["memory"] = {"master_pid": master, "before_load": idle, **growth,
                             "sample_every_s": args.sample_s, "samples": samples}
    else:
        figures["memory_growth_pct"] = None
    figures["mix"] = {k: round(v, 4) for k, v in mix.items()}
    return figures


# ---- the command ------------------------------------------------------------------------------
def summary_text(result: dict) -> str:
    mem = result.get("memory") or {}
    lines = [f"soak: {result['config']['minutes']} min at {result['config']['rate']}/s "
             f"(+{result['config']['warmup_s']} s warm-up), {result['requests']} requests, "
             f"{result['achieved_rps']}/s achieved",
             f"errors: {result['errors']}" + (f" {result['errors_by_status']}" if result["errors"] else "")
             + (f" (+{result['warmup']['errors']} in the warm-up: {result['warmup']['errors_by_status']})"
                if result["warmup"]["errors"] else ""),
             f"latency: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
             f"max {result['max_ms']} ms"]
    if result["drain_s"] > 1.0:
        lines.append(f"the service fell behind the schedule: its last answer came {result['drain_s']} s after "
                     "the last request was due (latencies count that queueing)")
    for label, k in result["kinds"].items():
        lines.append(f"  {label:<13} {k['requests']:>7} requests {k['errors']:>4} errors  p50 {k['p50_ms']} "
                     f"p95 {k['p95_ms']} p99 {k['p99_ms']} ms")
    if result["memory_growth_pct"] is None:
        lines.append(f"worker memory: not measured ({result.get('memory_note') or mem.get('reason')})")
    else:
        lines.append(f"worker memory: {mem['workers_first_mb']} -> {mem['workers_last_mb']} MB summed "
                     f"({result['memory_growth_pct']:+.2f} %; max last vs first {mem['window_s']:.0f} s "
                     f"{mem['window_growth_pct']:+.2f} %; per worker {mem['per_worker_growth_pct']})")
    if result.get("server_cpu_ms_per_request"):
        lines.append(f"server CPU per request (ms): {result['server_cpu_ms_per_request']}; load average before "
                     f"{result.get('load_before')}, after {result.get('load_after')}")
    lines.append("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED' if v is not None else 'n/a'}"
                                         for k, v in result["targets"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="measured minutes after the warm-up (default 10)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all kinds (default 200)")
    parser.add_argument("--warmup-s", type=float, default=30.0,
                        help="unmeasured seconds at the same rate first (default 30)")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"weights of the kinds (default {DEFAULT_MIX})")
    parser.add_argument("--retry-share", type=float, default=0.05, help="share of ingests that resend an earlier one")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between memory samples (default 5)")
    parser.add_argument("--progress-s", type=float, default=30.0, help="seconds between progress lines on stderr")
    parser.add_argument("--settle-load", type=float, default=0.6,
                        help="before the load, wait for the 1-minute load average to drop below this (default 0.6)")
    parser.add_argument("--settle-max", type=float, default=180.0,
                        help="... for at most this many seconds (default 180; 0: do not wait)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the traffic and of the demo")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the load process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the service started here")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn arguments of the service started here")
    parser.add_argument("--demo-learners", type=int, default=2000)
    parser.add_argument("--demo-attempts", type=int, default=200_000)
    parser.add_argument("--demo-engagements", type=int, default=50_000)
    parser.add_argument("--url", help="soak a running service instead (no setup)")
    parser.add_argument("--key", help="API key of --url")
    parser.add_argument("--pid", type=int, help="with --url: the gunicorn master's pid (default: found by the port)")
    parser.add_argument("--unit", action="append", default=[],
                        help=f"with --url: a unit to draw from (default {DEMO_ROOT})")
    parser.add_argument("--user", action="append", default=[], help="with --url: a learner (repeatable)")
    args = parser.parse_args(argv)
    if args.url and not args.key:
        parser.error("--url needs --key")
    if args.minutes <= 0 or args.rate <= 0 or args.warmup_s < 0 or args.sample_s <= 0:
        parser.error("--minutes, --rate and --sample-s must be positive, --warmup-s 0 or more")
    try:
        parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))

    def say(message: str) -> None:
        print(f"bench.soak: {message}", file=sys.stderr, flush=True)

    config = {k: getattr(args, k) for k in ("minutes", "rate", "warmup_s", "mix", "retry_share", "sample_s", "seed",
                                            "threads")}
    result: dict = {"date": date.today().isoformat(), "machine": machine(), "load_at_start": loadavg()}
    memory_note = None
    log_path = None
    with ExitStack() as stack:
        if args.url:
            base, key = args.url.rstrip("/"), args.key
            ids = remote_ids(base, key, args.unit or [DEMO_ROOT], args.user)
            master = args.pid
            if master is None:
                from bench.load import find_gunicorn_master

                parts = urlsplit(base)
                if parts.hostname in ("127.0.0.1", "localhost", "::1"):
                    master = find_gunicorn_master(parts.port or 80)
                if master is None:
                    memory_note = ("no --pid given and no local gunicorn found listening on the URL's port "
                                   "(another machine, or owned by another user): worker memory not measured")
            config.update({"url": base, "pid": master})
            cpu_groups = {"gunicorn_workers": lambda: child_pids(master)} if master else {}
        else:
            from app.config import Settings
            from cli.embedded import servers_for
            from harness.databases import scratch_database, scratch_redis_prefix
            from harness.service import running_service

            settings = stack.enter_context(servers_for(Settings.from_env()))
            url = stack.enter_context(scratch_database(settings.database_url, "adaptrec_soak"))
            ids = prepare_demo(url, args, say)
            result["setup"] = ids.pop("setup")
            key = "soak-" + uuid.uuid4().hex
            prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-soak"))
            log_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-soak-"))) / "gunicorn.log"
            service = stack.enter_context(running_service(
                url, settings.redis_url, key, log_path, redis_prefix=prefix, workers=args.workers,
                gunicorn_args=shlex.split(args.gunicorn_args)))
            base, master = service.base_url, service.proc.pid
            dbname = urlsplit(url).path.lstrip("/")
            cpu_groups = {"gunicorn_workers": lambda: child_pids(master),
                          "postgres_backends": lambda: pids_matching("postgres:", dbname),
                          "redis": lambda: redis_pids(settings.redis_url)}
            config.update({"workers": args.workers, "gunicorn_args": args.gunicorn_args,
                           "service": "harness.service.running_service: adaptrec serve's gunicorn command, "
                                      "OPENBLAS_NUM_THREADS=1"})
            say(f"gunicorn ready on {base} (pid {master})")
        result["ids"] = {"users": len(ids["users"]), "units": len(ids["units"]), "items": len(ids["items"])}
        status, answer = http_json(base, key, "POST", "/v1/recommendations",
                                   {"user_id": ids["users"][0], "units": [ids["units"][0]], "n": 10})
        if status != 200:
            raise SystemExit(f"bench.soak: the first recommendation failed: {status} {answer}")
        result["load_before"] = settle(args.settle_load, args.settle_max, say) if args.settle_max > 0 else loadavg()
        say(f"soaking {args.minutes} min at {args.rate}/s after {args.warmup_s} s of warm-up ...")
        figures = run_soak(args, base, key, ids, master, cpu_groups)
        if log_path is not None and (figures["errors"] or figures["warmup"]["errors"]):
            figures["service_log_problems"] = log_problems(log_path)
    result["load_after"] = loadavg()
    head = {k: figures.pop(k) for k in ("requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms",
                                        "memory_growth_pct", "achieved_rps", "errors_by_status")}
    growth = head["memory_growth_pct"]
    result = {**head, "target_rps": args.rate, **({"memory_note": memory_note} if memory_note else {}),
              **figures, "config": config, **result}
    result["targets"] = {"errors==0": head["errors"] == 0 and result["warmup"]["errors"] == 0,
                         "rate_delivered": head["achieved_rps"] >= 0.95 * args.rate,
                         "memory_growth<10%": None if growth is None else growth < TARGETS["memory_growth_pct"]}
    print(summary_text(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench.totara's SPEED part: the MovieLens export (or the fixture) imported and trained, gunicorn
started, and signed GETs sent open-loop from a separate process, phase by phase."""
from __future__ import annotations

import csv
import http.client
import random
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from app.totara.protocol import ITEM_TYPES
from bench.totara.export import COMPONENT, FIXTURE, write_export
from bench.totara.service import (
    busy_processes,
    import_and_train,
    server_log_summary,
    signed_headers,
    similar_items_path,
    totara_service,
    user_items_path,
)
from harness.load import Tally, metered, open_loop, send_times, separate_process
from harness.measure import CpuMeter, loadavg, rss_of, service_groups, settle

P99_TARGET_MS = 25.0
PHASES = ("user_items", "user_items_cold", "similar_items", "healthz")
TRENDING_NOTE = ("a cold /user-items answer (popularity) is cached per tenant, item type and n for ttl_s from the "
                 "first cold answer on; a phase whose window covers an expiry pays the trending query in every "
                 "request that misses meanwhile")


# ---- the open-loop client (runs in its own process) ---------------------------------------------
def signed_open_loop(base_url: str, totara_key: str, offsets: list[float], paths: list[str], record,
                     threads: int = 64, timeout_s: float = 10.0) -> float:
    """harness.load.open_loop for Totara's GET requests: request i (paths[i % len(paths)]) is due at
    start + offsets[i] and carries a signature made when it is sent. Returns the start time."""
    return open_loop(base_url, None, offsets, lambda i: ("GET", paths[i % len(paths)], None), record, threads,
                     timeout_s, sign=lambda: signed_headers(totara_key))


def drive(base_url: str, totara_key: str, paths: list[str], rate: float, seconds: float, threads: int = 64) -> dict:
    """One phase: `rate` signed GETs per second for `seconds`; harness.load's summary of it. A
    Totara endpoint's answer counts only with `"success": true` in it."""
    def accept(o) -> bool:
        totara = paths[o.index % len(paths)].startswith(("/user-items", "/similar-items"))
        return o.ok and (not totara or b'"success":true' in o.payload.replace(b" ", b""))

    tally = Tally(accept, keep_samples=3)
    start = signed_open_loop(base_url, totara_key, send_times(rate, seconds), paths, tally, threads)
    out = tally.summary(start, seconds, rate)
    if out["requests"]:
        out["client_cpu_ms_per_request"] = tally.client_cpu_ms(out["requests"])
    if tally.error_kinds:
        out["error_kinds"], out["error_samples"] = tally.error_kinds, tally.error_samples
    return out


def drive_in_child(kwargs: dict) -> dict:
    return drive(**kwargs)


# ---- setup and phases ---------------------------------------------------------------------------
def speed_paths(kind: str, ratings, movies, cold, held, folder: Path, seed: int) -> dict:
    """Request paths of each phase, shuffled (seed): warm users, users without history, items."""
    rng = random.Random(seed)
    if kind == "movielens":
        warm_users = sorted({int(u) for u in ratings[~np.isin(ratings[:, 0], cold), 0]})
        cold_users = [int(u) for u in cold]
        paths = {"user_items": [user_items_path(u) for u in warm_users],
                 "user_items_cold": [user_items_path(u) for u in cold_users],
                 "similar_items": [similar_items_path(f"{COMPONENT}{m}") for m, _, _ in movies]}
    else:  # the fixture: tenants 0 and 1, every item type
        paths = {"user_items": [], "user_items_cold": [], "similar_items": []}
        for tenant in ("0", "1"):
            with open(folder / f"user_interactions_{tenant}.csv", encoding="utf-8") as f:
                active = sorted({int(r["user_id"]) for r in csv.DictReader(f)})
            with open(folder / f"item_data_{tenant}.csv", encoding="utf-8") as f:
                items = [r["item_id"] for r in csv.DictReader(f)]
            types = [t for t in ITEM_TYPES if any(i.startswith(t) for i in items)]
            paths["user_items"] += [user_items_path(u, item_type=t, tenant=tenant) for u in active for t in types]
            paths["user_items_cold"] += [user_items_path(u, item_type=t, tenant=tenant)
                                         for u in range(9001, 9041) for t in types]
            paths["similar_items"] += [similar_items_path(i, tenant=tenant) for i in items]
    for p in paths.values():
        rng.shuffle(p)
    paths["healthz"] = ["/healthz"]
    return paths


def first_answers(base: str, key: str, paths: dict) -> dict:
    """The first path of each Totara phase asked once: each must answer 200."""
    first = {}
    for phase in ("user_items", "user_items_cold", "similar_items"):
        conn = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=30)
        conn.request("GET", paths[phase][0], headers=signed_headers(key))
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        first[phase] = {"path": paths[phase][0], "status": resp.status, "body": body[:200].decode()}
        if resp.status != 200:
            raise SystemExit(f"bench.totara: {paths[phase][0]} answered {resp.status}: {body[:500]!r}")
    return first


def run_phases(args, base: str, key: str, paths: dict, meter: CpuMeter, first_cold: float, say) -> dict:
    """Each phase after an unmeasured warm-up, the service's CPU metered; a measured phase says the
    load average when it started and how long after the first cold answer."""
    phases = {}
    with separate_process() as ex:
        def run(name: str, seconds: float, measure: bool) -> dict:
            load0, offset = loadavg(), round(time.monotonic() - first_cold, 1)
            kwargs = {"base_url": base, "totara_key": key, "paths": paths[name], "rate": args.rate,
                      "seconds": seconds, "threads": args.client_threads}
            out = metered(lambda: ex.submit(drive_in_child, kwargs).result(), meter if measure else None)
            if measure and out["requests"]:
                out["load_at_start"] = load0
                out["started_s_after_first_cold_answer"] = offset
            return out

        for name in PHASES:
            if args.warmup > 0:
                run(name, args.warmup, False)
            phases[name] = run(name, args.seconds, True)
            say(f"speed: {name} at {args.rate}/s: p50 {phases[name]['p50_ms']} p99 {phases[name]['p99_ms']} ms, "
                f"{phases[name]['errors']} errors")
    return phases


def bench_speed(server_url: str, settings, ratings, movies, users, cold, held, args, say) -> dict:
    from app.serving.related import TRENDING_TTL_S
    from harness.databases import scratch_database

    result: dict = {"data": args.speed_data, "mode": "full" if args.speed_data == "movielens" else "full (fixture)"}
    key = "bench-" + uuid.uuid4().hex
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(server_url, "adaptrec_totarabench"))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-totara-speed-")))
        if args.speed_data == "movielens":
            folder = tmp / "export"
            result["export"] = write_export(folder, ratings, ~held & ~np.isin(ratings[:, 0], cold), movies, users)
        else:
            folder = FIXTURE
        trained = import_and_train(url, folder, "full", args.seed, args.threads)
        result["setup"] = {k: trained[k] for k in ("import_seconds", "train_seconds", "outcomes")}
        say(f"speed: imported and trained ({trained['import_seconds']} s, {trained['train_seconds']} s)")
        paths = speed_paths(args.speed_data, ratings, movies, cold, held, folder, args.seed)
        service = totara_service(stack, url, settings, tmp, args.workers, key)
        say(f"speed: gunicorn ready on {service.base_url} ({args.workers} workers)")
        first_cold = time.monotonic()   # the first cold answer; from popularity, it fills the trending cache
        result["first_answers"] = first_answers(service.base_url, key, paths)
        result["load_before"] = settle(args.settle_load, args.settle_max, say)
        result["busy_processes_before"] = busy_processes()
        meter = CpuMeter(service_groups(service.proc.pid, url, settings.redis_url))
        result["phases"] = run_phases(args, service.base_url, key, paths, meter, first_cold, say)
        result["trending_cache"] = {"ttl_s": TRENDING_TTL_S, "note": TRENDING_NOTE}
        result["distinct_paths"] = {k: len(v) for k, v in paths.items()}
        result["load_after"] = loadavg()
        result["worker_rss_mb"] = rss_of(service.workers())
        result["server_log"] = server_log_summary(service.log_path)
    phases = result["phases"]
    result["target"] = {"p99_ms": P99_TARGET_MS, **{
        f"{name}_p99<=25": phases[name]["p99_ms"] is not None and phases[name]["p99_ms"] <= P99_TARGET_MS
        and phases[name]["errors"] == 0 for name in ("user_items", "user_items_cold", "similar_items")}}
    return result

"""bench.latency's measuring: the requests of each phase, one phase driven open-loop from the load
process, every phase in turn, and the search for the highest rate whose p99 stays under 25 ms."""
from __future__ import annotations

import json
import random
import threading
import uuid

from harness.load import Tally, metered, open_loop, send_times, separate_process
from harness.measure import CpuMeter, loadavg

P99_LIMIT_MS = 25.0
PHASES = ("recommend", "recommend_new_connection", "topn", "ingest_single", "ingest_batch", "similar", "knowledge",
          "mastery", "review")
MIX_PHASES = ("recommend", "topn", "knowledge", "mastery", "review")   # bench.request_mix.MixRequests builds these
BASELINES = ("healthz", "healthz_new_connection")
PHASE_SPECS = {  # phase: (requests of, keep-alive)
    "recommend": ("recommend", True),
    "recommend_new_connection": ("recommend", False),
    "topn": ("topn", True),
    "ingest_single": ("ingest_single", True),
    "ingest_batch": ("ingest_batch", True),
    "similar": ("similar", True),
    "knowledge": ("knowledge", True),
    "mastery": ("mastery", True),
    "review": ("review", True),
    "healthz": ("healthz", True),
    "healthz_new_connection": ("healthz", False),
}
SEARCH_KEYS = ("target_rps", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "server_cpu_ms_per_request",
               "client_cpu_ms_per_request")


# ---- the rate search (tested in tests/unit/test_latency_bench.py) ------------------------------
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


# ---- one phase (runs in the load process) ------------------------------------------------------
def _maker(phase: str, spec: dict):
    """The request builder of `phase`, built in the load process from plain data (`spec`)."""
    mix = spec.get("mix")
    if mix is not None and phase in MIX_PHASES:
        from bench.request_mix import Evictor, MixRequests

        evict = Evictor(mix["redis_url"], mix["redis_prefix"]) if mix.get("redis_url") else None
        learners, unit, tenant = mix["learners"], spec["unit"], mix["tenant"]
        if phase == "topn":
            learners, unit, tenant = mix["topn_learners"], mix["topn_unit"], mix["topn_tenant"]
        elif phase == "knowledge":
            learners, unit = mix["knowledge_learners"], mix["knowledge_units"]
        return MixRequests(phase, learners, unit, tenant, mix["miss"], evict, seed=spec.get("seed", 0))
    return Requests(phase, spec["users"], spec["items"], spec["unit"], spec["run"])


def drive(base_url: str, key: str, phase: str, rate: float, seconds: float, spec: dict, threads: int = 64,
          timeout_s: float = 10.0, tag: str = "", keepalive: bool = True) -> dict:
    """Open-loop load: `rate` requests per second for `seconds`; returns the phase summary.
    `spec`: users, items, unit, run, and `mix` (bench.request_mix) for the recommend/topn phases."""
    tally = Tally()
    make = _maker(phase, {**spec, "run": f"{spec['run']}{tag}"})
    headers = {"X-Adaptrec-Tenant": spec["mix"]["topn_tenant"]} if phase == "topn" else None
    start = open_loop(base_url, key, send_times(rate, seconds), make, tally, threads, timeout_s,
                      keepalive=keepalive, headers=headers)
    out = tally.summary(start, seconds, rate)
    out["seconds"] = seconds
    out["connection"] = "keep-alive" if keepalive else "new per request"
    if getattr(make, "misses", None) is not None and out["requests"]:
        out["history_not_in_redis"] = round(make.misses / out["requests"], 3)
    if out["requests"]:
        out["client_cpu_ms_per_request"] = tally.client_cpu_ms(out["requests"])
    if tally.error_kinds:
        out["error_kinds"] = tally.error_kinds
    return out


def _drive_in_child(kwargs: dict) -> dict:
    return drive(**kwargs)


# ---- every phase, then the search --------------------------------------------------------------
def phase_names(args, spec: dict) -> list[str]:
    """The fixed-rate phases of this run, in order: topn and knowledge only with their learners, the
    /healthz baselines unless --no-baseline, only --phases when given."""
    mix = spec.get("mix", {})
    names = [p for p in PHASES if (p != "topn" or mix.get("topn_learners"))
             and (p != "knowledge" or mix.get("knowledge_learners"))]
    if args.baseline:
        names += list(BASELINES)
    if args.phases is not None:
        names = [p for p in names if p in args.phases]
    return names


def phase_rate(args, name: str) -> float:
    """Requests/s of a fixed-rate phase: --batch-rate for ingest_batch, --knowledge-rate for
    knowledge (issue 26's target is at 200/s), --rate for the others."""
    return {"ingest_batch": args.batch_rate, "knowledge": args.knowledge_rate}.get(name, args.rate)


def run_phases(args, base: str, key: str, spec: dict, say, meter: CpuMeter | None = None) -> dict:
    """Each phase (an unmeasured warm-up, then --seconds measured, the service's CPU metered), then
    the rate search; returns the figures by phase, `max_rps_p99_under_25ms` and `search`."""
    spec = {**spec, "run": uuid.uuid4().hex[:8]}
    common = {"base_url": base, "key": key, "spec": spec, "threads": args.threads}
    results: dict = {}
    with separate_process() as ex:
        def phase(name: str, rate: float, seconds: float, tag: str, measure_cpu: bool = False) -> dict:
            requests_of, keepalive = PHASE_SPECS[name]
            kwargs = {**common, "phase": requests_of, "rate": rate, "seconds": seconds, "tag": tag,
                      "keepalive": keepalive}
            return metered(lambda: ex.submit(_drive_in_child, kwargs).result(), meter if measure_cpu else None)

        for name in phase_names(args, spec):
            rate = phase_rate(args, name)
            if args.warmup > 0:
                phase(name, rate, args.warmup, f"w-{name}")
            load = loadavg()    # the machine is shared: the 1-minute load as the measured part starts
            results[name] = phase(name, rate, args.seconds, f"m-{name}", measure_cpu=True)
            results[name]["load_1min_at_start"] = load[0] if load else None
            say(f"{name} at {rate}/s: {json.dumps(results[name])}")
        if args.search_limit >= args.search_start:
            results.update(search(args, phase, say))
    return results


def search(args, phase, say) -> dict:
    """The highest recommend rate whose p99 stays under P99_LIMIT_MS, each step after a short
    warm-up; `phase(name, rate, seconds, tag, measure_cpu)` runs one."""
    def measure(rate: float) -> dict:
        if args.warmup > 0:
            phase("recommend", rate, min(args.warmup, 2.0), f"sw-{rate}")
        s = phase("recommend", rate, args.search_seconds, f"s-{rate}", measure_cpu=True)
        say(f"search: recommend at {rate}/s: p50 {s['p50_ms']} p99 {s['p99_ms']} ms, "
            f"{s['rps']}/s, {s['errors']} errors -> {'pass' if passes(s) else 'FAIL'}")
        return s

    best, steps = search_max_rate(measure, args.search_start, args.search_step, args.search_limit)
    return {"max_rps_p99_under_25ms": best, "search": [{k: s.get(k) for k in SEARCH_KEYS} for s in steps]}

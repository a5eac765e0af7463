"""bench.latency --servers gunicorn,granian [--rounds N]: the HTTP servers side by side on one
setup (one scratch database, one floor, one learner mix). Each round starts each server in turn
(A B A B ...: interleaved, so a drift of the shared machine falls on both), warms the caches,
checks the first answer, runs the fixed-rate phases and the rate search, and stops it. The report
holds every run and, per server, the median of its rounds of what issue 29 compares."""
from __future__ import annotations

import statistics
from contextlib import ExitStack

from bench.latency.report import ratios


# The figures compared, from one run's result: name -> a function of the run.
def _cpu(run: dict, phase: str):
    return ((run.get(phase) or {}).get("server_cpu_ms_per_request") or {}).get("gunicorn_workers")


FIGURES = {
    "healthz_worker_cpu_ms": lambda r: _cpu(r, "healthz"),
    "healthz_p50_ms": lambda r: (r.get("healthz") or {}).get("p50_ms"),
    "healthz_p99_ms": lambda r: (r.get("healthz") or {}).get("p99_ms"),
    "recommend_worker_cpu_ms": lambda r: _cpu(r, "recommend"),
    "recommend_p50_ms": lambda r: (r.get("recommend") or {}).get("p50_ms"),
    "recommend_p99_ms": lambda r: (r.get("recommend") or {}).get("p99_ms"),
    "recommend_errors": lambda r: (r.get("recommend") or {}).get("errors"),
    "max_rps_p99_under_25ms": lambda r: r.get("max_rps_p99_under_25ms"),
    "worker_rss_max_mb": lambda r: r.get("worker_rss_max_mb"),
    "load_1min_at_recommend": lambda r: (r.get("recommend") or {}).get("load_1min_at_start"),
}
# issue 29's targets on bench.latency's realistic mix, 2 workers
TARGETS = {"recommend_worker_cpu_ms": ("<=", 1.0), "healthz_worker_cpu_ms": ("<=", 0.25),
           "max_rps_p99_under_25ms": (">=", 1000.0), "recommend_p50_ms": ("<=", 1.5),
           "recommend_p99_ms": ("<=", 8.0)}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summary(runs: list[dict]) -> dict:
    """Per server: the median of each figure over its rounds, and issue 29's targets on them."""
    out = {}
    for server in dict.fromkeys(r["server"] for r in runs):
        mine = [r for r in runs if r["server"] == server]
        med = {name: _median(r["figures"][name] for r in mine) for name in FIGURES}
        med["rounds"] = len(mine)
        med["targets"] = {f"{name}{op}{limit:g}": (None if med[name] is None else
                                                  med[name] <= limit if op == "<=" else med[name] >= limit)
                          for name, (op, limit) in TARGETS.items()}
        out[server] = med
    names = list(out)
    if len(names) == 2:
        a, b = names
        out[f"{b}/{a}"] = {name: round(out[b][name] / out[a][name], 2)
                           for name in FIGURES if out[a].get(name) and out[b].get(name) is not None}
    return out


def compare(args, target, result: dict, say, measure) -> None:
    """Each round, each of args.servers: started, measured with `measure(args, target, run, say)`,
    stopped; every run into result["runs"], the medians into result["servers"]."""
    from bench.latency.setup import first_answer, serve_target

    runs = []
    for round_no in range(1, args.rounds + 1):
        for server in args.servers:
            say(f"round {round_no}: {server}")
            run: dict = {}
            with ExitStack() as stack:
                served = serve_target(args, stack, target, run, say, server=server)
                first_answer(served, run, say)
                measure(args, served, run, say)
            run["ratios"] = ratios({**run, "floor": result.get("floor")})
            run["figures"] = {name: get(run) for name, get in FIGURES.items()}
            runs.append({"server": server, "round": round_no, **run})
            say(f"round {round_no} {server}: {run['figures']}")
    result["runs"] = runs
    result["servers"] = summary(runs)

"""bench.soak's figures: latency percentiles, the request rows summed up (overall, per kind, the
warm-up apart, a timeline), the workers' memory and its growth, the service log's errors, and the
short summary printed at the end."""
from __future__ import annotations

import os
import re
from pathlib import Path

from harness.measure import child_pids, percentile, proc_rss_mb

LABELS = ("recommend", "ingest", "ingest_retry", "similar", "trending")  # what the report counts
TARGETS = {"errors": 0, "memory_growth_pct": 10.0}


# ---- pure helpers (tested in tests/unit/test_soak_bench.py) -----------------------------------
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


# ---- memory and the service's log ------------------------------------------------------------
def machine_times() -> tuple[float, float, float] | None:
    """The machine's (busy, steal, all) CPU seconds so far, from /proc/stat's first line; None
    where there is none."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle, steal, total = fields[3] + fields[4], fields[7], sum(fields)
    return (total - idle - steal) / ticks, steal / ticks, total / ticks


def cpu_timeline(samples: list[dict], window_s: float = 30.0) -> list[dict]:
    """Per window of `window_s`, the cores each metered group used, and the machine's busy and
    steal shares, from cumulative samples {"t_s", "used": {group: CPU s}, "machine": (busy, steal,
    all) or None}: what a rising tail cost the service, and what the host took."""
    out, start = [], None
    for sample in samples:
        if start is None:
            start = sample
            continue
        span = sample["t_s"] - start["t_s"]
        if span < window_s and sample is not samples[-1]:
            continue
        if span > 0:
            row = {"from_s": round(start["t_s"], 1), "to_s": round(sample["t_s"], 1),
                   "cores": {g: round((sample["used"].get(g, 0.0) - start["used"].get(g, 0.0)) / span, 3)
                             for g in sample["used"]}}
            if sample.get("machine") and start.get("machine"):
                busy, steal, total = (b - a for a, b in zip(start["machine"], sample["machine"]))
                if total > 0:
                    row["machine_busy_pct"] = round(100 * busy / total, 1)
                    row["steal_pct"] = round(100 * steal / total, 1)
            out.append(row)
        start = sample
    return out


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


# ---- the summary ---------------------------------------------------------------------------------
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
    for w in result.get("cpu_timeline") or []:
        lines.append(f"  {w['from_s']:>6.0f}-{w['to_s']:<6.0f} s: cores {w['cores']}, machine busy "
                     f"{w.get('machine_busy_pct')} %, steal {w.get('steal_pct')} %")
    lines.append("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED' if v is not None else 'n/a'}"
                                         for k, v in result["targets"].items()))
    return "\n".join(lines)


def assembled(figures: dict, result: dict, config: dict, rate: float, memory_note: str | None) -> dict:
    """The report: the headline figures first, then the rest of `figures`, the config, what
    `result` holds (date, machine, setup, ids, load averages), and the targets."""
    head = {k: figures.pop(k) for k in ("requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms",
                                        "memory_growth_pct", "achieved_rps", "errors_by_status")}
    growth = head["memory_growth_pct"]
    report = {**head, "target_rps": rate, **({"memory_note": memory_note} if memory_note else {}),
              **figures, "config": config, **result}
    report["targets"] = {"errors==0": head["errors"] == 0 and report["warmup"]["errors"] == 0,
                         "rate_delivered": head["achieved_rps"] >= 0.95 * rate,
                         "memory_growth<10%": None if growth is None else growth < TARGETS["memory_growth_pct"]}
    return report

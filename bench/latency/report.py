"""bench.latency's verdicts: the service beside its floors (`ratios`) and every target of the request
path (`targets`), from the figures of one run."""
from __future__ import annotations

TARGETS = {"recommend_p50_ms": 3.0, "recommend_p99_ms": 15.0, "max_rps": 500.0, "worker_cpu_ms": 2.0,
           "healthz_worker_cpu_ms": 0.5, "worker_rss_mb": 300.0, "knowledge_p50_ms": 5.0}


def _worker_cpu(phase: dict | None) -> float | None:
    return ((phase or {}).get("server_cpu_ms_per_request") or {}).get("gunicorn_workers")


def _check(value, limit, higher: bool = False) -> bool | None:
    if value is None or limit is None:
        return None
    return value >= limit if higher else value <= limit


def targets(result: dict, before_max_rate: float | None = None) -> dict:
    """Every target of the request path (absolute, and as ratios within this run); None: not measured."""
    rec, health = result.get("recommend") or {}, result.get("healthz") or {}
    floor = (result.get("floor") or {}).get("mean_ms")
    cpu, health_cpu = _worker_cpu(rec), _worker_cpu(health)
    best = result.get("max_rps_p99_under_25ms")
    return {
        "recommend_p50_ms<=3": _check(rec.get("p50_ms"), TARGETS["recommend_p50_ms"]),
        "recommend_p99_ms<=15": _check(rec.get("p99_ms"), TARGETS["recommend_p99_ms"]),
        "max_rps_p99_under_25ms>=500": _check(best, TARGETS["max_rps"], higher=True),
        "worker_cpu_ms_per_recommendation<=2": _check(cpu, TARGETS["worker_cpu_ms"]),
        "recommend_p50<=1.3x_healthz_p50": _check(rec.get("p50_ms"),
                                                   1.3 * health["p50_ms"] if health.get("p50_ms") else None),
        "worker_cpu<=2x_in_process_fit_score": _check(cpu, 2 * floor if floor else None),
        "healthz_worker_cpu_ms<=0.5": _check(health_cpu, TARGETS["healthz_worker_cpu_ms"]),
        "max_rps>=2x_before": _check(best, 2 * before_max_rate if before_max_rate else None, higher=True),
        "worker_rss_mb<300": _check(result.get("worker_rss_max_mb"), TARGETS["worker_rss_mb"]),
        # issue 26: the knowledge endpoint, and the mastery / review strategies within the recommendation budget
        "knowledge_p50_ms<=5": _check((result.get("knowledge") or {}).get("p50_ms"), TARGETS["knowledge_p50_ms"]),
        **{f"{name}_{q}_ms<={TARGETS[f'recommend_{q}_ms']:g}": _check((result.get(name) or {}).get(f"{q}_ms"),
                                                                      TARGETS[f"recommend_{q}_ms"])
           for name in ("mastery", "review") for q in ("p50", "p99")},
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

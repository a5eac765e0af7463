"""The product's side of bench.totara: a Totara export imported and trained through the real job,
the stored model loaded as the service holds it, the service started as `adaptrec serve` runs it
with a Totara key, asked as Totara asks (signed GETs), and its own log read back."""
from __future__ import annotations

import http.client
import json
import subprocess
import time
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from app.totara.protocol import sign
from bench.totara.export import COMPONENT, TENANT, K
from bench.totara.metrics import rounded
from harness.measure import percentile


def signed_headers(totara_key: str, now: float | None = None) -> dict:
    """The two headers Totara's client sends (app.totara.protocol.sign)."""
    stamp = int(time.time() if now is None else now)
    return {"X-Totara-Time": str(stamp), "X-Totara-Ml-Key": sign(stamp, totara_key)}


def user_items_path(user: int, n: int = K, item_type: str = COMPONENT, tenant: str = TENANT) -> str:
    return f"/user-items?totara_user_id={user}&item_type={item_type}&tenant={tenant}&n_items={n}"


def similar_items_path(item_id: str, n: int = K, tenant: str = TENANT) -> str:
    return f"/similar-items?totara_item_id={item_id}&tenant={tenant}&n_items={n}"


def import_and_train(url: str, folder: Path, mode: str, seed: int, threads: int) -> dict:
    """run_import (format totara, `mode`) and run_training over every tenant (train --all); the
    outcome of tenant 0's engagement model of the root unit `totara`."""
    from app.infra.db import connect
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    t0 = time.perf_counter()
    with closing(connect(url, application_name="bench-totara")) as conn:
        reports = run_import(conn, "totara", [folder], progress=False, totara_mode=mode)
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = run_training(url, TrainConfig(tenant=None, seed=seed, threads=threads), progress=False)
    train_s = time.perf_counter() - t0
    root = next((o for o in report.outcomes if o.tenant == TENANT and o.unit_id == "totara"
                 and o.objective == "engagement"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"tenant {TENANT}: the root model was not activated: {root}; all: {report.outcomes}")
    return {"outcome": root, "outcomes": [(o.tenant, o.unit_id, o.objective, o.status) for o in report.outcomes],
            "rows_read": sum(r.rows_read for r in reports), "import_seconds": round(import_s, 1),
            "import_notes": [n for r in reports for n in r.notes],
            "import_warnings": [w for r in reports for w in r.warnings],
            "train_seconds": round(train_s, 1)}


def load_serving_model(url: str, model_id: int):
    """(the stored model as the service holds it, the hyperparameters the job stored with it)."""
    from app.infra.db import connect
    from app.model import store as modelstore
    from app.online.scoring import ServingModel

    with closing(connect(url, application_name="bench-totara")) as conn:
        stored = modelstore.load_model(conn, TENANT, model_id)
        listed = {m["model_id"]: m for m in modelstore.list_models(conn, TENANT, include_retired=True)}
        conn.rollback()
    params = listed[model_id]["hyperparams"] or {}
    return ServingModel.from_stored(stored), {k: params.get(k) for k in ("l2", "warp", "weight", "foldin_reg")}


def totara_service(stack, url: str, settings, tmp: Path, workers: int, totara_key: str):
    """gunicorn on `url` with `totara_key` as ADAPTREC_TOTARA_KEY, JSON logs to `tmp`, and a Redis
    prefix of its own dropped afterwards; stopped by `stack`."""
    from harness.databases import drop_redis_prefix
    from harness.service import running_service

    prefix = f"{settings.redis_prefix}{uuid.uuid4().hex[:8]}:"
    stack.callback(drop_redis_prefix, settings.redis_url, prefix)
    return stack.enter_context(running_service(
        url, settings.redis_url, "unused-" + uuid.uuid4().hex, tmp / "gunicorn.log", redis_prefix=prefix,
        workers=workers, env={"ADAPTREC_TOTARA_KEY": totara_key, "ADAPTREC_LOG_FORMAT": "json"}))


def get_json(base_url: str, path: str, headers: dict, timeout_s: float = 30.0) -> tuple[int, dict]:
    """(status, parsed body) of one GET; an error status is returned, not raised."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"unparsed": raw[:300].decode("utf-8", "replace")}


def ask_service(base_url: str, totara_key: str, users: list[int]) -> tuple[list[list[int]], dict]:
    """/user-items of each user, one request after another over HTTP: (answers, statuses, short
    answers, latency, the first body)."""
    answers, statuses, short, seconds, first = [], {}, 0, [], None
    for user in users:
        t0 = time.perf_counter()
        status, body = get_json(base_url, user_items_path(user), signed_headers(totara_key))
        seconds.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        first = body if first is None else first
        items = [int(i) for i, _ in body.get("items", [])] if status == 200 else []
        short += len(items) < K
        answers.append(items)
    ms = [s * 1000 for s in seconds]
    return answers, {"statuses": statuses, "short_answers": short, "first_body": first,
                     "sequential_ms": {"p50": rounded(percentile(ms, 50), 2), "p99": rounded(percentile(ms, 99), 2)}}


def server_log_summary(log_path: Path) -> dict:
    """Per endpoint: statuses and the app's own duration_ms (p50/p99) from the JSON access lines;
    and how many ERROR lines (tracebacks) the log holds."""
    by_endpoint: dict[str, dict] = {}
    errors, samples = 0, []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if str(entry.get("level", "")).upper() in ("ERROR", "CRITICAL"):
            errors += 1
            if len(samples) < 3:
                samples.append(line[:500])
        if entry.get("event") != "request":
            continue
        e = by_endpoint.setdefault(entry.get("endpoint"), {"statuses": {}, "durations": []})
        e["statuses"][str(entry.get("status"))] = e["statuses"].get(str(entry.get("status")), 0) + 1
        e["durations"].append(float(entry.get("duration_ms") or 0.0))
    out = {name: {"statuses": e["statuses"], "app_p50_ms": rounded(percentile(e["durations"], 50), 2),
                  "app_p99_ms": rounded(percentile(e["durations"], 99), 2),
                  "app_max_ms": rounded(max(e["durations"]), 2)}
           for name, e in by_endpoint.items()}
    return {"endpoints": out, "error_lines": errors, "error_samples": samples}


def busy_processes(limit: int = 8) -> list[str]:
    """The busiest processes on the machine (ps: CPU share over each one's life, elapsed time, command)."""
    try:
        text = subprocess.run(["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split())[:120] for line in text.splitlines()[1: limit + 1]]

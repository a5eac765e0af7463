"""xAPI ingest speed (issue 28): statements per second through POST /xapi/statements in batches of
100 against the native POST /v1/interactions in batches of 100 in the same run (same service,
database, concurrency, learners and items), the latency of a single statement (and of a single
native event), and `adaptrec import --format xapi` rows per second.

    python -m bench.xapi_ingest [--batches 60] [--clients 4] [--singles 300] [--import-rows 20000] [--json OUT]

It creates and drops its own database and Redis prefix on the configured servers (or the embedded
ones) and starts gunicorn on it (2 workers). The items are created by xAPI statements first (on first
sight), so both paths then record onto the same existing items. Native and xAPI rounds alternate
(native, xAPI, native, xAPI, ...) so a change in the shared machine's load touches both alike; each
rate is the events recorded over the wall time of its rounds.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from app.config import PROJECT_ROOT, Settings
from cli.embedded import servers_for
from harness.databases import connected_scratch_database, scratch_redis_prefix
from harness.measure import add_settle_arguments, loadavg, machine, percentile, settle
from harness.report import emit
from harness.service import running_service
from jobs.importers import run_import

KEY = "bench-xapi-key-0123456789"
SITE = "https://lms.bench.example"
BATCH = 100
ITEMS = 200
USERS = 2000


def activity(k: int) -> str:
    return f"{SITE}/mod/quiz/question/{k % ITEMS}"


def statement(n: int, start: datetime) -> dict:
    """Statement number n: learner n % USERS answers question n % ITEMS, as Moodle's log store writes one."""
    return {"id": str(uuid.uuid4()),
            "actor": {"objectType": "Agent", "name": f"Learner {n % USERS}",
                      "account": {"homePage": SITE, "name": f"u{n % USERS}"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en": "answered"}},
            "object": {"objectType": "Activity", "id": activity(n),
                       "definition": {"name": {"en": f"Question {n % ITEMS}"},
                                      "type": "http://adlnet.gov/expapi/activities/cmi.interaction"}},
            "result": {"success": n % 3 != 0, "score": {"scaled": 1.0 if n % 3 else 0.0}, "duration": "PT41S"},
            "context": {"contextActivities": {"parent": [{"id": f"{SITE}/mod/quiz/view.php?id={n % 10}"}],
                                              "grouping": [{"id": f"{SITE}/course/view.php?id=1"}]},
                        "platform": "Moodle"},
            "timestamp": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")}


def native(n: int, start: datetime) -> dict:
    """The same event as the native API takes it."""
    return {"event_id": f"native-{uuid.uuid4()}", "user_id": f"u{n % USERS}", "item_id": activity(n),
            "kind": "attempt", "outcome": int(n % 3 != 0), "value": 1.0 if n % 3 else 0.0, "duration_ms": 41000,
            "occurred_at": (start + timedelta(seconds=n)).isoformat()}


class Client:
    """One keep-alive connection; POST JSON, return (status, seconds)."""

    def __init__(self, base: str):
        url = urlparse(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.basic = "Basic " + base64.b64encode(f"bench:{KEY}".encode()).decode()

    def post(self, path: str, body, xapi: bool) -> tuple[int, float]:
        """POST `body` (JSON, or bytes already encoded); the status and the seconds to the answer's end."""
        headers = {"Content-Type": "application/json"}
        headers.update({"Authorization": self.basic, "X-Experience-API-Version": "1.0.3"} if xapi
                       else {"Authorization": f"Bearer {KEY}"})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        started = time.perf_counter()
        self.conn.request("POST", path, body=data, headers=headers)
        answer = self.conn.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def batches_round(base: str, xapi: bool, batches: list[list[dict]], clients: int) -> dict:
    """Send `batches` from `clients` threads (each its own connection); the round's wall time and errors.
    The bodies are encoded before the clock starts: the client shares the cores with the service, and
    an xAPI batch is about three times the bytes of a native one."""
    path = "/xapi/statements" if xapi else "/v1/interactions"
    pending = [json.dumps(b if xapi else {"interactions": b}).encode() for b in batches]
    pending_bytes = list(pending)
    lock = threading.Lock()
    errors: list[int] = []

    def work():
        client = Client(base)
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    batch = pending.pop()
                status, _ = client.post(path, batch, xapi)
                if status not in (200, 201):
                    errors.append(status)
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - started, "events": sum(len(b) for b in batches), "errors": errors,
            "bytes_per_batch": round(sum(len(b) for b in pending_bytes) / len(pending_bytes))}


def singles(base: str, xapi: bool, count: int, first: int, start: datetime) -> list[float]:
    """Latencies (ms) of `count` single-event requests, one after another on one connection."""
    client = Client(base)
    out = []
    try:
        for n in range(first, first + count):
            body = statement(n, start) if xapi else native(n, start)
            status, seconds = client.post("/xapi/statements" if xapi else "/v1/interactions", body, xapi)
            if status not in (200, 201):
                raise RuntimeError(f"a single {'statement' if xapi else 'event'} was answered {status}")
            out.append(1000 * seconds)
    finally:
        client.close()
    return out


def measure_http(base: str, n_batches: int, clients: int, n_singles: int, rounds: int, warmup: int = 8) -> dict:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    # Warm-up: every activity (and its units) created on first sight; the learners created; both paths warm.
    warm = [statement(n, start) for n in range(USERS)]
    client = Client(base)
    try:
        for k in range(0, len(warm), BATCH):
            status, _ = client.post("/xapi/statements", warm[k:k + BATCH], True)
            if status != 200:
                raise RuntimeError(f"the warm-up batch was answered {status}")
    finally:
        client.close()
    counter = [USERS]

    def numbers(count: int) -> range:
        first = counter[0]
        counter[0] += count
        return range(first, first + count)

    per = max(1, n_batches // rounds)
    # An untimed round of each path at the timed concurrency: every worker's connections, caches and
    # the tables' pages warm for both, not only for the path the items were made by.
    for xapi, make in ((False, native), (True, statement)):
        ns = list(numbers(warmup * BATCH))
        batches_round(base, xapi, [[make(n, start) for n in ns[k:k + BATCH]] for k in range(0, len(ns), BATCH)],
                      clients)
    native_rounds, xapi_rounds = [], []
    for _ in range(rounds):
        ns = list(numbers(per * BATCH))
        native_rounds.append(batches_round(base, False, [[native(n, start) for n in ns[k:k + BATCH]]
                                                         for k in range(0, len(ns), BATCH)], clients))
        ns = list(numbers(per * BATCH))
        xapi_rounds.append(batches_round(base, True, [[statement(n, start) for n in ns[k:k + BATCH]]
                                                      for k in range(0, len(ns), BATCH)], clients))
    native_single = singles(base, False, n_singles, counter[0], start)
    xapi_single = singles(base, True, n_singles, counter[0] + n_singles, start)

    def rate(rs: list[dict]) -> dict:
        events, seconds = sum(r["events"] for r in rs), sum(r["seconds"] for r in rs)
        return {"events": events, "seconds": round(seconds, 2), "per_second": round(events / seconds, 1),
                "per_round": [round(r["events"] / r["seconds"], 1) for r in rs],
                "errors": sum(len(r["errors"]) for r in rs), "bytes_per_batch": rs[0]["bytes_per_batch"]}

    def lat(ms: list[float]) -> dict:
        return {"requests": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
                "mean_ms": round(sum(ms) / len(ms), 2)}

    native_rate, xapi_rate = rate(native_rounds), rate(xapi_rounds)
    return {"batch": BATCH, "clients": clients, "rounds": rounds, "warmup_batches": warmup,
            "native_batches": native_rate, "xapi_batches": xapi_rate,
            "xapi_vs_native": round(xapi_rate["per_second"] / native_rate["per_second"], 3),
            "target": "xapi >= 0.8 x native",
            "native_single": lat(native_single), "xapi_single": lat(xapi_single)}


def measure_import(conn, rows: int) -> dict:
    """`adaptrec import --format xapi` of a JSON Lines file of `rows` statements (tenant 'imported'),
    then the idempotent re-run."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "statements.jsonl"
        with open(path, "w") as f:
            for n in range(rows):
                f.write(json.dumps(statement(n, start)) + "\n")
        first, = run_import(conn, "xapi", [path], progress=False, tenant="imported")
        again, = run_import(conn, "xapi", [path], progress=False, tenant="imported")
    return {"rows": first.rows_read, "seconds": round(first.seconds, 2),
            "rows_per_second": round(first.rows_read / first.seconds), "created": first.created,
            "rerun_seconds": round(again.seconds, 2), "rerun_rows_per_second": round(again.rows_read / again.seconds),
            "rerun_created": {k: v for k, v in again.created.items() if v}}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.xapi_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="batches of 100 per path (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds the batches are split into")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections (default 4)")
    parser.add_argument("--warmup-batches", type=int, default=8,
                        help="untimed batches per path before the timed rounds (default 8)")
    parser.add_argument("--singles", type=int, default=300, help="single-statement requests timed (default 300)")
    parser.add_argument("--import-rows", type=int, default=20000, help="statements in the imported file")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    add_settle_arguments(parser, "before measuring", load=3.0, max_s=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = settle(args.settle_load, args.settle_max, lambda m: print(m, flush=True))
    with (servers_for(Settings.from_env()) as settings,
          connected_scratch_database(settings.database_url, "adaptrec_bench") as (db_url, conn),
          scratch_redis_prefix(settings.redis_url, "adaptrec-bench-xapi") as prefix,
          tempfile.TemporaryDirectory() as logs):
        with running_service(db_url, settings.redis_url, KEY, Path(logs) / "gunicorn.log", redis_prefix=prefix,
                             workers=args.workers) as service:
            http_figures = measure_http(service.base_url, args.batches, args.clients, args.singles, args.rounds,
                                        args.warmup_batches)
        load_mid = loadavg()
        import_figures = measure_import(conn, args.import_rows)
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version, = cur.fetchone()
        conn.rollback()
    result = {"bench": "xapi_ingest", "commit": commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "http": http_figures, "import": import_figures, "workers": args.workers,
              "load_before": load_before, "load_after_http": load_mid, "load_after": loadavg(),
              "machine": machine(), "postgres": version}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

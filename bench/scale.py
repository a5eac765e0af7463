"""The scale run (issue 15): `python -m bench.scale --json OUT [--learners 100000 --attempts 10000000
--engagements 3000000 --levels 5] [--workers 2] [--keep]`.

A synthetic platform of the engagement recommender's sizes, end to end through the product's own
commands, each a separate process as an operator runs it, timed and with the peak memory of its
whole process tree:
1. `adaptrec demo --levels L ...` into a new database (bulk load: nothing else is in it): rows/s,
   database size on disk, per table.
2. `adaptrec train --all --workers N` (ADAPTREC_TRAIN_THREADS = cores / N): wall time, peak memory,
   models per objective and status, stored training seconds per unit kind and objective, the
   largest model row (TOAST-compressed and raw item weights).
3. `python -m bench.latency --database ... --unit U --phases recommend,ingest_single`: the latency
   bench's mix against this database (a chapter: --unit, default the first level's first chapter).
Run the same with the demo's default sizes (`--learners 2000 --attempts 200000 --engagements 50000
--levels 1 --unit demo.math.1`) for the growth from the demo size (docs/BENCHMARKS.md).
Needs ADAPTREC_DATABASE_URL (a server URL; the run's database is created beside it and dropped
unless --keep) and ADAPTREC_REDIS_URL.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from harness.measure import TreeMemory, loadavg
from harness.report import emit, header

SIZES_SQL = """SELECT relname, pg_total_relation_size(oid) FROM pg_class
               WHERE relname IN ('interactions', 'users', 'items', 'units', 'models', 'model_arrays')"""
TRAINED_SQL = """SELECT u.kind, m.objective, count(*), sum(m.training_seconds), max(m.training_seconds)
                 FROM models m JOIN units u USING (tenant, unit_id) GROUP BY 1, 2 ORDER BY 1, 2"""
ROW_SQL = """SELECT m.objective, max(pg_column_size(a.*)), max(coalesce(octet_length(a.item_weights), 0))
             FROM models m JOIN model_arrays a USING (model_id) GROUP BY 1"""


def timed(command: list[str], env: dict, log: Path) -> dict:
    """Run `command` (a child process tree), returning its wall seconds, exit code and the peak
    resident memory of the whole tree."""
    started = time.perf_counter()
    with TreeMemory(interval_s=1.0) as memory, log.open("w") as out:
        code = subprocess.call(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return {"command": " ".join(command[1:]), "seconds": round(time.perf_counter() - started, 1), "exit": code,
            "peak_tree_mb": round(memory.peak_total_mb)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--engagements", type=int, default=3_000_000)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--unit", default=None, help="the latency phase's unit (default: demo.math.l1.1, "
                                                     "or demo.math.1 with one level)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is in the report)")
    parser.add_argument("--logs", type=Path, default=Path("var/bench-scale"))
    args = parser.parse_args(argv)
    if not os.environ.get("ADAPTREC_DATABASE_URL") or not os.environ.get("ADAPTREC_REDIS_URL"):
        parser.error("set ADAPTREC_DATABASE_URL (a Postgres server URL) and ADAPTREC_REDIS_URL")
    return args


def prepare(args, admin) -> tuple[str, str, dict]:
    """A new database of this run's on the server (its name, URL), and the commands' environment:
    its URL, ADAPTREC_TRAIN_THREADS = cores / --workers."""
    args.logs.mkdir(parents=True, exist_ok=True)
    name = f"adaptrec_scale_{int(time.time())}"
    parts = urlsplit(os.environ["ADAPTREC_DATABASE_URL"])
    url = urlunsplit(parts._replace(path="/" + name))
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "ADAPTREC_DATABASE_URL": url,
           "ADAPTREC_TRAIN_THREADS": str(max(1, (os.cpu_count() or 2) // args.workers))}
    return name, url, env


def measure(args, url: str, env: dict, result: dict) -> None:
    """The demo generated and imported, the whole tree trained, then the latency bench against it."""
    python = sys.executable
    rows = args.attempts + args.engagements
    result["generate_and_import"] = timed(
        [python, "-m", "cli", "demo", "--quiet", "--learners", str(args.learners), "--attempts", str(args.attempts),
         "--engagements", str(args.engagements), "--levels", str(args.levels)], env, args.logs / "demo.log")
    result["generate_and_import"]["rows_per_s"] = round(rows / result["generate_and_import"]["seconds"])
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        result["database_mb"] = round(cur.fetchone()[0] / 2**20)
        cur.execute(SIZES_SQL)
        result["table_mb"] = {t: round(b / 2**20, 1) for t, b in cur.fetchall()}
    result["train"] = timed([python, "-m", "cli", "train", "--all", "--workers", str(args.workers)], env,
                            args.logs / "train.log")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(TRAINED_SQL)
        result["train"]["per_kind"] = [{"kind": k, "objective": o, "models": n, "training_seconds": round(s, 1),
                                        "max_seconds": round(mx, 1)} for k, o, n, s, mx in cur.fetchall()]
        cur.execute(ROW_SQL)
        result["model_row_mb"] = {o: {"row_toasted": round(r / 2**20, 2), "item_weights_raw": round(w / 2**20, 2)}
                                  for o, r, w in cur.fetchall()}
    measure_latency(args, url, result)


def measure_latency(args, url: str, result: dict) -> None:
    """bench.latency's recommend and ingest_single phases against this database, as a command."""
    unit = args.unit or ("demo.math.1" if args.levels == 1 else "demo.math.l1.1")
    latency = args.logs / "latency.json"
    result["latency_run"] = timed(
        [sys.executable, "-m", "bench.latency", "--database", url, "--unit", unit, "--learners", "2000",
         "--phases", "recommend,ingest_single", "--search-limit", "0", "--json", str(latency)],
        {**os.environ}, args.logs / "latency.log")
    if latency.exists():
        lat = json.loads(latency.read_text())
        result["latency"] = {k: lat.get(k) for k in ("candidates", "model_unit", "recommend", "ingest_single",
                                                     "redis_bytes_per_cached_learner", "load_before")}


def main(argv=None) -> int:
    args = parse_args(argv)
    admin = psycopg2.connect(os.environ["ADAPTREC_DATABASE_URL"])
    admin.autocommit = True
    name, url, env = prepare(args, admin)
    result = header() | {"database": name, "sizes": vars(args) | {"logs": str(args.logs), "json": str(args.json)}}
    try:
        measure(args, url, env, result)
    finally:
        if not args.keep:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    result["load_at_end"] = loadavg()
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

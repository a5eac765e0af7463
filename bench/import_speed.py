"""Import speed: time one import into a fresh database, then the idempotent re-run.

    python -m bench.import_speed --data ../shared/data/assist2009/attempts.csv.gz [--json OUT]

It runs on the configured servers (ADAPTREC_DATABASE_URL / ADAPTREC_REDIS_URL) or the embedded
ones, but never touches their data: it creates a database `adaptrec_bench_<random>`, migrates
it, imports twice and drops it again. Prints the figures as JSON (and writes them to --json).
"""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from app.config import Settings
from cli.embedded import servers_for
from harness.databases import connected_scratch_database
from harness.measure import machine
from harness.report import emit
from jobs.importers import FORMATS, ImportFailed, run_import


def measure(conn, fmt: str, data: Path) -> dict:
    """Import `data` twice through `conn`; the figures of both runs."""
    first, = run_import(conn, fmt, [data], progress=False)
    again, = run_import(conn, fmt, [data], progress=False)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM interactions")
        stored, = cur.fetchone()
        cur.execute("SHOW server_version")
        version, = cur.fetchone()
    return {
        "format": fmt,
        "data": str(data),
        "rows": first.rows_read,
        "seconds": round(first.seconds, 2),
        "rows_per_second": round(first.rows_read / first.seconds),
        "created": first.created,
        "interactions_stored": stored,
        "rerun_seconds": round(again.seconds, 2),
        "rerun_created": sum(again.created.values()),
        "machine": machine(),
        "postgres": version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.import_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="the file (or folder) to import")
    parser.add_argument("--format", default="assistments", choices=sorted(FORMATS), help="default assistments")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data}: no such file or folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with (servers_for(Settings.from_env()) as settings,
              connected_scratch_database(settings.database_url, "adaptrec_bench") as (_, conn)):
            result = measure(conn, args.format, args.data)
    except ImportFailed as exc:
        print(f"import_speed: {exc}", file=sys.stderr)
        return 2
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

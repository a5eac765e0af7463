"""How long `adaptrec demo` takes, end to end, into a fresh database.

    python -m bench.demo_speed [--attempts 1000000] [--learners 2000] [--engagements 50000] [--json OUT]

Creates a temporary database (adaptrec_bench_<random>) on ADAPTREC_DATABASE_URL's server when
set, else on the embedded servers, migrates it, times generate_demo (generation, COPY and
merge, commit included) and drops the database again. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

from app.config import Settings
from cli.embedded import servers_for
from harness.databases import connected_scratch_database
from harness.report import emit
from jobs.demo import DemoConfig, generate_demo


def run(config: DemoConfig, database_url: str) -> dict:
    with connected_scratch_database(database_url, "adaptrec_bench") as (_, conn):
        started = time.perf_counter()
        generate_demo(conn, config, progress=sys.stderr.isatty())
        seconds = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM interactions")
            interactions = cur.fetchone()[0]
    return {"attempts": config.attempts, "engagements": config.engagements, "learners": config.learners,
            "interactions": interactions, "seconds": round(seconds, 2),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--learners", type=int, default=DemoConfig.learners)
    parser.add_argument("--engagements", type=int, default=DemoConfig.engagements)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write the result to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = DemoConfig(seed=args.seed, learners=args.learners, attempts=args.attempts,
                        engagements=args.engagements)
    configured = os.environ.get("ADAPTREC_DATABASE_URL")
    if configured:  # only Postgres is needed, so ADAPTREC_REDIS_URL may be unset
        result = run(config, configured)
    else:
        with servers_for(Settings.from_env()) as settings:
            result = run(config, settings.database_url)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training benchmark: `python -m bench.train [--data PATH] [--synthetic N] [--workers N] [--dask] [--json OUT]`.

1. Imports the ASSISTments 2009 attempts into a fresh database and trains every model unit
   with tuning through the real job (targets: under 2 minutes on a 2-core machine).
2. Trains one synthetic unit (the demo root) with about N interactions (target: 1M in under 60 s).
Reports seconds, held-out metrics beside the baseline, and peak memory (target under 2 GB).
Each part runs in a database of its own, created and dropped here.

--workers N trains the units on a local pool of N processes (the job's --workers); --dask on a
Dask cluster of N worker processes (one thread each) and a scheduler, started here as separate
processes and stopped afterwards (harness.dask_cluster). Memory is then also sampled over the
whole process tree while the job trains (this process, its workers, the cluster).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import date
from pathlib import Path

from app.config import PROJECT_ROOT, Settings
from cli.embedded import servers_for
from harness.databases import connected_scratch_database
from harness.measure import TreeMemory, machine
from harness.report import emit
from jobs.train import TrainConfig, run_training

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summarise(report, objective: str = "practice") -> dict:
    chosen = [o for o in report.outcomes if o.objective == objective]
    out = {"models": len(chosen), "activated": sum(o.status == "activated" for o in chosen),
           "parent_serves": sum(o.status == "parent_serves" for o in chosen),
           "failed": [o.unit_id for o in chosen if o.status not in ("activated", "parent_serves")]}
    return out


def bench_assistments(server_url: str, data: Path, config: TrainConfig) -> dict:
    from jobs.importers import run_import

    with connected_scratch_database(server_url) as (url, conn):
        t0 = time.perf_counter()
        run_import(conn, "assistments", [data], progress=False)
        import_s = time.perf_counter() - t0
        with TreeMemory() as memory:
            t0 = time.perf_counter()
            report = run_training(url, config, progress=False)
            train_s = time.perf_counter() - t0
        root = next((o for o in report.outcomes if o.unit_id == "assistments"), None)
        skills = [o for o in report.outcomes if o.unit_id.startswith("skill:") and o.status == "activated"]
        return {
            "import_seconds": round(import_s, 2),
            "train_seconds": round(train_s, 2),
            **summarise(report),
            "skill_models": len(skills),
            "train_memory": memory.summary(),
            "root": {"auc": root.metrics["model"]["auc"], "logloss": root.metrics["model"]["logloss"],
                     "ece": root.metrics["model"]["ece"],
                     "ece_uncalibrated": root.metrics["model_uncalibrated_ece"],
                     "baseline_auc": root.metrics["baseline"]["auc"],
                     "baseline_logloss": root.metrics["baseline"]["logloss"],
                     "seconds": round(root.seconds, 2)} if root and root.metrics else None,
        }


def bench_synthetic(server_url: str, attempts: int, config: TrainConfig) -> dict:
    from jobs.demo import DemoConfig, generate_demo

    with connected_scratch_database(server_url) as (url, conn):
        generate_demo(conn, DemoConfig(seed=0, learners=max(2000, attempts // 100), attempts=attempts, engagements=0))
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM interactions")
            interactions = cur.fetchone()[0]
        conn.rollback()
        t0 = time.perf_counter()
        report = run_training(url, config, units=["demo"], progress=False)
        seconds = time.perf_counter() - t0
        root = report.outcomes[0]
        return {"interactions": interactions,
                "seconds": round(seconds, 2), "status": root.status,
                "auc": root.metrics["model"]["auc"] if root.metrics else None,
                "baseline_auc": root.metrics["baseline"]["auc"] if root.metrics else None}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ASSISTments attempts file")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="attempts of the synthetic unit (0: skip)")
    parser.add_argument("--trials", type=int, default=None, help="tuning trials per unit (default: the job's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="train in a pool of N processes (default: the job's, ADAPTREC_TRAIN_WORKERS or 1); "
                             "with --dask, the cluster's worker processes (default 2)")
    parser.add_argument("--dask", action="store_true",
                        help="train on a Dask cluster (a scheduler and --workers workers) started here")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data}: no such file")
    return args


def prepare(args, stack) -> tuple[TrainConfig, dict]:
    """The job's config, and where it trains: in process, on a pool, or on a Dask cluster started
    here (stopped by `stack`)."""
    config = TrainConfig.from_env(max_trials=args.trials, workers=None if args.dask else args.workers)
    if args.dask:
        import tempfile

        from harness.dask_cluster import dask_cluster

        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dask-")))
        address, _ = stack.enter_context(dask_cluster(workdir, workers=args.workers or 2))
        config = replace(config, dask_scheduler=address, workers=1)
    runner = {"runner": "dask", "dask_workers": args.workers or 2} if args.dask else \
        {"runner": "pool" if config.workers > 1 else "in-process", "workers": config.workers}
    return config, runner


def measure(args, config: TrainConfig, result: dict) -> None:
    """ASSISTments, then the synthetic unit, each in a scratch database."""
    with servers_for(Settings.from_env()) as settings:
        result["assistments"] = bench_assistments(settings.database_url, args.data, config)
        print(json.dumps(result["assistments"]), file=sys.stderr)
        if args.synthetic:
            result["synthetic"] = bench_synthetic(settings.database_url, args.synthetic, config)


def report(args, result: dict) -> None:
    """This process's peak memory and its largest waited-for child's, then the JSON."""
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    # the largest waited-for child (a pool's worker; the cluster's processes once stopped)
    result["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)
    emit(result, args.json)


def main(argv=None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        config, runner = prepare(args, stack)
        result = {"date": date.today().isoformat(), "machine": machine(),
                  "config": {"max_trials": config.max_trials, "mode": config.mode, "threads": config.unit_threads,
                             **runner}}
        measure(args, config, result)
    report(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

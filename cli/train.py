"""`adaptrec train`: the daily job (train, evaluate and activate a model per unit), with the
recommendation log's upkeep before it and the knowledge snapshot after it under --all."""
from __future__ import annotations

import sys

from cli.arguments import positive, tenant_id
from cli.common import EXIT_FAILURE, EXIT_USAGE, CliError, database, known_tenant, migrate
from cli.db import log_upkeep
from cli.knowledge import knowledge_snapshots


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="train item embeddings per unit (the daily job)",
                           description="Train, evaluate and activate a model per unit: practice models "
                                       "(attempts, calibrated p(correct)) and engagement models (top-N). "
                                       "One runner at a time; a unit whose new model fails keeps its "
                                       "previous one and the command exits 1 naming it.")
    train.add_argument("--unit", action="append", metavar="U", help="train this unit (repeatable)")
    train.add_argument("--all", action="store_true", help="train every unit with enough data")
    train.add_argument("--mode", choices=["mf", "partial", "full"], default=None,
                       help="mf: ids only; partial: + metadata; full: + TF-IDF of text "
                            "(default ADAPTREC_TRAIN_MODE or mf)")
    train.add_argument("--tag", default="default", help="model tag (experiments can route to a tag)")
    train.add_argument("--trials", type=positive, default=None,
                       help="hyperparameter trials per unit (default ADAPTREC_TRAIN_MAX_TRIALS or 3)")
    train.add_argument("--workers", type=positive, default=None,
                       help="train units in N processes at once (default ADAPTREC_TRAIN_WORKERS or 1: one after "
                            "another in this process); ADAPTREC_DASK_SCHEDULER=tcp://HOST:PORT runs them on that "
                            "Dask cluster instead. --all's knowledge snapshot runs in N processes here either way")
    train.add_argument("--threads", type=positive, default=None,
                       help="LightFM and BLAS threads per unit (default ADAPTREC_TRAIN_THREADS, else 1, the fastest "
                            "measured in one process, within the cores divided among the workers)")
    train.add_argument("--quiet", "-q", action="store_true", help="no progress bar or info logs")
    train.add_argument("--tenant", type=tenant_id, default=None,
                       help="train this tenant only (default: with --all every tenant, with --unit the default "
                            "tenant)")
    train.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import logging
    from dataclasses import replace

    from app.access.tenants import DEFAULT
    from jobs.train import TrainConfig

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.all and not args.unit:
        raise CliError("adaptrec train: name units with --unit U (repeatable) or train every model unit with --all",
                       EXIT_USAGE)
    if args.unit and not args.tenant:
        args.tenant = DEFAULT  # units are named within one tenant
    # --all without --tenant: every tenant, one after another (each its own job run)
    config = replace(TrainConfig.from_env(mode=args.mode, tag=args.tag, max_trials=args.trials, workers=args.workers,
                                          threads=args.threads),
                     tenant=args.tenant)
    report = _upkeep_and_train(args, config)
    if report.locked_out:
        print("adaptrec train: another training job is running; nothing to do", file=sys.stderr)
        return 0
    print(report.table())
    if args.all:   # the daily job: what every learner knows under tonight's models, for analysts
        _snapshot_after_training(args, config.workers)
    if report.failed:
        names = ", ".join(f"{o.tenant}/{o.unit_id} ({o.objective})" for o in report.failed)
        print(f"adaptrec train: {len(report.failed)} model(s) not activated, previous kept: {names}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _upkeep_and_train(args, config):
    """Under --all first the recommendation log's upkeep (its failure is recorded and training goes
    on), then the training job's report."""
    from jobs.train import run_training
    from jobs.training.runners import ClusterUnavailable

    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        if args.tenant:
            known_tenant(conn, args.tenant, "train")
        if args.all:   # the daily job: the log's partitions ahead, and its retention
            try:
                log_upkeep(settings, conn, None, quiet=args.quiet)
            except CliError:
                raise   # a bad ADAPTREC_LOG_RETENTION_DAYS: the operator's to fix
            except Exception as exc:   # recorded as a failed log_retention run; training goes on
                conn.rollback()
                print(f"adaptrec train: the recommendation log's upkeep failed ({type(exc).__name__}: {exc}); "
                      "training anyway", file=sys.stderr)
        try:
            return run_training(settings.database_url, config, units=args.unit or None, progress=not args.quiet)
        except ValueError as exc:
            raise CliError(f"adaptrec train: {exc}", EXIT_USAGE) from None
        except ClusterUnavailable as exc:
            raise CliError(f"adaptrec train: {exc}", EXIT_FAILURE) from None


def _snapshot_after_training(args, workers: int) -> None:
    """train --all's last step: the knowledge snapshot, in `workers` processes (the training's: the
    cores it was given are free again). A failure is recorded as a failed knowledge_snapshot run
    and printed; the models trained stay (as with the log's upkeep)."""
    from datetime import UTC, datetime

    from jobs import knowledge

    try:
        with database() as (settings, conn):
            knowledge_snapshots(settings, conn, args.tenant, datetime.now(UTC), knowledge.BATCH,
                                knowledge.MAX_LEARNERS, knowledge.KEEP_DAYS, quiet=args.quiet, workers=workers)
    except Exception as exc:
        print(f"adaptrec train: the knowledge snapshot failed ({type(exc).__name__}: {exc}); the models stay",
              file=sys.stderr)

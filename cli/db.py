"""`adaptrec db`: migrate, status, log-retention."""
from __future__ import annotations

import sys

from cli.arguments import non_negative
from cli.common import EXIT_USAGE, CliError, Parser, database, migrate


def add_parser(sub) -> None:
    db = sub.add_parser("db", help="database schema: migrate, status")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=Parser)
    db_sub.required = True
    db_sub.add_parser("migrate", help="apply pending migrations (safe to run concurrently)").set_defaults(
        func=cmd_db_migrate)
    db_sub.add_parser("status", help="list migrations, applied and pending").set_defaults(func=cmd_db_status)
    retention = db_sub.add_parser(
        "log-retention", help="create the recommendation log's coming months and drop months older than the "
                              "retention (train --all does this daily)")
    retention.add_argument("--days", type=non_negative, default=None,
                           help="drop months that ended more than this many days ago (default: "
                                "ADAPTREC_LOG_RETENTION_DAYS, else 400; 0 keeps everything)")
    retention.set_defaults(func=cmd_db_log_retention)


def cmd_db_migrate(args) -> int:
    with database() as (settings, conn):
        n = migrate(conn, settings)
    print(f"applied {n} migration(s); the schema is up to date")
    return 0


def cmd_db_status(args) -> int:
    from app.config import Settings
    from app.infra.migrations import status

    configured = Settings.from_env()
    with database(configured) as (settings, conn):
        rows = status(conn)
    where = f"embedded servers under {settings.var_dir}" if configured.embedded else "ADAPTREC_DATABASE_URL"
    print(f"database: {where}")
    for r in rows:
        state = "pending" if r["applied_at"] is None else f"applied {r['applied_at']:%Y-%m-%d %H:%M:%S}"
        changed = "  (file changed since applied!)" if r["changed"] else ""
        print(f"  {r['version']:03d}_{r['name']:<30} {state}{changed}")
    pending = sum(1 for r in rows if r["applied_at"] is None)
    print(f"{pending} pending")
    return 0


def cmd_db_log_retention(args) -> int:
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        log_upkeep(settings, conn, args.days, quiet=False)
    return 0


def log_upkeep(settings, conn, days: int | None, quiet: bool) -> None:
    """The recommendation log's upkeep (jobs.log_retention), recorded as its own job run; `train
    --all` runs it too."""
    from app.access.tenants import DEFAULT
    from app.config import log_retention_days
    from app.infra.jobruns import recorded
    from jobs import log_retention

    try:
        days = log_retention_days() if days is None else days
    except ValueError as exc:
        raise CliError(f"adaptrec: {exc}", EXIT_USAGE) from None
    with recorded(settings.database_url, "log_retention", DEFAULT, days=days) as run:
        report = log_retention.run(conn, days)
        run.detail = {"days": days, "dropped": report.dropped, "ready": report.ready}
    if not quiet:
        kept = f"months ending before {report.cutoff:%Y-%m-%d} dropped" if report.cutoff else "kept whole (retention 0)"
        print(f"recommendation log: {kept}: {', '.join(report.dropped) or 'none'}; partitions ready up to "
              f"{report.ready[-1]}", file=sys.stderr)

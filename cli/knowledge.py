"""`adaptrec knowledge snapshot`: what every learner knows, for analysts (train --all runs it)."""
from __future__ import annotations

import sys

from cli.arguments import positive, tenant_id
from cli.common import EXIT_USAGE, CliError, Parser, database, known_tenant, migrate


def add_parser(sub) -> None:
    knowledge = sub.add_parser("knowledge", help="what learners know: the nightly snapshot for analysts")
    knowledge_sub = knowledge.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    knowledge_sub.required = True
    snap = knowledge_sub.add_parser(
        "snapshot", help="write every learner's knowledge of their practised units to knowledge_snapshots",
        description="For every learner with attempts (in id order, in batches), their knowledge of the units "
                    "holding an item they attempted, as GET /v1/users/{user_id}/knowledge answers it: p, its 90 % "
                    "interval, mastered, due. train --all runs it after training. A re-run with the same "
                    "--as-of replaces its rows; the view unit_mastery sums them per unit and cohort.")
    snap.add_argument("--as-of", default=None, metavar="ISO",
                      help="the time the estimates are for (default: now; UTC when no zone), from the history as it "
                           "is now: not a replay of an earlier day")
    snap.add_argument("--batch", type=positive, default=500, help="learners per transaction (default 500)")
    snap.add_argument("--max-learners", type=positive, default=200_000,
                      help="at most this many learners per tenant (default 200000; the summary says if more are left)")
    snap.add_argument("--keep-days", type=positive, default=90,
                      help="delete the snapshots taken more than this many days before this one (default 90)")
    snap.add_argument("--workers", type=positive, default=1,
                      help="snapshot the learners in N processes at once, each on its own connection (default 1: "
                           "in this process); the same rows either way")
    snap.add_argument("--tenant", type=tenant_id, default=None, help="one tenant (default: every tenant)")
    snap.set_defaults(func=cmd_knowledge_snapshot)


def cmd_knowledge_snapshot(args) -> int:
    from datetime import UTC, datetime

    as_of = datetime.now(UTC)
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            raise CliError(f"adaptrec knowledge snapshot: --as-of: not an ISO 8601 time: {args.as_of!r}",
                           EXIT_USAGE) from None
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        if args.tenant:
            known_tenant(conn, args.tenant, "knowledge snapshot")
        reports = knowledge_snapshots(settings, conn, args.tenant, as_of, args.batch, args.max_learners,
                                      args.keep_days, quiet=True, workers=args.workers)
    for report in reports:
        print(report.summary())
    return 0


def knowledge_snapshots(settings, conn, tenant: str | None, as_of, batch: int, max_learners: int,
                        keep_days: int, quiet: bool, workers: int = 1) -> list:
    """The knowledge snapshot (jobs.knowledge) of `tenant` (None: every tenant), each tenant its own job
    run, in `workers` processes."""
    from app.access import tenants
    from app.infra.jobruns import recorded
    from jobs import knowledge

    reports = []
    for name in [tenant] if tenant else tenants.names(conn):
        with recorded(settings.database_url, "knowledge_snapshot", name, as_of=as_of.isoformat(),
                      workers=workers) as run:
            report = knowledge.run(conn, name, as_of, batch=batch, max_learners=max_learners, keep_days=keep_days,
                                   workers=workers, database_url=settings.database_url)
            run.detail.update({"learners": report.learners, "rows": report.rows, "left_out": report.left_out,
                               "deleted": report.deleted})
        reports.append(report)
        if not quiet:
            print(report.summary(), file=sys.stderr)
    return reports

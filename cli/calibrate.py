"""`adaptrec calibrate`: predicted vs observed p(correct) of practice models over logged
recommendations."""
from __future__ import annotations

from pathlib import Path

from cli.arguments import positive, tenant_id
from cli.common import EXIT_USAGE, CliError, database, known_tenant, migrate


def add_parser(sub) -> None:
    calibrate = sub.add_parser(
        "calibrate", help="predicted vs observed p(correct) of practice models over logged recommendations",
        description="Pair each recommendation of a practice model logged in the window with the learner's "
                    "first attempt at the item within 24 h after it (the latest recommendation before an "
                    "attempt owns it, so each attempt counts once). Per model and variant (stored as "
                    "'experiment/variant'; NULL: no experiment): 10 buckets of predicted vs observed and the "
                    "ECE, stored in calibration_reports (a re-run replaces the window's rows), a reliability "
                    "diagram PNG per model, and a summary table.")
    calibrate.add_argument("--days", type=positive, default=1, help="length of the window in days (default 1)")
    calibrate.add_argument("--until", default=None, metavar="ISO",
                           help="end of the window, e.g. 2026-11-24 or 2026-11-24T06:00Z; UTC when no zone "
                                "(default: today 00:00 UTC)")
    calibrate.add_argument("--out", default=None, metavar="DIR", help="folder of the PNGs (default var/reports)")
    calibrate.add_argument("--tenant", type=tenant_id, default=None, help="one tenant (default: every tenant)")
    calibrate.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    from jobs import calibrate

    try:
        start, end = calibrate.window(args.until, args.days)
    except ValueError as exc:
        raise CliError(f"adaptrec calibrate: --until: {exc}", EXIT_USAGE) from None
    with database() as (settings, conn):
        out = Path(args.out) if args.out else settings.var_dir / "reports"
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"adaptrec calibrate: --out {out}: {exc.strerror or exc}", EXIT_USAGE) from None
        migrate(conn, settings, quiet=True)
        from app.access import tenants
        from app.infra.jobruns import recorded

        if args.tenant:
            known_tenant(conn, args.tenant, "calibrate")
        reports = []
        for tenant in [args.tenant] if args.tenant else tenants.names(conn):   # each tenant its own job run
            with recorded(settings.database_url, "calibrate", tenant, days=args.days) as run:
                reports.append((tenant, calibrate.run(conn, start, end, out, tenant=tenant)))
                run.detail = {"groups": len(reports[-1][1].groups)}
    several = len(reports) > 1
    for tenant, report in reports:
        if not report.groups:
            if not several:
                print(f"adaptrec calibrate: nothing to calibrate: no recommendation of a practice model logged "
                      f"{report.window()} was attempted within {calibrate.HORIZON_HOURS} h")
            continue
        print((f"tenant {tenant}\n" if several else "") + report.table())
    if several and not any(r.groups for _, r in reports):
        print(f"adaptrec calibrate: nothing to calibrate in any tenant: no recommendation of a practice model "
              f"logged {reports[0][1].window()} was attempted within {calibrate.HORIZON_HOURS} h")
    return 0

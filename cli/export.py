"""`adaptrec export`: Totara 13-14's recommendation files, per tenant."""
from __future__ import annotations

from pathlib import Path

from cli.arguments import positive, tenant_id
from cli.common import EXIT_USAGE, CliError, database, known_tenant, migrate


def add_parser(sub) -> None:
    export = sub.add_parser("export", help="write Totara 13-14's recommendation files (i2u, i2i) per tenant",
                            description="Write, per tenant, i2u_{tenant}.csv (uid,iid,ranking: each user's top N "
                                        "items) and i2i_{tenant}.csv (target_iid,similar_iid,ranking: each item's N "
                                        "most similar), from the active models, for Totara sites that upload files "
                                        "instead of calling the service.")
    export.add_argument("--format", "-f", required=True, choices=["totara"], help="output format")
    export.add_argument("--tenant", type=tenant_id, default=None, help="one tenant (default: every tenant but default)")
    export.add_argument("--n", type=positive, default=10, help="items per user and per item (default 10)")
    export.add_argument("dir", metavar="DIR", help="the folder to write into (created if missing)")
    export.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from app.infra.cache import Cache
    from jobs.export_totara import export_totara

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise CliError(f"adaptrec export: {out} exists and is not a folder", EXIT_USAGE)
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        if args.tenant:
            known_tenant(conn, args.tenant, "export")
        cache = Cache(settings.redis_url, settings.redis_prefix)
        try:
            report = export_totara(conn, cache, out, [args.tenant] if args.tenant else None, n=args.n)
        except OSError as exc:
            raise CliError(f"adaptrec export: {out}: {exc.strerror or exc}", EXIT_USAGE) from None
        finally:
            cache.close()
    print(report.summary() or "adaptrec export: no tenant to export (only the default tenant exists; "
                              "name it with --tenant default)")
    return 0

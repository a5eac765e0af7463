"""`adaptrec import`: data files into the database, each file in one transaction."""
from __future__ import annotations

import sys
from pathlib import Path

from cli.arguments import tenant_option
from cli.common import EXIT_USAGE, CliError, database, migrate


def add_parser(sub) -> None:
    from jobs.importers import FORMATS

    imp = sub.add_parser(
        "import", help="import data files (idempotent; all-or-nothing per file)",
        description="Import data into the database. Each file is imported in one transaction; "
                    "re-running imports nothing twice. Formats: " + ", ".join(
                        f"{name} ({mod.DESCRIPTION})" for name, mod in FORMATS.items()))
    imp.add_argument("--format", "-f", required=True, choices=sorted(FORMATS), help="input format")
    imp.add_argument("--id-prefix", default="", help="prefix every user, item and unit id (keeps data sets apart)")
    imp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    imp.add_argument("--bulk", action="store_true",
                     help="a first load or a maintenance window: rebuild the interactions' indexes and foreign keys "
                          "after the insert (several times faster at millions of rows; the API's reads of "
                          "interactions wait until the import commits)")
    tenant_option(imp, "the tenant to import into, created if new (default: default). A Totara export "
                       "folder with tenants.csv imports each of its tenants into its own")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="files (or a folder, for movielens and totara)")
    imp.set_defaults(func=cmd_import)


def cmd_import(args) -> int:
    from jobs.importers import run_import

    for path in args.paths:
        if not Path(path).exists():
            raise CliError(f"adaptrec import: {path}: no such file or folder", EXIT_USAGE)
    from app.access.tenants import ensure as tenants_ensure
    from app.infra.jobruns import recorded
    from jobs.importers import prepare_tenant, totara

    # Totara's multi-tenant export names its own tenants (created by run_import); the run is recorded
    # under --tenant, which must exist first.
    multi = args.format == "totara" and any(Path(p).is_dir() and totara.tenant_ids(Path(p)) for p in args.paths)
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        with conn:
            created = tenants_ensure(conn, args.tenant) if multi else \
                prepare_tenant(conn, args.tenant, args.format, settings.totara_mode)
            if created:
                print(f"created tenant {args.tenant!r}", file=sys.stderr)
        with recorded(settings.database_url, "import", args.tenant, format=args.format, files=len(args.paths)):
            reports = run_import(conn, args.format, [Path(p) for p in args.paths], id_prefix=args.id_prefix,
                                 progress=not args.quiet, tenant=args.tenant, totara_mode=settings.totara_mode,
                                 bulk=args.bulk)
    for r in reports:
        print(r.summary())
    return 0

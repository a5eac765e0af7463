"""The `adaptrec` command. Every subcommand has --help; bad arguments, files or settings end
with one clear line on stderr and a non-zero exit, never a traceback.

Each command group is a module of this package with its parser beside its handler: it adds its
subcommand in `add_parser(subparsers)` and sets `func`, which this module calls."""
from __future__ import annotations

import sys

from cli import calibrate, db, demo, export, imports, keys, knowledge, models, serve, servers, tenants, train
from cli.common import EXIT_FAILURE, EXIT_USAGE, CliError, Parser

# In the order `adaptrec --help` lists them.
GROUPS = (db, imports, export, demo, serve, train, knowledge, models, calibrate, keys, tenants, servers)


def build_parser() -> Parser:
    parser = Parser(prog="adaptrec", description=__doc__.splitlines()[0].rstrip(".") if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.config import ConfigError, log_level
    from app.infra.db import DatabaseUnavailable
    from app.infra.logs import quiet_libraries
    from app.infra.migrations import MigrationError
    from cli.embedded import EmbeddedError
    from jobs.importers.common import ImportFailed

    try:
        quiet_libraries(log_level())
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except ImportFailed as exc:
        print(f"adaptrec import: {exc}; nothing from this file was imported", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, DatabaseUnavailable, EmbeddedError, MigrationError) as exc:
        print(f"adaptrec: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("adaptrec: interrupted", file=sys.stderr)
        return 130

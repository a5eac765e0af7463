"""`adaptrec tenants`: add, list, set, remove."""
from __future__ import annotations

import json
import sys

from cli.arguments import display_name, tenant_id
from cli.common import EXIT_USAGE, CliError, Parser, database, known_tenant, migrate


def add_parser(sub) -> None:
    tenants = sub.add_parser("tenants", help="tenants: add, list, set, remove",
                             description="Every user, item, unit, interaction, model, experiment, key and log row "
                                         "belongs to one tenant; the same id in two tenants is two different "
                                         "things. A single-tenant deployment uses the tenant 'default' and never "
                                         "names it.")
    tenants_sub = tenants.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    tenants_sub.required = True
    t_add = tenants_sub.add_parser("add", help="create a tenant")
    t_add.add_argument("tenant", type=tenant_id, metavar="TENANT", help="its id: letters, digits, '_', '.', '-'")
    t_add.add_argument("--name", type=display_name, default=None, help="a readable name, e.g. 'North High School'")
    t_add.add_argument("--mode", choices=["mf", "partial", "full"], default=None,
                       help="the mode its models train in (default: the job's, ADAPTREC_TRAIN_MODE)")
    t_add.set_defaults(func=cmd_tenants)
    t_set = tenants_sub.add_parser("set", help="change a tenant's training mode (e.g. as its Totara site's) or its "
                                               "xAPI rules")
    t_set.add_argument("tenant", type=tenant_id, metavar="TENANT")
    t_set.add_argument("--mode", choices=["mf", "partial", "full"],
                       help="the mode its models train in from the next `adaptrec train`")
    t_set.add_argument("--xapi", metavar="JSON",
                       help='its xAPI rules, replacing the ones set before (docs/XAPI.md): e.g. \'{"actor": '
                            '["mbox", "account"], "create_items": false, "verbs": {"https://x.org/read": '
                            '{"kind": "view"}}}\'; \'{}\' for the defaults')
    t_set.set_defaults(func=cmd_tenants)
    tenants_sub.add_parser("list", help="tenants with their users, items, interactions and models").set_defaults(
        func=cmd_tenants)
    t_rm = tenants_sub.add_parser("remove", help="delete a tenant and ALL its data (asks to confirm)")
    t_rm.add_argument("tenant", type=tenant_id, metavar="TENANT")
    t_rm.add_argument("--yes", action="store_true", help="do not ask: delete at once (for scripts)")
    t_rm.set_defaults(func=cmd_tenants)


def cmd_tenants(args) -> int:
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        if args.action == "add":
            _add(conn, args)
        elif args.action == "set":
            _set(conn, args)
        elif args.action == "list":
            _list(conn)
        else:
            _remove(conn, settings, args)
    return 0


def _add(conn, args) -> None:
    from app.access import tenants

    with conn:
        created = tenants.ensure(conn, args.tenant, args.name)
        if created and args.mode:
            tenants.set_training(conn, args.tenant, mode=args.mode)
    if not created:
        raise CliError(f"adaptrec tenants add: tenant {args.tenant!r} exists already", EXIT_USAGE)
    print(f"created tenant {args.tenant!r}; give it a key with "
          f"`adaptrec keys add --tenant {args.tenant} --name NAME --scopes serve,ingest`")


def _set(conn, args) -> None:
    from app.access import tenants

    if args.mode is None and args.xapi is None:
        raise CliError("adaptrec tenants set: give --mode, --xapi or both", EXIT_USAGE)
    rules = _xapi_rules(args.xapi) if args.xapi is not None else None
    known_tenant(conn, args.tenant, "tenants set")
    with conn:
        if args.mode is not None:
            tenants.set_training(conn, args.tenant, mode=args.mode)
        if rules is not None:
            tenants.set_settings(conn, args.tenant, {"xapi": rules})
    if args.mode is not None:
        print(f"tenant {args.tenant!r} trains in mode {args.mode} from the next `adaptrec train`")
    if rules is not None:
        print(f"tenant {args.tenant!r} maps xAPI statements by {json.dumps(rules) if rules else 'the defaults'} "
              f"(the API within ADAPTREC_KEY_CACHE_S)")


def _xapi_rules(text: str) -> dict:
    """The xAPI rules given on the command line, checked as the ingest reads them."""
    from app.xapi.mapping import rules_from_settings

    try:
        rules = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"adaptrec tenants set: --xapi is not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(rules, dict):
        raise CliError("adaptrec tenants set: --xapi must be a JSON object (docs/XAPI.md)", EXIT_USAGE)
    try:
        rules_from_settings({"xapi": rules})
    except ValueError as exc:
        raise CliError(f"adaptrec tenants set: {exc}", EXIT_USAGE) from None
    return rules


def _list(conn) -> None:
    from app.access import tenants

    rows = tenants.list_all(conn)
    print(f"{'tenant':<24} {'users':>8} {'items':>8} {'interactions':>13} {'models':>7} {'mode':<8} created")
    for r in rows:
        mode = ((r["settings"] or {}).get("training") or {}).get("mode", "-")
        print(f"{r['tenant'][:24]:<24} {r['users']:>8} {r['items']:>8} {r['interactions']:>13} "
              f"{r['active_models']:>7} {mode:<8} {r['created_at']:%Y-%m-%d %H:%M}"
              + (f"  ({r['name']})" if r["name"] else ""))


def _remove(conn, settings, args) -> None:
    from app.access import tenants

    counts = tenants.counts(conn, args.tenant) if tenants.get(conn, args.tenant) else None
    conn.rollback()
    if counts is None:
        raise CliError(f"adaptrec tenants remove: no tenant {args.tenant!r}; see `adaptrec tenants list`",
                       EXIT_USAGE)
    what = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"adaptrec tenants remove: this deletes tenant {args.tenant!r} and all its data "
                           f"({what}); add --yes to confirm", EXIT_USAGE)
        answer = input(f"Delete tenant {args.tenant!r} and all its data ({what})? "
                       f"Type the tenant's id to confirm: ")
        if answer.strip() != args.tenant:
            raise CliError("adaptrec tenants remove: not confirmed; nothing deleted")
    with conn:
        tenants.remove(conn, args.tenant)
    _forget_cached(settings, args.tenant)
    print(f"removed tenant {args.tenant!r}: {what}"
          + ("; the default tenant is back, empty" if args.tenant == tenants.DEFAULT else ""))


def _forget_cached(settings, tenant: str) -> None:
    import redis

    from app.access import tenants
    from app.infra.cache import Cache

    cache = Cache(settings.redis_url, settings.redis_prefix, timeout_s=5.0)
    try:
        tenants.forget_cached(cache, tenant)
    except (redis.RedisError, OSError) as exc:
        print(f"adaptrec tenants remove: Redis did not answer ({exc}); the tenant's cached histories expire "
              "within 24 h: flush them before creating a tenant of the same name", file=sys.stderr)
    finally:
        cache.close()

"""`adaptrec keys`: scoped API keys, add, list, revoke (no restart needed)."""
from __future__ import annotations

import sys

from cli.arguments import display_name, positive, tenant_option
from cli.common import EXIT_USAGE, CliError, Parser, database, known_tenant, migrate


def add_parser(sub) -> None:
    keys = sub.add_parser("keys", help="API keys: add, list, revoke (no restart needed)",
                          description="Scoped API keys, stored hashed in Postgres. Scopes: serve "
                                      "(recommendations and reads), ingest (interactions), admin (catalogue, "
                                      "experiments; includes the others). A revoked key stops working within "
                                      "ADAPTREC_KEY_CACHE_S seconds (default 5).")
    keys_sub = keys.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    keys_sub.required = True
    add = keys_sub.add_parser("add", help="create a key and print it (once)")
    add.add_argument("--name", required=True, type=display_name, help="who or what uses the key, e.g. 'lms-backend'")
    add.add_argument("--scopes", required=True,
                     help="comma-separated: serve, ingest, admin, dashboard (read the /dashboard pages)")
    add.add_argument("--rate-limit", type=positive, default=None, metavar="N",
                     help="requests per second for this key (default ADAPTREC_RATE_LIMIT_PER_S)")
    whose = add.add_mutually_exclusive_group()
    tenant_option(whose, "the tenant the key belongs to (default: default)")
    whose.add_argument("--operator", action="store_true",
                       help="a key for every tenant: each request names one in X-Adaptrec-Tenant (default tenant "
                            "when it does not)")
    add.set_defaults(func=cmd_keys)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id (the 12 hex digits after 'ar_')")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys)
    keys_sub.add_parser("list", help="list keys (ids, names, scopes; never the keys)").set_defaults(func=cmd_keys)


def cmd_keys(args) -> int:
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        if args.action == "add":
            _add(conn, args)
        elif args.action == "revoke":
            _revoke(conn, settings, args.key_id)
        else:
            _list(conn)
    return 0


def _add(conn, args) -> None:
    from app.access import keys

    try:
        scopes = keys.parse_scopes(args.scopes)
    except ValueError as exc:
        raise CliError(f"adaptrec keys add: --scopes: {exc}", EXIT_USAGE) from None
    tenant = None if args.operator else args.tenant
    with conn:
        if tenant is not None:
            known_tenant(conn, tenant, "keys add")
        key_id, key = keys.create_key(conn, args.name, scopes, args.rate_limit, tenant=tenant)
    print(key)
    whose = "operator key (any tenant, named per request in X-Adaptrec-Tenant)" if tenant is None \
        else f"tenant {tenant}"
    print(f"key {key_id} ({args.name}): {whose}; scopes {', '.join(scopes)}; rate limit "
          f"{args.rate_limit or 'default (ADAPTREC_RATE_LIMIT_PER_S)'} per second. "
          "The key is shown only now: store it in the caller's secrets.", file=sys.stderr)


def _revoke(conn, settings, key_id: str) -> None:
    from app.access import keys

    with conn:
        revoked = keys.revoke_key(conn, key_id)
    if not revoked:
        raise CliError(f"adaptrec keys revoke: no live key with id {key_id!r} "
                       "(see `adaptrec keys list`)")
    print(f"revoked {key_id}; its holders get 401 within {settings.key_cache_s:g} s")


def _list(conn) -> None:
    from app.access import keys

    rows = keys.list_keys(conn)
    if not rows:
        print("no keys yet; add one with `adaptrec keys add --name NAME --scopes serve,ingest`")
    for r in rows:
        state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "live"
        print(f"{r['key_id']}  {r['name'][:30]:<30} {r['tenant'][:16]:<16} {','.join(r['scopes']):<20} "
              f"{r['rate_limit_per_s'] or 'default':>8}/s  created {r['created_at']:%Y-%m-%d %H:%M}  {state}")

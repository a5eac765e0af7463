"""The `adaptrec` command. Every subcommand has --help; bad arguments, files or settings end
with one clear line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """A problem the user can fix; printed as one line."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + error
        raise CliError(f"{self.prog}: {message} (see '{self.prog} --help')", EXIT_USAGE)


@contextmanager
def _database(settings=None):
    """Yield (settings, connection) on the configured or embedded servers."""
    from app.config import Settings
    from app.embedded import servers_for
    from app.infra.db import connect

    settings = settings or Settings.from_env()
    with servers_for(settings) as resolved:
        conn = connect(resolved.database_url, connect_timeout=resolved.db_connect_timeout_s)
        try:
            yield resolved, conn
        finally:
            conn.close()


def _migrate(conn, settings, quiet: bool = False) -> int:
    from app.infra.migrations import migrate

    applied = migrate(conn, lock_timeout_ms=settings.migration_lock_timeout_ms,
                      log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    return len(applied)


# ---- subcommands ------------------------------------------------------------------------
def cmd_db_migrate(args) -> int:
    with _database() as (settings, conn):
        n = _migrate(conn, settings)
    print(f"applied {n} migration(s); the schema is up to date")
    return 0


def _log_retention(settings, conn, days: int | None, quiet: bool) -> None:
    """The recommendation log's upkeep (jobs.log_retention), recorded as its own job run."""
    from app.access.tenants import DEFAULT
    from app.infra.jobruns import recorded
    from jobs import log_retention

    try:
        days = log_retention.retention_days() if days is None else days
    except ValueError as exc:
        raise CliError(f"adaptrec: {exc}", EXIT_USAGE) from None
    with recorded(settings.database_url, "log_retention", DEFAULT, days=days) as run:
        report = log_retention.run(conn, days)
        run.detail = {"days": days, "dropped": report.dropped, "ready": report.ready}
    if not quiet:
        kept = f"months ending before {report.cutoff:%Y-%m-%d} dropped" if report.cutoff else "kept whole (retention 0)"
        print(f"recommendation log: {kept}: {', '.join(report.dropped) or 'none'}; partitions ready up to "
              f"{report.ready[-1]}", file=sys.stderr)


def cmd_db_log_retention(args) -> int:
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        _log_retention(settings, conn, args.days, quiet=False)
    return 0


def _knowledge_snapshots(settings, conn, tenant: str | None, as_of, batch: int, max_learners: int,
                         keep_days: int, quiet: bool) -> list:
    """The knowledge snapshot (jobs.knowledge) of `tenant` (None: every tenant), each tenant its own job run."""
    from app.access import tenants
    from app.infra.jobruns import recorded
    from jobs import knowledge

    reports = []
    for name in [tenant] if tenant else tenants.names(conn):
        with recorded(settings.database_url, "knowledge_snapshot", name, as_of=as_of.isoformat()) as run:
            report = knowledge.run(conn, name, as_of, batch=batch, max_learners=max_learners, keep_days=keep_days)
            run.detail.update({"learners": report.learners, "rows": report.rows, "left_out": report.left_out,
                               "deleted": report.deleted})
        reports.append(report)
        if not quiet:
            print(report.summary(), file=sys.stderr)
    return reports


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
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        if args.tenant:
            _known_tenant(conn, args.tenant, "knowledge snapshot")
        reports = _knowledge_snapshots(settings, conn, args.tenant, as_of, args.batch, args.max_learners,
                                       args.keep_days, quiet=True)
    for report in reports:
        print(report.summary())
    return 0


def cmd_db_status(args) -> int:
    from app.config import Settings
    from app.infra.migrations import status

    configured = Settings.from_env()
    with _database(configured) as (settings, conn):
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
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
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


def cmd_export(args) -> int:
    from app.infra.cache import Cache
    from jobs.export_totara import export_totara

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise CliError(f"adaptrec export: {out} exists and is not a folder", EXIT_USAGE)
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        if args.tenant:
            _known_tenant(conn, args.tenant, "export")
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


def cmd_demo(args) -> int:
    from jobs.demo import DemoConfig, generate_demo

    config = DemoConfig(seed=args.seed, learners=args.learners, attempts=args.attempts,
                        engagements=args.engagements, grade_effect=args.grade_effect, levels=args.levels)
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        with conn:
            _ensure_tenant(conn, args.tenant)
        report = generate_demo(conn, config, progress=not args.quiet, tenant=args.tenant)
    print(report.summary())
    return 0


def cmd_train(args) -> int:
    import logging
    from dataclasses import replace

    from app.access.tenants import DEFAULT
    from jobs.train import TrainConfig, run_training
    from jobs.training.runners import ClusterUnavailable

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.all and not args.unit:
        raise CliError("adaptrec train: name units with --unit U (repeatable) or train every model unit with --all",
                       EXIT_USAGE)
    if args.unit and not args.tenant:
        args.tenant = DEFAULT  # units are named within one tenant
    # --all without --tenant: every tenant, one after another (each its own job run)
    config = replace(TrainConfig.from_env(mode=args.mode, tag=args.tag, max_trials=args.trials, workers=args.workers),
                     tenant=args.tenant)
    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        if args.tenant:
            _known_tenant(conn, args.tenant, "train")
        if args.all:   # the daily job: the log's partitions ahead, and its retention
            try:
                _log_retention(settings, conn, None, quiet=args.quiet)
            except CliError:
                raise   # a bad ADAPTREC_LOG_RETENTION_DAYS: the operator's to fix
            except Exception as exc:   # recorded as a failed log_retention run; training goes on
                conn.rollback()
                print(f"adaptrec train: the recommendation log's upkeep failed ({type(exc).__name__}: {exc}); "
                      "training anyway", file=sys.stderr)
        try:
            report = run_training(settings.database_url, config, units=args.unit or None, progress=not args.quiet)
        except ValueError as exc:
            raise CliError(f"adaptrec train: {exc}", EXIT_USAGE) from None
        except ClusterUnavailable as exc:
            raise CliError(f"adaptrec train: {exc}", EXIT_FAILURE) from None
    if report.locked_out:
        print("adaptrec train: another training job is running; nothing to do", file=sys.stderr)
        return 0
    print(report.table())
    if args.all:   # the daily job: what every learner knows under tonight's models, for analysts
        _snapshot_after_training(args)
    if report.failed:
        names = ", ".join(f"{o.tenant}/{o.unit_id} ({o.objective})" for o in report.failed)
        print(f"adaptrec train: {len(report.failed)} model(s) not activated, previous kept: {names}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _snapshot_after_training(args) -> None:
    """train --all's last step: the knowledge snapshot. A failure is recorded as a failed
    knowledge_snapshot run and printed; the models trained stay (as with the log's upkeep)."""
    from datetime import UTC, datetime

    from jobs import knowledge

    try:
        with _database() as (settings, conn):
            _knowledge_snapshots(settings, conn, args.tenant, datetime.now(UTC), knowledge.BATCH,
                                 knowledge.MAX_LEARNERS, knowledge.KEEP_DAYS, quiet=args.quiet)
    except Exception as exc:
        print(f"adaptrec train: the knowledge snapshot failed ({type(exc).__name__}: {exc}); the models stay",
              file=sys.stderr)


def cmd_calibrate(args) -> int:
    from jobs import calibrate

    try:
        start, end = calibrate.window(args.until, args.days)
    except ValueError as exc:
        raise CliError(f"adaptrec calibrate: --until: {exc}", EXIT_USAGE) from None
    with _database() as (settings, conn):
        out = Path(args.out) if args.out else settings.var_dir / "reports"
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"adaptrec calibrate: --out {out}: {exc.strerror or exc}", EXIT_USAGE) from None
        _migrate(conn, settings, quiet=True)
        from app.access import tenants
        from app.infra.jobruns import recorded

        if args.tenant:
            _known_tenant(conn, args.tenant, "calibrate")
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


def cmd_models(args) -> int:
    from app.model import store as modelstore
    from jobs.training.job import HEADLINE_METRIC

    with _database() as (_, conn):
        _known_tenant(conn, args.tenant, "models")
        rows = modelstore.list_models(conn, args.tenant, include_retired=args.all)
    if not rows:
        print(f"no models yet in tenant {args.tenant!r}; run `adaptrec train --all`")
        return 0
    print(f"{'model':>6} {'unit':<36} {'objective':<10} {'mode':<7} {'kind':<9} {'status':<8} {'metric':<15} "
          f"{'model':>7} {'baseline':>9} {'trained':<16}")
    for r in rows:
        m = r["metrics"] or {}
        key = HEADLINE_METRIC[r["objective"]]
        model_v = (m.get("model") or {}).get(key)
        base_v = (m.get("baseline") or {}).get(key)
        base_name = m.get("baseline_name", "")
        print(f"{r['model_id']:>6} {r['unit_id'][:36]:<36} {r['objective']:<10} {r['mode']:<7} "
              f"{m.get('candidate', '-'):<9} {r['status']:<8} "
              f"{key:<15} {_num(model_v):>7} {_num(base_v):>9} {r['trained_at']:%Y-%m-%d %H:%M}"
              + (f"  (baseline: {base_name})" if args.verbose and base_name else ""))
        if args.verbose:
            for line in _choice_lines(m):
                print(f"{'':>8}{line}")
    return 0


def _choice_lines(metrics: dict) -> list[str]:
    """How a practice model was chosen, from its metrics: the candidates on dev, the ancestor."""
    lines = []
    dev = metrics.get("dev") or {}
    if dev:
        lines.append("dev log-loss / AUC: " + ", ".join(
            f"{kind} {_num(v.get('logloss'))} / {_num(v.get('auc'))}" for kind, v in dev.items()))
    ancestor = metrics.get("ancestor_dev")
    if ancestor:
        lines.append(f"vs {ancestor['unit_id']} on {ancestor['attempts']} dev attempts: log-loss "
                     f"{_num(ancestor.get('logloss'))} (own {_num(ancestor.get('own_logloss'))}): "
                     + ("own model serves" if ancestor.get("own_serves") else "the ancestor serves"))
    skill = metrics.get("skill_terms")
    if skill:
        lines.append("skill offsets (sd, half-life): dev log-loss " + ", ".join(
            f"{t['sd']}/{t.get('half_life', '-')} {_num(t['val_logloss'])}" for t in skill)
            + " (sd 0: none)")
    prior = metrics.get("metadata_prior")
    if prior:
        lines.append(f"metadata prior ({prior['tokens']} tokens): dev log-loss on first {prior['first_attempts']} "
                     f"attempts {_num(prior['val_logloss_first'])} vs population prior "
                     f"{_num(prior['population_val_logloss_first'])}, on all {_num(prior['val_logloss'])} vs "
                     f"{_num(prior['population_val_logloss'])}: " + ("used" if prior["used"] else "not used"))
    retries = metrics.get("dev_all_attempts")
    if retries and retries.get("logloss") is not None:
        lines.append(f"retry terms: dev log-loss {_num(retries['logloss'])} (Platt alone "
                     f"{_num(retries['platt_logloss'])}) over {retries['attempts']} attempts, "
                     f"{retries['retries']} retries")
    learning = (retries or {}).get("learning")
    if learning and "cross_fitted_logloss" in learning:
        line = (f"learning terms (practice, time away): cross-fitted dev log-loss "
                f"{_num(learning['cross_fitted_logloss'])} vs {_num(learning['cross_fitted_logloss_without'])} "
                f"without: " + ("used" if learning["used"] else "not used"))
        if learning.get("weights"):
            line += " (" + ", ".join(f"{k} {v:+.2f}" for k, v in learning["weights"].items()) + ")"
        lines.append(line)
    return lines


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def cmd_serve(args) -> int:
    from cli.serve import serve

    return serve(host=args.host, port=args.port, workers=args.workers, demo_if_empty=args.demo_if_empty)


def cmd_keys(args) -> int:
    from app.access import keys

    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        if args.action == "add":
            try:
                scopes = keys.parse_scopes(args.scopes)
            except ValueError as exc:
                raise CliError(f"adaptrec keys add: --scopes: {exc}", EXIT_USAGE) from None
            tenant = None if args.operator else args.tenant
            with conn:
                if tenant is not None:
                    _known_tenant(conn, tenant, "keys add")
                key_id, key = keys.create_key(conn, args.name, scopes, args.rate_limit, tenant=tenant)
            print(key)
            whose = "operator key (any tenant, named per request in X-Adaptrec-Tenant)" if tenant is None \
                else f"tenant {tenant}"
            print(f"key {key_id} ({args.name}): {whose}; scopes {', '.join(scopes)}; rate limit "
                  f"{args.rate_limit or 'default (ADAPTREC_RATE_LIMIT_PER_S)'} per second. "
                  "The key is shown only now: store it in the caller's secrets.", file=sys.stderr)
        elif args.action == "revoke":
            with conn:
                revoked = keys.revoke_key(conn, args.key_id)
            if not revoked:
                raise CliError(f"adaptrec keys revoke: no live key with id {args.key_id!r} "
                               "(see `adaptrec keys list`)")
            print(f"revoked {args.key_id}; its holders get 401 within {settings.key_cache_s:g} s")
        else:
            rows = keys.list_keys(conn)
            if not rows:
                print("no keys yet; add one with `adaptrec keys add --name NAME --scopes serve,ingest`")
            for r in rows:
                state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "live"
                print(f"{r['key_id']}  {r['name'][:30]:<30} {r['tenant'][:16]:<16} {','.join(r['scopes']):<20} "
                      f"{r['rate_limit_per_s'] or 'default':>8}/s  created {r['created_at']:%Y-%m-%d %H:%M}  {state}")
    return 0


def _ensure_tenant(conn, tenant: str) -> None:
    from app.access import tenants

    if tenants.ensure(conn, tenant):
        print(f"created tenant {tenant!r}", file=sys.stderr)


def _known_tenant(conn, tenant: str, command: str) -> None:
    from app.access import tenants

    row = tenants.get(conn, tenant)
    conn.rollback()
    if row is None:
        raise CliError(f"adaptrec {command}: no tenant {tenant!r}; see `adaptrec tenants list`", EXIT_USAGE)


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


def cmd_tenants(args) -> int:
    from app.access import tenants

    with _database() as (settings, conn):
        _migrate(conn, settings, quiet=True)
        if args.action == "add":
            with conn:
                created = tenants.ensure(conn, args.tenant, args.name)
                if created and args.mode:
                    tenants.set_training(conn, args.tenant, mode=args.mode)
            if not created:
                raise CliError(f"adaptrec tenants add: tenant {args.tenant!r} exists already", EXIT_USAGE)
            print(f"created tenant {args.tenant!r}; give it a key with "
                  f"`adaptrec keys add --tenant {args.tenant} --name NAME --scopes serve,ingest`")
        elif args.action == "set":
            _known_tenant(conn, args.tenant, "tenants set")
            with conn:
                tenants.set_training(conn, args.tenant, mode=args.mode)
            print(f"tenant {args.tenant!r} trains in mode {args.mode} from the next `adaptrec train`")
        elif args.action == "list":
            rows = tenants.list_all(conn)
            print(f"{'tenant':<24} {'users':>8} {'items':>8} {'interactions':>13} {'models':>7} {'mode':<8} created")
            for r in rows:
                mode = ((r["settings"] or {}).get("training") or {}).get("mode", "-")
                print(f"{r['tenant'][:24]:<24} {r['users']:>8} {r['items']:>8} {r['interactions']:>13} "
                      f"{r['active_models']:>7} {mode:<8} {r['created_at']:%Y-%m-%d %H:%M}"
                      + (f"  ({r['name']})" if r["name"] else ""))
        else:
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
    return 0


def cmd_servers(args) -> int:
    from app.config import Settings
    from app.embedded import EmbeddedServers

    settings = Settings.from_env()
    servers = EmbeddedServers(settings.var_dir)
    if args.action == "status":
        for k, v in servers.status().items():
            print(f"{k}: {v}")
    else:
        stopped = servers.release()
        print("stopped" if stopped else "still held by running adaptrec processes: "
              + ", ".join(map(str, servers.status()["holders"])))
    return 0


# ---- parser -----------------------------------------------------------------------------
def build_parser() -> Parser:
    parser = Parser(prog="adaptrec", description=__doc__.splitlines()[0].rstrip(".") if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    db = sub.add_parser("db", help="database schema: migrate, status")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=Parser)
    db_sub.required = True
    db_sub.add_parser("migrate", help="apply pending migrations (safe to run concurrently)").set_defaults(
        func=cmd_db_migrate)
    db_sub.add_parser("status", help="list migrations, applied and pending").set_defaults(func=cmd_db_status)
    retention = db_sub.add_parser(
        "log-retention", help="create the recommendation log's coming months and drop months older than the "
                              "retention (train --all does this daily)")
    retention.add_argument("--days", type=_non_negative, default=None,
                           help="drop months that ended more than this many days ago (default: "
                                "ADAPTREC_LOG_RETENTION_DAYS, else 400; 0 keeps everything)")
    retention.set_defaults(func=cmd_db_log_retention)

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
    _tenant_option(imp, "the tenant to import into, created if new (default: default). A Totara export "
                        "folder with tenants.csv imports each of its tenants into its own")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="files (or a folder, for movielens and totara)")
    imp.set_defaults(func=cmd_import)

    export = sub.add_parser("export", help="write Totara 13-14's recommendation files (i2u, i2i) per tenant",
                            description="Write, per tenant, i2u_{tenant}.csv (uid,iid,ranking: each user's top N "
                                        "items) and i2i_{tenant}.csv (target_iid,similar_iid,ranking: each item's N "
                                        "most similar), from the active models, for Totara sites that upload files "
                                        "instead of calling the service.")
    export.add_argument("--format", "-f", required=True, choices=["totara"], help="output format")
    export.add_argument("--tenant", type=_tenant, default=None, help="one tenant (default: every tenant but default)")
    export.add_argument("--n", type=_positive, default=10, help="items per user and per item (default 10)")
    export.add_argument("dir", metavar="DIR", help="the folder to write into (created if missing)")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="generate the synthetic demo catalogue and learners",
                          description="Generate a deterministic synthetic data set: subjects > chapters > "
                                      "sections > questions, learners with a latent ability per subject, "
                                      "attempts from a known logistic model, and engagement events.")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--learners", type=_positive, default=2000, help="number of learners (default 2000)")
    demo.add_argument("--attempts", type=_positive, default=200_000, help="question attempts (default 200000)")
    demo.add_argument("--engagements", type=_non_negative, default=50_000,
                      help="views, likes and completions of lessons (default 50000)")
    demo.add_argument("--grade-effect", type=float, default=0.0,
                      help="logits of ability per school grade (default 0: learners' metadata says nothing "
                           "of their ability)")
    demo.add_argument("--levels", type=_positive, default=1,
                      help="courses per subject, a learner studying one (default 1: 1,967 items; 5: ~10,000 items "
                           "in 484 units, the scale run's catalogue: docs/SCALING.md)")
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _tenant_option(demo, "the tenant to fill, created if new (default: default)")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="serve the HTTP API with gunicorn",
                           description="Apply migrations and serve the API with gunicorn. With no "
                                       "ADAPTREC_DATABASE_URL / ADAPTREC_REDIS_URL it runs on the embedded "
                                       "servers under ./var/.")
    serve.add_argument("--host", default=None, help="bind address (default ADAPTREC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=None, help="port (default ADAPTREC_PORT or 8000)")
    serve.add_argument("--workers", type=_positive, default=None, help="gunicorn workers (default 2)")
    serve.add_argument("--demo-if-empty", action="store_true", help="load the demo data set into an empty database")
    serve.set_defaults(func=cmd_serve)

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
    train.add_argument("--trials", type=_positive, default=None,
                       help="hyperparameter trials per unit (default ADAPTREC_TRAIN_MAX_TRIALS or 3)")
    train.add_argument("--workers", type=_positive, default=None,
                       help="train units in N processes at once (default ADAPTREC_TRAIN_WORKERS or 1: one after "
                            "another in this process); ADAPTREC_DASK_SCHEDULER=tcp://HOST:PORT runs them on that "
                            "Dask cluster instead")
    train.add_argument("--quiet", "-q", action="store_true", help="no progress bar or info logs")
    train.add_argument("--tenant", type=_tenant, default=None,
                       help="train this tenant only (default: with --all every tenant, with --unit the default "
                            "tenant)")
    train.set_defaults(func=cmd_train)

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
    snap.add_argument("--batch", type=_positive, default=500, help="learners per transaction (default 500)")
    snap.add_argument("--max-learners", type=_positive, default=200_000,
                      help="at most this many learners per tenant (default 200000; the summary says if more are left)")
    snap.add_argument("--keep-days", type=_positive, default=90,
                      help="delete the snapshots taken more than this many days before this one (default 90)")
    snap.add_argument("--tenant", type=_tenant, default=None, help="one tenant (default: every tenant)")
    snap.set_defaults(func=cmd_knowledge_snapshot)

    models = sub.add_parser("models", help="list trained models with their metrics beside the baseline's")
    models.add_argument("--all", action="store_true", help="include retired and failed versions")
    models.add_argument("--verbose", "-v", action="store_true", help="name the baseline")
    _tenant_option(models, "whose models (default: default)")
    models.set_defaults(func=cmd_models)

    calibrate = sub.add_parser(
        "calibrate", help="predicted vs observed p(correct) of practice models over logged recommendations",
        description="Pair each recommendation of a practice model logged in the window with the learner's "
                    "first attempt at the item within 24 h after it (the latest recommendation before an "
                    "attempt owns it, so each attempt counts once). Per model and variant (stored as "
                    "'experiment/variant'; NULL: no experiment): 10 buckets of predicted vs observed and the "
                    "ECE, stored in calibration_reports (a re-run replaces the window's rows), a reliability "
                    "diagram PNG per model, and a summary table.")
    calibrate.add_argument("--days", type=_positive, default=1, help="length of the window in days (default 1)")
    calibrate.add_argument("--until", default=None, metavar="ISO",
                           help="end of the window, e.g. 2026-11-24 or 2026-11-24T06:00Z; UTC when no zone "
                                "(default: today 00:00 UTC)")
    calibrate.add_argument("--out", default=None, metavar="DIR", help="folder of the PNGs (default var/reports)")
    calibrate.add_argument("--tenant", type=_tenant, default=None, help="one tenant (default: every tenant)")
    calibrate.set_defaults(func=cmd_calibrate)

    keys = sub.add_parser("keys", help="API keys: add, list, revoke (no restart needed)",
                          description="Scoped API keys, stored hashed in Postgres. Scopes: serve "
                                      "(recommendations and reads), ingest (interactions), admin (catalogue, "
                                      "experiments; includes the others). A revoked key stops working within "
                                      "ADAPTREC_KEY_CACHE_S seconds (default 5).")
    keys_sub = keys.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    keys_sub.required = True
    add = keys_sub.add_parser("add", help="create a key and print it (once)")
    add.add_argument("--name", required=True, type=_name, help="who or what uses the key, e.g. 'lms-backend'")
    add.add_argument("--scopes", required=True,
                     help="comma-separated: serve, ingest, admin, dashboard (read the /dashboard pages)")
    add.add_argument("--rate-limit", type=_positive, default=None, metavar="N",
                     help="requests per second for this key (default ADAPTREC_RATE_LIMIT_PER_S)")
    whose = add.add_mutually_exclusive_group()
    _tenant_option(whose, "the tenant the key belongs to (default: default)")
    whose.add_argument("--operator", action="store_true",
                       help="a key for every tenant: each request names one in X-Adaptrec-Tenant (default tenant "
                            "when it does not)")
    add.set_defaults(func=cmd_keys)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id (the 12 hex digits after 'ar_')")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys)
    keys_sub.add_parser("list", help="list keys (ids, names, scopes; never the keys)").set_defaults(func=cmd_keys)

    tenants = sub.add_parser("tenants", help="tenants: add, list, set, remove",
                             description="Every user, item, unit, interaction, model, experiment, key and log row "
                                         "belongs to one tenant; the same id in two tenants is two different "
                                         "things. A single-tenant deployment uses the tenant 'default' and never "
                                         "names it.")
    tenants_sub = tenants.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    tenants_sub.required = True
    t_add = tenants_sub.add_parser("add", help="create a tenant")
    t_add.add_argument("tenant", type=_tenant, metavar="TENANT", help="its id: letters, digits, '_', '.', '-'")
    t_add.add_argument("--name", type=_name, default=None, help="a readable name, e.g. 'North High School'")
    t_add.add_argument("--mode", choices=["mf", "partial", "full"], default=None,
                       help="the mode its models train in (default: the job's, ADAPTREC_TRAIN_MODE)")
    t_add.set_defaults(func=cmd_tenants)
    t_set = tenants_sub.add_parser("set", help="change a tenant's training mode (e.g. as its Totara site's)")
    t_set.add_argument("tenant", type=_tenant, metavar="TENANT")
    t_set.add_argument("--mode", choices=["mf", "partial", "full"], required=True,
                       help="the mode its models train in from the next `adaptrec train`")
    t_set.set_defaults(func=cmd_tenants)
    tenants_sub.add_parser("list", help="tenants with their users, items, interactions and models").set_defaults(
        func=cmd_tenants)
    t_rm = tenants_sub.add_parser("remove", help="delete a tenant and ALL its data (asks to confirm)")
    t_rm.add_argument("tenant", type=_tenant, metavar="TENANT")
    t_rm.add_argument("--yes", action="store_true", help="do not ask: delete at once (for scripts)")
    t_rm.set_defaults(func=cmd_tenants)

    servers = sub.add_parser("servers", help="status or stop of the embedded Postgres and Redis under ./var/")
    servers.add_argument("action", choices=["status", "stop"])
    servers.set_defaults(func=cmd_servers)
    return parser


def _tenant(text: str) -> str:
    from app.access.tenants import check_name

    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tenant_option(parser, help_text: str) -> None:
    parser.add_argument("--tenant", type=_tenant, default="default", help=help_text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _name(text: str) -> str:
    if not 1 <= len(text.strip()) <= 200:
        raise argparse.ArgumentTypeError("give a name of 1-200 characters")
    return text.strip()


def _non_negative(text: str) -> int:
    if text == "0":
        return 0
    return _positive(text)


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    from app.config import ConfigError, log_level
    from app.embedded import EmbeddedError
    from app.infra.db import DatabaseUnavailable
    from app.infra.logs import quiet_libraries
    from app.infra.migrations import MigrationError
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


"""`adaptrec import --format F PATH...`: each format module reads its files into a Loader.

A format module has DESCRIPTION (one line) and read(path, loader, id_prefix, progress) -> rows
read; it raises ImportFailed naming file, line and column for malformed input.
"""
from __future__ import annotations

from pathlib import Path

from app.access import tenants
from app.access.tenants import DEFAULT
from jobs.importers import assistments, jsonl, movielens, totara, xapi
from jobs.importers.common import ImportFailed, ImportReport, Loader, Timer

FORMATS = {
    "assistments": assistments,
    "movielens": movielens,
    "totara": totara,
    "jsonl": jsonl,
    "xapi": xapi,
}


# What Totara's service does with a tenant (its config: min_data 10 users and 10 items, one
# model per tenant, trained in the mode the site configures), as settings of a tenant the Totara
# import creates (jobs.train.tenant_config reads them).
TOTARA_MINIMUM = 10


def totara_training(mode: str) -> dict:
    return {"training": {"mode": mode, "min_tenant_users": TOTARA_MINIMUM, "min_tenant_items": TOTARA_MINIMUM,
                         "min_items": 1, "min_interactions": 1}}


def prepare_tenant(conn, tenant: str, fmt: str, totara_mode: str = "full") -> bool:
    """Create the tenant an import writes into unless it exists (True when created). A tenant
    Totara's export fills is marked `totara` (its endpoints answer only for those) and, when new,
    trains as Totara's service does."""
    created = tenants.ensure(conn, tenant)
    if fmt == "totara":
        tenants.set_settings(conn, tenant, {"totara": True, **(totara_training(totara_mode) if created else {})})
    return created


def run_import(conn, fmt: str, paths: list[Path], id_prefix: str = "", progress: bool = True,
               tenant: str = DEFAULT, totara_mode: str = "full", bulk: bool = False) -> list[ImportReport]:
    """Import each path into `tenant` (created if new), each in its own transaction: all of it or, on
    any error, none of it. A Totara export folder with tenants.csv instead imports each of its
    tenants into the adaptrec tenant of the same id (created if new, trained in `totara_mode`),
    each in its own transaction; a failing tenant stops the run, earlier ones stay imported.
    bulk: the interactions' secondary indexes and foreign keys are rebuilt after the insert
    (common.Loader), faster for millions of rows, the table locked until each path commits."""
    try:
        module = FORMATS[fmt]
    except KeyError:
        raise ImportFailed(fmt, None, None, f"unknown format; choose one of {', '.join(FORMATS)}") from None
    reports = []
    for path in paths:
        listed = totara.tenant_ids(Path(path)) if fmt == "totara" and Path(path).is_dir() else None
        for target, suffix in ([(t, f"_{t}") for t in listed] if listed else [(tenant, "")]):
            report = ImportReport(str(path) + (f" (tenant {target})" if listed else ""), fmt)
            with Timer() as timer, conn:  # `with conn`: commit on success, roll back on any error
                prepare_tenant(conn, target, fmt, totara_mode)
                loader = Loader(conn, tenant=target, bulk=bulk)
                if listed:
                    report.rows_read = totara.read(Path(path), loader, id_prefix, progress, suffix=suffix)
                else:
                    report.rows_read = module.read(Path(path), loader, id_prefix=id_prefix, progress=progress)
                report.created = loader.finish()
                if fmt == "totara":
                    loader.warnings += totara.tenant_warnings(conn, target)
                report.notes, report.warnings = loader.notes, loader.warnings
            report.seconds = timer.seconds
            reports.append(report)
    return reports


__all__ = ["FORMATS", "ImportFailed", "ImportReport", "run_import"]

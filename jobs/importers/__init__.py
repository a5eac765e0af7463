"""`adaptrec import --format F PATH...`: each format module reads its files into a Loader.

A format module has DESCRIPTION (one line) and read(path, loader, id_prefix, progress) -> rows
read; it raises ImportFailed naming file, line and column for malformed input.
"""
from __future__ import annotations

from pathlib import Path

from app import tenants
from app.tenants import DEFAULT
from jobs.importers import assistments, jsonl, movielens, totara
from jobs.importers.common import ImportFailed, ImportReport, Loader, Timer

FORMATS = {
    "assistments": assistments,
    "movielens": movielens,
    "totara": totara,
    "jsonl": jsonl,
}


def run_import(conn, fmt: str, paths: list[Path], id_prefix: str = "", progress: bool = True,
               tenant: str = DEFAULT) -> list[ImportReport]:
    """Import each path into `tenant` (created if new), each in its own transaction: all of it or, on
    any error, none of it. A Totara export folder with tenants.csv imports each of its tenants into
    its own adaptrec tenant instead (jobs.importers.totara_tenants)."""
    try:
        module = FORMATS[fmt]
    except KeyError:
        raise ImportFailed(fmt, None, None, f"unknown format; choose one of {', '.join(FORMATS)}") from None
    reports = []
    for path in paths:
        report = ImportReport(str(path), fmt)
        with Timer() as timer, conn:  # `with conn`: commit on success, roll back on any error
            tenants.ensure(conn, tenant)
            loader = Loader(conn, tenant=tenant)
            report.rows_read = module.read(Path(path), loader, id_prefix=id_prefix, progress=progress)
            report.created = loader.finish()
        report.seconds = timer.seconds
        reports.append(report)
    return reports


__all__ = ["FORMATS", "ImportFailed", "ImportReport", "run_import"]

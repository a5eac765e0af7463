"""`adaptrec export --format totara DIR`: the files Totara 13-14 sites upload instead of calling a
service. Per tenant, `i2u_{tenant}.csv` (`uid,iid,ranking`: each user's top N items, best first) and
`i2i_{tenant}.csv` (`target_iid,similar_iid,ranking`: each item's N most similar items), item ids in
Totara's component-prefixed form (`engage_article12`, as the Totara import stores them).

Both come from the same engine as the service: i2u lists every user of the tenant, those with
interactions and those known only from user_data, as /user-items answers them all (from their
history, their metadata or popularity), each with what /user-items would answer over all the
tenant's items (app.serving.related.user_top_items: strategy top, without the user's positive items,
not logged); i2i lists each Totara-named item with what /similar-items answers for it
(app.totara.answers.similar_items: items of the same component only). Each file is written to a
temporary name and renamed, so Totara never uploads half a file.
"""
from __future__ import annotations

import csv
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from app.access import tenants
from app.catalogue import catalog
from app.errors import NotFound
from app.infra import queries as q
from app.serving import related
from app.serving.context import RequestContext
from app.serving.model_cache import ModelCache
from app.totara import answers


@dataclass
class ExportReport:
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join(f"{path}: {self.rows[path.name]} rows" for path in self.files)


def export_totara(conn, cache, out_dir: Path, tenant_ids: list[str] | None = None, n: int = 10) -> ExportReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    models = ModelCache()
    for tenant in tenant_ids or [t for t in tenants.names(conn) if t != tenants.DEFAULT]:
        roots = [r["unit_id"] for r in q.fetch_all(conn, "root_units", tenant=tenant)]
        users = [r["user_id"] for r in q.fetch_all(conn, "tenant_user_ids", tenant=tenant)]
        items = catalog.items_under_units(conn, tenant, roots) if roots else []
        i2u = []
        for user in users:
            if not roots:
                break
            ctx = RequestContext(conn, tenant, cache, models, request_id=f"export-{uuid.uuid4().hex}")
            top = related.user_top_items(ctx, user, roots, n)
            i2u += [(user, item, score) for item, score in top]
        i2i = []
        for item in items:
            try:
                similar = answers.similar_items(RequestContext(conn, tenant, cache, models), item, n)
            except (ValueError, NotFound):   # not a Totara id: /similar-items could not be asked for it
                continue
            i2i += [(item, other, score) for other, score in similar]
        conn.rollback()
        for name, header, rows in ((f"i2u_{tenant}.csv", ("uid", "iid", "ranking"), i2u),
                                   (f"i2i_{tenant}.csv", ("target_iid", "similar_iid", "ranking"), i2i)):
            path = out_dir / name
            _write(path, header, rows)
            report.files.append(path)
            report.rows[name] = len(rows)
    return report


def _write(path: Path, header: tuple, rows: list[tuple]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows((a, b, f"{float(score):.6f}") for a, b, score in rows)
    os.replace(partial, path)

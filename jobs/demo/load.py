"""Writing the demo: staged through the importers' Loader (COPY into temp tables, then an
idempotent merge) in one transaction, and the report of what was written."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from app.access.tenants import DEFAULT
from app.infra import queries as q
from jobs.demo.config import ROOT_UNIT, DemoConfig, DemoError
from jobs.demo.dataset import DemoData, build
from jobs.demo.events import Events
from jobs.importers.common import Loader

CLASSIC = DemoConfig()   # the default demo (frozen, so one instance serves every call)


@dataclass
class DemoReport:
    config: DemoConfig
    generated: dict = field(default_factory=dict)   # table -> rows generated
    created: dict = field(default_factory=dict)     # table -> rows new in the database
    seconds: float = 0.0
    sample_user: str | None = None    # the most active learner
    sample_unit: str | None = None    # the section that learner practised most
    sample_item: str | None = None    # a question in that section

    def summary(self) -> str:
        c = self.config
        new = ", ".join(f"{n} {table}" for table, n in self.created.items() if n)
        return (f"demo (seed {c.seed}): {c.learners} learners, {self.generated.get('attempts', 0)} attempts, "
                f"{self.generated.get('engagements', 0)} engagement events, "
                f"{self.generated.get('items', 0)} items in {self.generated.get('units', 0)} units; "
                f"written in {self.seconds:.1f}s; new: {new or 'nothing (already loaded)'}")


def generate_demo(conn, config: DemoConfig = CLASSIC, progress: bool = False,
                  tenant: str = DEFAULT) -> DemoReport:
    """Generate the demo and merge it into the database in one transaction (all or nothing).

    Idempotent: ids are deterministic, so a second run with the same config adds nothing. A
    different config is refused while another demo is loaded, because its events would reuse
    the same ids for different rows.
    """
    started = time.perf_counter()
    config.validate()

    def say(message: str) -> None:
        if progress:
            print(f"adaptrec demo: {message}", file=sys.stderr, flush=True)

    with conn:
        _check_not_other_demo(conn, tenant, config)
        say("generating")
        data = build(config)
        report = DemoReport(config)
        report.generated = {"units": len(data.catalogue.units), "items": len(data.catalogue.items),
                            "users": len(data.learners.ids), "attempts": len(data.attempts),
                            "engagements": len(data.engagements)}
        with conn.cursor() as cur:
            # A bulk job in its own transaction: larger sort memory speeds the merge's ORDER BY.
            cur.execute("SET LOCAL work_mem = '256MB'")
        # Into a database with no interactions yet nothing can be locked out: load in bulk.
        loader = Loader(conn, tenant=tenant, bulk=q.fetch_one(conn, "interactions_empty")["empty"])
        stage(loader, data, progress)
        say(f"merging {report.generated['attempts'] + report.generated['engagements']} events into the "
            "database (about 30 s per million)")
        report.created = loader.finish()
    _samples(report, data)
    report.seconds = time.perf_counter() - started
    return report


def _check_not_other_demo(conn, tenant: str, config: DemoConfig) -> None:
    row = q.fetch_one(conn, "unit_generator", tenant=tenant, unit_id=ROOT_UNIT)
    if row is None:
        return
    generator = row["generator"]
    if generator != config.as_attrs():
        held = f"a demo generated with {json.dumps(generator)}" if generator else f"a unit {ROOT_UNIT!r} of its own"
        raise DemoError(f"the database already holds {held}; a demo with another configuration would "
                        "reuse its ids for different rows, so generate it into a fresh database "
                        "(point ADAPTREC_DATABASE_URL at one)")


def stage(loader: Loader, data: DemoData, progress: bool) -> None:
    """Add the whole data set to `loader`: the catalogue (the root unit carrying the generator's
    config), the learners, then the events; the caller finishes the loader."""
    cat = data.catalogue
    root = cat.units[0]
    loader.add("units", (root[0], root[1], root[2], {"generator": data.config.as_attrs()}))
    for row in cat.units[1:]:
        loader.add("units", row)
    for row in cat.children:
        loader.add("unit_children", row)
    for row in cat.items:
        loader.add("items", row)
    for row in cat.unit_items:
        loader.add("unit_items", row)
    for uid, attrs in zip(data.learners.ids.tolist(), data.learners.attrs):
        loader.add("users", (uid, attrs))
    total = len(data.attempts) + len(data.engagements)
    with tqdm(total=total, unit=" events", unit_scale=True, desc="staging", file=sys.stderr,
              disable=not progress or None, leave=False) as bar:
        for tag, events in (("a", data.attempts), ("e", data.engagements)):
            _stage_events(loader, data, tag, events, bar)


def _stage_events(loader: Loader, data: DemoData, tag: str, ev: Events, bar, chunk: int = 100_000) -> None:
    """Stage events in time order, numbered `demo:<seed>:<tag>:<n>` with n zero-padded: text
    order is then time order, so the merge (which inserts by occurred_at) appends to the
    event_id index instead of writing all over it, which matters at a million rows."""
    prefix = f"{ROOT_UNIT}:{data.config.seed}:{tag}:"
    width = max(6, len(str(len(ev) - 1)))
    order = np.argsort(ev.occurred, kind="stable")
    users = data.learners.ids
    for lo in range(0, len(ev), chunk):
        hi = min(lo + chunk, len(ev))
        take = order[lo:hi]
        # Convert a chunk at a time to plain Python values (None for "no value") for the Loader.
        outcome = [None if o < 0 else o for o in ev.outcome[take].tolist()]
        duration = [None if d < 0 else d for d in ev.duration_ms[take].tolist()]
        times = np.datetime_as_string(ev.occurred[take], unit="ms", timezone="UTC").tolist()
        rows = zip([f"{prefix}{n:0{width}d}" for n in range(lo, hi)], users[ev.user[take]].tolist(),
                   ev.item_ids[take].tolist(), ev.kind[take].tolist(), outcome,
                   [1.0 if tag == "e" else None] * (hi - lo), duration, [None] * (hi - lo), times)
        for row in rows:
            loader.add("interactions", row)
        bar.update(hi - lo)


def _samples(report: DemoReport, data: DemoData) -> None:
    a = data.attempts
    if not len(a):
        return
    busiest = int(np.bincount(a.user).argmax())
    report.sample_user = str(data.learners.ids[busiest])
    mine = a.item_ids[a.user == busiest]
    sections = np.array([q.rsplit(".", 1)[0] for q in mine])
    names, counts = np.unique(sections, return_counts=True)
    report.sample_unit = str(names[counts.argmax()])
    report.sample_item = f"{report.sample_unit}.q1"


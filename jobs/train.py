"""`adaptrec train`: the daily job. For each model unit (every unit with enough data, nearer the
top first), call its objective's `train_unit` (jobs.training.practice_job / engagement_job), which
collects the unit's interactions, trains, evaluates against a baseline, stores, and activates the
model if it is sane; collect what became of each.

Cron-safe: one runner at a time (a Postgres advisory lock; a second run says so and exits 0).
A unit whose training fails or whose model is worse than the active one by more than the
margin keeps its previous model; the job then exits non-zero naming it.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from app import queries as q
from app.db import connect
from app.jobruns import recorded
from app.tenants import DEFAULT
from app.tenants import names as tenant_names
from jobs.training import engagement_job, practice_job
from jobs.training.job import JobState, TrainConfig, TrainReport, UnitOutcome, UnitResult

__all__ = ["TRAIN_LOCK_KEY", "TrainConfig", "TrainReport", "UnitOutcome", "UnitResult", "model_units",
           "run_training", "unit_settings"]

log = logging.getLogger("adaptrec.train")
TRAIN_LOCK_KEY = 0x61647274  # "adrt"
# Each objective's seam: train_unit(conn, unit_id, mode, config) -> UnitResult.
OBJECTIVES: dict[str, Callable[..., UnitResult]] = {"practice": practice_job.train_unit,
                                                    "engagement": engagement_job.train_unit}


def unit_settings(attrs: dict | None, config: TrainConfig) -> dict:
    """Per-unit overrides from units.attrs.training: enabled, min_items, min_interactions, mode."""
    own = (attrs or {}).get("training") or {}
    return {"enabled": bool(own.get("enabled", True)),
            "min_items": int(own.get("min_items", config.min_items)),
            "min_interactions": int(own.get("min_interactions", config.min_interactions)),
            "mode": own.get("mode", config.mode)}


def model_units(conn, config: TrainConfig, requested: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(unit_id, objective, mode) to train in config.tenant: the requested units, or every unit with
    enough data."""
    candidates = {r["unit_id"]: r for r in q.fetch_all(conn, "unit_candidates", tenant=config.tenant)}
    if requested:
        unknown = [u for u in requested if u not in candidates]
        if unknown:
            raise ValueError(f"unknown unit(s): {', '.join(unknown)}")
    chosen = []
    for unit_id in requested or sorted(candidates):
        row = candidates[unit_id]
        s = unit_settings(row["attrs"], config)
        if not requested and (not s["enabled"] or row["items"] < s["min_items"]):
            continue
        need = 1 if requested else s["min_interactions"]  # a unit asked for by name trains on any data
        if row["attempts"] >= need:
            chosen.append((unit_id, "practice", s["mode"]))
        if row["engagements"] >= need and (requested or row["engaged_items"] >= config.min_engaged_items):
            chosen.append((unit_id, "engagement", s["mode"]))
    return chosen


def _ancestors(conn, tenant: str, unit_id: str) -> int:
    return len(q.fetch_all(conn, "units_above_unit", tenant=tenant, unit_id=unit_id)) - 1


def tenant_config(conn, config: TrainConfig, tenant: str) -> tuple[TrainConfig, str]:
    """The job's settings for one tenant: its mode and minimums (tenants.settings.training, which
    the Totara import sets as Totara does) over the job's; and why it trains nothing, if so."""
    row = q.fetch_one(conn, "get_tenant", tenant=tenant)
    own = ((row or {}).get("settings") or {}).get("training") or {}
    config = replace(config, tenant=tenant, mode=own.get("mode", config.mode),
                     min_items=int(own.get("min_items", config.min_items)),
                     min_interactions=int(own.get("min_interactions", config.min_interactions)))
    min_users, min_items = int(own.get("min_tenant_users", 0)), int(own.get("min_tenant_items", 0))
    if min_users or min_items:
        size = q.fetch_one(conn, "tenant_size", tenant=tenant)
        if size["users"] < min_users or size["items"] < min_items:
            return config, (f"tenant {tenant!r} has {size['users']} users with interactions and {size['items']} "
                            f"items; it needs at least {min_users} and {min_items} for a model (answers come "
                            f"from popularity)")
    return config, ""


def run_training(database_url: str, config: TrainConfig, units: list[str] | None = None,
                 progress: bool = True, on_result: Callable[[UnitResult], None] | None = None) -> TrainReport:
    """Train the requested units (or every model unit); returns what happened to each.

    on_result : called with each objective's UnitResult (the fitted arrays), e.g. by a benchmark
    that needs the trained learner vectors; the report keeps only the outcomes.
    """
    report = TrainReport()
    lock_conn = connect(database_url, application_name="adaptrec-train-lock")
    lock_conn.autocommit = True
    try:
        with lock_conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
            if not cur.fetchone()[0]:
                report.locked_out = True
                with recorded(database_url, "train", config.tenant or DEFAULT, units=units or "all") as run:
                    run.outcome = "skipped"
                return report
        conn = connect(database_url, application_name="adaptrec-train")
        try:
            tenants = [config.tenant] if config.tenant is not None else tenant_names(conn)
            conn.rollback()
            for tenant in tenants:
                # one job run per tenant: each tenant's operators see their own nights
                with recorded(database_url, "train", tenant, units=units or "all", mode=config.mode) as run:
                    first = len(report.outcomes)
                    _train_tenant(conn, tenant, config, units, progress, on_result, report)
                    mine = report.outcomes[first:]
                    run.outcome = "failed" if any(o.status in ("failed", "kept_previous") for o in mine) \
                        else "succeeded"
                    run.detail = {s: sum(1 for o in mine if o.status == s)
                                  for s in ("activated", "kept_previous", "failed", "skipped")}
        finally:
            conn.close()
    finally:
        lock_conn.close()  # closing the session releases the advisory lock
    return report


def _train_tenant(conn, tenant: str, config: TrainConfig, units: list[str] | None, progress: bool,
                  on_result: Callable[[UnitResult], None] | None, report: TrainReport) -> None:
    config, too_small = tenant_config(conn, config, tenant)
    if too_small:
        conn.rollback()
        report.outcomes.append(UnitOutcome("*", "engagement", "skipped", reason=too_small, tenant=tenant))
        log.info("%s", too_small)
        return
    # Units nearer the top first, so a unit is compared with tonight's model of its parent.
    todo = sorted(model_units(conn, config, units), key=lambda t: (_ancestors(conn, tenant, t[0]), t[0], t[1]))
    state = JobState()
    conn.rollback()
    from tqdm import tqdm

    bar = tqdm(todo, desc=f"training {tenant}", unit="model", file=sys.stderr, disable=not progress or None)
    for unit_id, objective, mode in bar:
        bar.set_postfix_str(unit_id[:30])
        t0 = time.perf_counter()
        try:
            result = OBJECTIVES[objective](conn, unit_id, mode, config, state)
        except Exception as exc:  # one unit's failure must not stop the others
            conn.rollback()
            log.exception("training %s (%s) failed", unit_id, objective)
            outcome = UnitOutcome(unit_id, objective, "failed", reason=f"{type(exc).__name__}: {exc}",
                                  seconds=time.perf_counter() - t0)
        else:
            outcome = result.outcome
            if on_result is not None:
                on_result(result)
        report.outcomes.append(replace(outcome, tenant=tenant))
        log.info("%s %s %s: %s %s", tenant, unit_id, objective, outcome.status, outcome.reason)

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

from app import queries as q
from app.db import connect
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
    """(unit_id, objective, mode) to train: the requested units, or every unit with enough data."""
    candidates = {r["unit_id"]: r for r in q.fetch_all(conn, "unit_candidates")}
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
        if row["engagements"] >= need:
            chosen.append((unit_id, "engagement", s["mode"]))
    return chosen


def _ancestors(conn, unit_id: str) -> int:
    return len(q.fetch_all(conn, "units_above_unit", unit_id=unit_id)) - 1


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
                return report
        conn = connect(database_url, application_name="adaptrec-train")
        try:
            # Units nearer the top first, so a unit is compared with tonight's model of its parent.
            todo = sorted(model_units(conn, config, units), key=lambda t: (_ancestors(conn, t[0]), t[0], t[1]))
            state = JobState()
            conn.rollback()
            from tqdm import tqdm

            bar = tqdm(todo, desc="training", unit="model", file=sys.stderr, disable=not progress or None)
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
                report.outcomes.append(outcome)
                log.info("%s %s: %s %s", unit_id, objective, outcome.status, outcome.reason)
        finally:
            conn.close()
    finally:
        lock_conn.close()  # closing the session releases the advisory lock
    return report

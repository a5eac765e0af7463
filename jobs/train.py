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
import os
import sys
from collections.abc import Callable
from dataclasses import replace

import psycopg2

from app.access.tenants import DEFAULT
from app.access.tenants import names as tenant_names
from app.infra import queries as q
from app.infra.db import connect
from app.infra.jobruns import recorded
from jobs.training.job import FASTEST_THREADS, JobState, TrainConfig, TrainReport, UnitOutcome, UnitResult
from jobs.training.practice_job import Trained
from jobs.training.runners import DaskRunner, Done, ProcessPool
from jobs.training.tasks import COMPARED_WITH_ANCESTORS, OBJECTIVES, DevPredictions, TaskSpec, train_one

__all__ = ["OBJECTIVES", "TRAIN_LOCK_KEY", "TrainConfig", "TrainReport", "UnitOutcome", "UnitResult", "describe_runner",
           "make_runner", "model_units", "run_tasks", "run_training", "unit_settings"]

log = logging.getLogger("adaptrec.train")
TRAIN_LOCK_KEY = 0x61647274  # "adrt"
SKIPPED_LISTED = 20          # units with data but no model named in the report; the rest counted
# Fitted-ahead units waiting for the units above (run_tasks) hold about this many first attempts
# in all in the orchestrator's memory before no more are fitted ahead (one unit may go over):
# with their fits 21-48 bytes an attempt pickled (ASSISTments' skills), so 50-100 MB.
PARKED_ATTEMPTS = 2_000_000


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
    return plan_units(conn, config, requested)[0]


def plan_units(conn, config: TrainConfig, requested: list[str] | None = None
               ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """model_units, and the units with interactions that train nothing: (unit_id, objective, what
    it lacks), so the job can say why a unit has no model."""
    candidates = {r["unit_id"]: r for r in q.fetch_all(conn, "unit_candidates", tenant=config.tenant)}
    if requested:
        unknown = [u for u in requested if u not in candidates]
        if unknown:
            raise ValueError(f"unknown unit(s): {', '.join(unknown)}")
    chosen, skipped = [], []
    for unit_id in requested or sorted(candidates):
        row = candidates[unit_id]
        s = unit_settings(row["attrs"], config)
        before = len(chosen)
        if requested or (s["enabled"] and row["items"] >= s["min_items"]):
            need = 1 if requested else s["min_interactions"]  # a unit asked for by name trains on any data
            if row["attempts"] >= need:
                chosen.append((unit_id, "practice", s["mode"]))
            if row["engagements"] >= need and (requested or row["engaged_items"] >= config.min_engaged_items):
                chosen.append((unit_id, "engagement", s["mode"]))
        if len(chosen) == before and (row["attempts"] or row["engagements"]):
            skipped.append((unit_id, "practice" if row["attempts"] >= row["engagements"] else "engagement",
                            _lacks(row, s, config)))
    return chosen, skipped


def _lacks(row: dict, s: dict, config: TrainConfig) -> str:
    """Why a unit with interactions trains nothing, in words that say what to change."""
    if not s["enabled"]:
        return "training is disabled in the unit's attrs (training.enabled = false)"
    if row["items"] < s["min_items"]:
        return (f"{row['items']} items under it; a model needs {s['min_items']} "
                "(ADAPTREC_TRAIN_MIN_ITEMS, or the unit's attrs training.min_items)")
    if row["engagements"] >= s["min_interactions"]:
        return (f"{row['engaged_items']} items with engagement events; a top-N model needs "
                f"{config.min_engaged_items} (ADAPTREC_TRAIN_MIN_ENGAGED_ITEMS)")
    return (f"{row['attempts']} attempts and {row['engagements']} engagement events; a model needs "
            f"{s['min_interactions']} of one kind (ADAPTREC_TRAIN_MIN_INTERACTIONS, or the unit's attrs "
            "training.min_interactions; `adaptrec train --unit U` trains a unit on any data)")


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


def make_runner(config: TrainConfig) -> ProcessPool | DaskRunner | None:
    """Where the tasks run: a Dask cluster when config.dask_scheduler names one, a pool of
    config.workers processes when that is above 1, else None (the in-process loop)."""
    if config.dask_scheduler:
        return DaskRunner(config.dask_scheduler)
    if config.workers > 1:
        return ProcessPool(config.workers)
    return None


def run_training(database_url: str, config: TrainConfig, units: list[str] | None = None,
                 progress: bool = True, on_result: Callable[[UnitResult], None] | None = None) -> TrainReport:
    """Train the requested units (or every model unit); returns what happened to each.

    The units run in this process one after another (config.workers 1), or as tasks on a local
    pool of config.workers processes or on the Dask cluster of config.dask_scheduler; this
    process holds the lock for the whole job either way.

    on_result : called with each objective's UnitResult (the fitted arrays), e.g. by a benchmark
    that needs the trained learner vectors; the report keeps only the outcomes.
    """
    report = TrainReport()
    lock_conn = connect(database_url, application_name="adaptrec-train-lock")
    lock_conn.autocommit = True
    runner = None
    held = False
    try:
        with lock_conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
            held = cur.fetchone()[0]
            if not held:
                report.locked_out = True
                with recorded(database_url, "train", config.tenant or DEFAULT, units=units or "all") as run:
                    run.outcome = "skipped"
                return report
        runner = make_runner(config)
        log.info("%s", describe_runner(config))
        conn = connect(database_url, application_name="adaptrec-train")
        try:
            tenants = [config.tenant] if config.tenant is not None else tenant_names(conn)
            conn.rollback()
            for tenant in tenants:
                # one job run per tenant: each tenant's operators see their own nights
                with recorded(database_url, "train", tenant, units=units or "all", mode=config.mode,
                              **_where(config)) as run:
                    first = len(report.outcomes)
                    _train_tenant(conn, database_url, tenant, config, units, progress, on_result, report, runner)
                    mine = report.outcomes[first:]
                    run.outcome = "failed" if any(o.status in ("failed", "kept_previous") for o in mine) \
                        else "succeeded"
                    run.detail = {s: sum(1 for o in mine if o.status == s)
                                  for s in ("activated", "kept_previous", "failed", "skipped")}
                    ahead = sum(o.fitted_ahead for o in mine)
                    if ahead:
                        run.detail["fitted_ahead"] = ahead
                    retried = [o.unit_id for o in mine if o.retried]
                    if retried:
                        run.detail["retried_after_worker_died"] = retried
        finally:
            conn.close()
    finally:
        if runner is not None:
            runner.close()
        release(lock_conn, held)
    return report


def release(lock_conn, held: bool) -> None:
    """Unlock the job's advisory lock, then close its session. Closing alone releases it only
    when the server has ended the session, after close() returns: a run started at once (cron,
    a retry, a test) could find it still held and skip as if another job were running."""
    try:
        if held:
            with lock_conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK_KEY,))
    except psycopg2.Error as exc:   # the session is going anyway; closing it releases the lock
        log.warning("could not unlock the training lock before closing its session: %s", exc)
    finally:
        lock_conn.close()


def _where(config: TrainConfig) -> dict:
    """Where the units ran, for the job run's record, with the threads each unit had."""
    if config.dask_scheduler:
        return {"runner": "dask", "threads": config.unit_threads}
    if config.workers > 1:
        return {"runner": "pool", "workers": config.workers, "threads": config.unit_threads}
    return {"threads": config.unit_threads}


def describe_runner(config: TrainConfig) -> str:
    """Where the units run and with how many threads each, in words (`adaptrec train` says it)."""
    if config.threads:
        given = "as set: --threads or ADAPTREC_TRAIN_THREADS"
    elif config.dask_scheduler:
        given = "the default on Dask"
    else:
        given = (f"the default: {FASTEST_THREADS}, the fastest in one process, within "
                 f"{len(os.sched_getaffinity(0))} cores ÷ {config.workers} worker(s)")
    if config.dask_scheduler:
        where = f"on the Dask cluster at {config.dask_scheduler}"
    elif config.workers > 1:
        where = f"on {config.workers} worker processes"
    else:
        where = "in this process"
    return f"training {where}, {config.unit_threads} thread(s) per unit ({given})"


def _units_above(conn, tenant: str, unit_id: str) -> list[str]:
    """The units above unit_id, nearest first (as practice_job.ancestor_on_dev orders them)."""
    rows = q.fetch_all(conn, "units_above_unit", tenant=tenant, unit_id=unit_id)
    return [r["unit_id"] for r in sorted(rows, key=lambda r: r["depth"]) if r["depth"] > 0]


def _train_tenant(conn, database_url: str, tenant: str, config: TrainConfig, units: list[str] | None,
                  progress: bool, on_result: Callable[[UnitResult], None] | None, report: TrainReport,
                  runner: ProcessPool | DaskRunner | None) -> None:
    config, too_small = tenant_config(conn, config, tenant)
    if too_small:
        conn.rollback()
        report.outcomes.append(UnitOutcome("*", "engagement", "skipped", reason=too_small, tenant=tenant))
        log.info("%s", too_small)
        return
    todo, skipped = plan_units(conn, config, units)
    for unit_id, objective, reason in skipped[:SKIPPED_LISTED]:
        report.outcomes.append(UnitOutcome(unit_id, objective, "skipped", reason=reason, tenant=tenant))
    if len(skipped) > SKIPPED_LISTED:
        report.outcomes.append(UnitOutcome(f"({len(skipped) - SKIPPED_LISTED} more units)", "practice", "skipped",
                                           reason="too little data, as above", tenant=tenant))
    above = {unit_id: _units_above(conn, tenant, unit_id) for unit_id in {t[0] for t in todo}}
    # Units nearer the top first, so a unit is compared with tonight's model of its parent.
    todo.sort(key=lambda t: (len(above[t[0]]), t[0], t[1]))
    conn.rollback()
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"training {tenant}", unit="model", file=sys.stderr,
               disable=not progress or None)

    def finished(outcome: UnitOutcome) -> UnitOutcome:
        outcome = replace(outcome, tenant=tenant)
        log.info("%s %s %s: %s %s", tenant, outcome.unit_id, outcome.objective, outcome.status, outcome.reason)
        bar.set_postfix_str(outcome.unit_id[:30])
        bar.update(1)
        return outcome

    try:
        if runner is None:
            state = JobState()
            for unit_id, objective, mode in todo:
                result = train_one(conn, unit_id, objective, mode, config, state)
                if on_result is not None and result.outcome.status != "failed":
                    on_result(result)
                report.outcomes.append(finished(result.outcome))
        else:
            outcomes = run_tasks(runner, database_url, config, todo, above, finished, on_result)
            report.outcomes += [outcomes[(unit_id, objective)] for unit_id, objective, _ in todo]
    finally:
        bar.close()


def run_tasks(runner: ProcessPool | DaskRunner, database_url: str, config: TrainConfig,
              todo: list[tuple[str, str, str]], above: dict[str, list[str]],
              finished: Callable[[UnitOutcome], UnitOutcome],
              on_result: Callable[[UnitResult], None] | None = None) -> dict[tuple[str, str], UnitOutcome]:
    """Run one tenant's (unit, objective) tasks on `runner`; the outcome of each.

    A practice unit is compared with tonight's model of the units above it: its comparison (and
    its storing and activation) waits until the tasks of the same objective on every unit above
    it in this job have finished, and is handed the dev predictions of the nearest of those
    units that has some, as the in-process loop does. Its fit does not wait: while the units
    above still train, a free worker fits it ahead (`fit_ahead`), the fitted unit waits here
    (`parked`, at most PARKED_ATTEMPTS attempts in all) and a second task finishes it once they
    are done. The job's order (the top first) decides which task a free worker takes: ready
    ones first, then fits ahead. Engagement units wait for nothing. A task whose worker dies is
    run once more from the start; dying twice fails that unit alone.
    """
    modes = {(unit_id, objective): mode for unit_id, objective, mode in todo}
    waits_for = {key: {(a, key[1]) for a in above[key[0]] if (a, key[1]) in modes and a != key[0]}
                 if key[1] in COMPARED_WITH_ANCESTORS else set() for key in modes}
    order = {key: n for n, key in enumerate(modes)}
    pending = list(modes)                  # in the job's order: the top first
    done: set[tuple[str, str]] = set()
    parked: dict[tuple[str, str], Trained] = {}   # fitted ahead, waiting for the units above
    fitted_ahead: set[tuple[str, str]] = set()
    outcomes: dict[tuple[str, str], UnitOutcome] = {}
    entries: dict[str, DevPredictions] = {}   # JobState.dev_predictions, compact, as units finish
    deaths: dict[tuple[str, str], list[str]] = {}

    def spec(key: tuple[str, str]) -> TaskSpec:
        unit_id, objective = key
        if key not in parked and not waits_for[key] <= done:
            return TaskSpec(database_url, config, unit_id, objective, modes[key], fit_ahead=True)
        nearest = next((a for a in above[unit_id] if a in entries), None)
        return TaskSpec(database_url, config, unit_id, objective, modes[key],
                        ancestor=(nearest, entries[nearest]) if nearest else None, return_arrays=on_result is not None,
                        trained=parked.pop(key, None))

    while pending or runner.running:
        room = sum(t.attempts for t in parked.values()) < PARKED_ATTEMPTS
        for key in _startable(runner, pending, waits_for, done, parked, fit_ahead=room):
            pending.remove(key)
            runner.submit(key, spec(key))
        for task in runner.wait():
            if _retry(task, deaths, config.tenant):
                pending.insert(0, task.key)
                continue
            if task.output is not None and task.output.trained is not None:
                parked[task.key] = task.output.trained      # fitted ahead: back in line for its finish
                fitted_ahead.add(task.key)
                pending.append(task.key)
                pending.sort(key=order.__getitem__)
                continue
            done.add(task.key)
            outcome = _task_outcome(task, deaths, entries, on_result)
            outcomes[task.key] = finished(replace(outcome, fitted_ahead=task.key in fitted_ahead))
    return outcomes


def _startable(runner: ProcessPool | DaskRunner, pending: list[tuple[str, str]],
               waits_for: dict[tuple[str, str], set[tuple[str, str]]], done: set[tuple[str, str]],
               parked: dict | None = None, fit_ahead: bool = True) -> list[tuple[str, str]]:
    """The pending tasks to submit now, as many as the runner has room for: those whose units
    above have finished (to run, or to finish when parked), then those that may be fitted ahead."""
    parked = parked or {}
    room = runner.capacity - runner.running
    ready = [k for k in pending if waits_for[k] <= done]
    ahead = [k for k in pending if fit_ahead and k not in parked and not waits_for[k] <= done
             and k[1] in COMPARED_WITH_ANCESTORS]
    if not ready and not ahead and not runner.running:
        # units that are each other's ancestors (a cycle in unit_children): the loop's order
        ready = pending[:1]
    return (ready + ahead)[:max(room, 0)]


def _retry(task: Done, deaths: dict[tuple[str, str], list[str]], tenant: str | None) -> bool:
    """Whether `task` is to run again: its worker died, for the first time (noted in `deaths`)."""
    if not task.died:
        return False
    deaths.setdefault(task.key, []).append(task.died)
    if len(deaths[task.key]) > 1:
        return False
    unit_id, objective = task.key
    log.warning("%s %s %s: %s; retrying it once on a fresh worker", tenant, unit_id, objective, task.died)
    return True


def _task_outcome(task: Done, deaths: dict[tuple[str, str], list[str]], entries: dict[str, DevPredictions],
                  on_result: Callable[[UnitResult], None] | None) -> UnitOutcome:
    """What became of a finished task (its worker dead twice, its training failed, or its model);
    a trained unit's dev predictions go into `entries` for the units below it."""
    key = task.key
    unit_id, objective = key
    if task.died:
        first, again = deaths[key]
        return UnitOutcome(unit_id, objective, "failed", retried=True,
                           reason=f"{first}; retried once" + ("" if again == first else f": {again}"))
    if task.error:
        return UnitOutcome(unit_id, objective, "failed", reason=task.error)
    outcome = task.output.unit.outcome
    if key in deaths:
        note = f"{deaths[key][0]} on the first attempt; retried once"
        outcome = replace(outcome, retried=True, reason=f"{outcome.reason}; {note}" if outcome.reason else note)
    if task.output.dev_predictions is not None:
        entries[unit_id] = task.output.dev_predictions
    if on_result is not None and outcome.status != "failed":
        on_result(replace(task.output.unit, outcome=outcome))
    return outcome

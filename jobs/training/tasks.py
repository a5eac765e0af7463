"""One unit's training as a task: what the orchestrator (jobs.train) sends to a worker process
(jobs.training.runners: a local pool or a Dask cluster) and what comes back.

A task carries the database URL, never training data: it opens its own Postgres connection,
reads its unit's data, trains, stores and activates (the objective's `train_unit`, atomic per
unit). The only data that travels is the nearest ancestor's dev predictions in (so the child is
compared with tonight's model above it, as in the in-process loop) and this unit's out: compact
arrays bounded by `max_eval_users` learners.

A practice unit whose ancestors still train runs in two tasks: `fit_ahead` fits it (most of its
time, needing nothing from above) and sends the fitted unit (practice_job.Trained) back; once
the units above have finished, a second task with it as `trained` compares, stores and
activates it (practice_job.finish_unit) on whichever worker is free.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from app import config
from app.infra.db import connect
from jobs.training import engagement_job, practice_job
from jobs.training.job import JobState, TrainConfig, UnitOutcome, UnitResult

log = logging.getLogger("adaptrec.train")
# Each objective's seam: train_unit(conn, unit_id, mode, config, state) -> UnitResult.
OBJECTIVES: dict[str, Callable[..., UnitResult]] = {"practice": practice_job.train_unit,
                                                    "engagement": engagement_job.train_unit}
# The objectives whose unit is compared with tonight's models of the units above it (the
# orchestrator waits for those), each as its two steps: fit(conn, unit_id, mode, config) ->
# Trained | UnitResult, which needs nothing from above, and finish(conn, trained, config, state).
COMPARED_WITH_ANCESTORS: dict[str, tuple[Callable[..., object], Callable[..., UnitResult]]] = {
    "practice": (practice_job.fit_unit, practice_job.finish_unit)}
# Tests only: a worker process SIGKILLs itself when it starts the task of this unit (never read
# by the in-process loop, whose process is the orchestrator's).
KILL_HOOK_ENV = config.KILL_WORKER_IN_UNIT


@dataclass(frozen=True)
class DevPredictions:
    """One unit's entry of JobState.dev_predictions as three aligned arrays (n,): learner ids,
    item ids, calibrated p. The dict form keys p by (learner id, item id)."""
    users: np.ndarray
    items: np.ndarray
    p: np.ndarray

    @classmethod
    def from_dict(cls, predictions: dict[tuple[str, str], float]) -> DevPredictions:
        keys = list(predictions)
        return cls(np.array([u for u, _ in keys], dtype=str), np.array([i for _, i in keys], dtype=str),
                   np.fromiter(predictions.values(), dtype=np.float64, count=len(keys)))

    def to_dict(self) -> dict[tuple[str, str], float]:
        return dict(zip(zip(self.users.tolist(), self.items.tolist()), self.p.tolist()))


@dataclass(frozen=True)
class TaskSpec:
    database_url: str
    config: TrainConfig                                # config.tenant is the unit's tenant
    unit_id: str
    objective: str
    mode: str
    ancestor: tuple[str, DevPredictions] | None = None  # the nearest ancestor's entry, when it has one
    return_arrays: bool = False                         # the fitted arrays too (run_training's on_result)
    fit_ahead: bool = False          # the units above still train: fit only, and send back the Trained unit
    trained: practice_job.Trained | None = None   # a fit_ahead task's unit, to finish (compare, store, activate)


@dataclass
class TaskResult:
    unit: UnitResult | None               # the outcome; the fitted arrays only when asked for (None: `trained`)
    dev_predictions: DevPredictions | None = None
    trained: practice_job.Trained | None = None   # a fit_ahead task's fitted unit, to be finished


def train_one(conn, unit_id: str, objective: str, mode: str, config: TrainConfig, state: JobState) -> UnitResult:
    """The objective's train_unit, numpy's BLAS limited to config.unit_threads; an exception fails this
    unit only (its previous model stays)."""
    return _guarded(unit_id, objective, config, lambda: OBJECTIVES[objective](conn, unit_id, mode, config, state), conn)


def _guarded(unit_id: str, objective: str, config: TrainConfig, step: Callable[[], object], conn=None,
             before: float = 0.0):
    """step() with numpy's BLAS limited to config.unit_threads; its exception a failed UnitResult (the
    unit's previous model stays), `before` seconds spent on the unit already."""
    t0 = time.perf_counter()
    try:
        # numpy's BLAS to the unit's share of the cores too, not one thread per core in every
        # worker: OpenBLAS threads spin while they wait, and with two workers on two cores (or a
        # shared machine) the replay's many small products then ran about 3 times slower.
        with threadpool_limits(limits=config.unit_threads, user_api="blas"):
            return step()
    except Exception as exc:  # one unit's failure must not stop the others
        try:
            if conn is not None:
                conn.rollback()
        except Exception:
            pass
        log.exception("training %s (%s) failed", unit_id, objective)
        return UnitResult(UnitOutcome(unit_id, objective, "failed", reason=f"{type(exc).__name__}: {exc}",
                                      seconds=before + time.perf_counter() - t0))


def run_task(spec: TaskSpec) -> TaskResult:
    """Run one unit's training (or its fit_ahead step, or the finish of a `trained` unit) in this
    (worker) process, on a connection of its own."""
    if config.kill_worker_in_unit() == spec.unit_id:
        os.kill(os.getpid(), signal.SIGKILL)
    state = JobState()
    if spec.ancestor is not None:
        state.dev_predictions[spec.ancestor[0]] = spec.ancestor[1].to_dict()
    t0 = time.perf_counter()
    try:
        conn = connect(spec.database_url, application_name="adaptrec-train-task")
    except Exception as exc:
        return TaskResult(UnitResult(UnitOutcome(spec.unit_id, spec.objective, "failed",
                                                 reason=f"{type(exc).__name__}: {exc}",
                                                 seconds=time.perf_counter() - t0)))
    try:
        if spec.trained is not None:
            finish = COMPARED_WITH_ANCESTORS[spec.objective][1]
            result = _guarded(spec.unit_id, spec.objective, spec.config,
                              lambda: finish(conn, spec.trained, spec.config, state), conn, spec.trained.seconds)
        elif spec.fit_ahead:
            fit = COMPARED_WITH_ANCESTORS[spec.objective][0]
            fitted = _guarded(spec.unit_id, spec.objective, spec.config,
                              lambda: fit(conn, spec.unit_id, spec.mode, spec.config), conn)
            if not isinstance(fitted, UnitResult):
                return TaskResult(None, trained=fitted)
            result = fitted
        else:
            result = train_one(conn, spec.unit_id, spec.objective, spec.mode, spec.config, state)
    finally:
        conn.close()
    mine = state.dev_predictions.get(spec.unit_id)
    if not spec.return_arrays:
        result = UnitResult(replace(result.outcome))
    return TaskResult(result, DevPredictions.from_dict(mine) if mine else None)

"""The shapes of a training job, shared by the orchestrator (jobs.train) and each objective's
`train_unit` (jobs.training.practice_job, jobs.training.engagement_job): the job's settings, what
became of a unit, what an objective fitted, and the report."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from app.config import train_settings
from app.model.artifact import ModelArtifact
from jobs.training import split
from jobs.training.ease import EASE_NEIGHBOURS

# The held-out figure that decides activation and heads the report, per objective.
HEADLINE_METRIC = {"practice": "auc", "engagement": "precision_at_10"}


@dataclass(frozen=True)
class TrainConfig:
    tenant: str | None = "default"   # whose units; None: every tenant, one after another (train --all)
    mode: str = "mf"
    tag: str = "default"
    min_items: int = 5
    min_interactions: int = 100
    # An engagement (top-N) model needs this many items anyone engaged with: below it, a top-10 is
    # the popularity order padded with items nobody touched (the demo's sections: 2 lessons each).
    min_engaged_items: int = 10
    # A practice unit with more attempts trains on a hash sample of its learners bringing about
    # this many (practice_job.learner_share); 0: every learner.
    max_attempts: int = 2_000_000
    keep_versions: int = 3
    margin: float = 0.02          # a new model may be at most this much worse (AUC / precision@10)
    max_trials: int = 3
    unit_time_budget_s: float = 30.0
    max_eval_users: int = 1000    # validation / test learners replayed per unit (each costs a fit per attempt)
    prefer_parent: bool = True    # leave a unit to its ancestor's model when that predicts its dev learners better
    seed: int = 0                 # the model's random start
    split_seed: int = split.SEED  # learners' roles (jobs.training.split); a new seed reshuffles them all
    hold_out_test_learners: bool = True   # the stored model never trains on the split's test learners
    threads: int | None = None    # LightFM's and numpy's BLAS threads per unit; None: unit_threads chooses
    ease_neighbours: int = EASE_NEIGHBOURS   # engagement: source items EASE keeps per item (the stored top-k)
    workers: int = 1              # 1: the units one after another in this process; N: a local pool of N processes
    dask_scheduler: str | None = None   # a Dask scheduler's address: the units run on its cluster instead

    @property
    def unit_threads(self) -> int:
        """The threads each unit trains with: `threads` when given (ADAPTREC_TRAIN_THREADS, or set
        by the caller), else default_threads for this many workers."""
        return self.threads or default_threads(self.workers, self.dask_scheduler is not None)

    @classmethod
    def from_env(cls, env=None, **overrides) -> TrainConfig:
        """The defaults above, under the training variables that are set (read and checked
        by app.config.train_settings), under `overrides` that are not None."""
        values = train_settings(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# Threads per unit that trained fastest in one process (2026-12-06, ASSISTments 2009 on 2 cores:
# the job's training 97 s with 1 thread, 117 s with 2; 102-107 s against 137 s before): LightFM's
# fits are about a sixth of a unit's time, the rest its replay's Python and small numpy products,
# where a second BLAS thread only spins. One thread also makes fits reproducible to the bit.
FASTEST_THREADS = 1


def default_threads(workers: int, dask: bool = False, cores: int | None = None,
                    fastest: int = FASTEST_THREADS) -> int:
    """Threads per unit when none are asked for: the fastest count in one process, but no more
    than this machine's cores divided among the workers that train at once; at least one. On
    Dask 1: a task there runs beside as many others as its worker has threads, on a machine
    whose cores this process does not know."""
    if dask:
        return 1
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, min(fastest, cores // max(1, workers)))


@dataclass
class JobState:
    """What one run of the job shares between units, parents first: for each practice unit, the
    calibrated dev predictions of the model that serves it (its own, or an ancestor's when that
    serves it), keyed by (learner id, item id), from fits on train learners only. A child unit is
    compared with its nearest ancestor's on the same dev attempts, the ancestor predicting from the
    learner's whole history under it, as it would serve a request for the child."""
    dev_predictions: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)


@dataclass
class UnitOutcome:
    unit_id: str
    objective: str
    # activated | kept_previous | parent_serves | failed | skipped; "stored" only inside an
    # objective, between saving a model and deciding its activation
    status: str
    model_id: int | None = None
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0
    tenant: str = "default"
    retried: bool = False   # its worker process died and it ran once more (a pool or Dask)
    fitted_ahead: bool = False   # fitted while the units above it trained, compared after (a pool or Dask)


@dataclass
class UnitResult:
    """What an objective's `train_unit` did (`outcome`) and, when it trained a model, what it fitted:
    the model it stored (`artifact`: embedding, calibration, the other parts) and, for practice, the
    final refit's trained learner vectors (the service folds learners in live, so those are not
    stored; benches compare against them).

    user_vectors : (n_users, d) and user_biases : (n_users,), rows in `user_ids` order: for
    practice, the learners the stored model was trained on (the unit's train and dev learners; its
    test learners too only without hold-out). test_user_ids : the held-out learners its metrics
    (and the parent comparison) were computed on.
    """
    outcome: UnitOutcome
    artifact: ModelArtifact | None = None
    user_ids: list[str] = field(default_factory=list)
    user_vectors: np.ndarray | None = None
    user_biases: np.ndarray | None = None
    counts: dict = field(default_factory=dict)
    test_user_ids: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict:
        return self.outcome.metrics


@dataclass
class TrainReport:
    outcomes: list[UnitOutcome] = field(default_factory=list)
    locked_out: bool = False

    @property
    def failed(self) -> list[UnitOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "kept_previous")]

    def table(self) -> str:
        several = len({o.tenant for o in self.outcomes}) > 1
        lines = [f"{'unit':<40} {'objective':<10} {'status':<14} {'model':>6} {'auc/p@10':>9} {'baseline':>9} "
                 f"{'secs':>6}"]
        for o in self.outcomes:
            m = o.metrics.get("model", {})
            b = o.metrics.get("baseline", {})
            key = HEADLINE_METRIC[o.objective]
            unit = f"{o.tenant}/{o.unit_id}" if several else o.unit_id
            lines.append(f"{unit[:40]:<40} {o.objective:<10} {o.status:<14} {o.model_id or '-':>6} "
                         f"{_fmt(m.get(key)):>9} {_fmt(b.get(key)):>9} {o.seconds:>6.1f}")
            if o.reason:
                lines.append(f"    {o.reason}")
        return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

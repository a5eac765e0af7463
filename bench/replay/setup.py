"""bench.replay's preparing: the attempts of a regime, the learners' roles from the training job's own
split, the rows the job may train on and the rows replayed under a protocol, and the report's
description of all that."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from app.config import PROJECT_ROOT
from bench.attempts import (
    CUT_QUANTILE,
    FEW_ATTEMPTS,
    NEW_FRACTION,
    NEW_SEED,
    REGIME_SEED,
    REGIMES,
    annotate,
    describe,
    few_attempts_slice,
    production_cut,
    regime_attempts,
    replay_frame,
    skills_by_problem,
    with_training_counts,
)
from bench.compare import ROLES
from jobs.training import split

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"
ROOT = "assistments"
SPLIT_SEED = split.SEED          # learners' roles: the training job's own split of learners
# The job run here is given only rows it may train on; it splits their learners again (for its
# grid, calibration and own held-out figures) with this seed.
JOB_SPLIT_SEED = SPLIT_SEED + 1
PROTOCOLS = ("learner", "production")
START = datetime(2009, 9, 1, tzinfo=UTC)   # the importer's clock: START + seq minutes


def attempt_time(seq: int) -> datetime:
    return START + timedelta(minutes=int(seq))


def learner_rows(df: pd.DataFrame, protocol: str, ids: dict[str, list[str]], replayed_ids: dict[str, list[str]]
                 ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(the rows the job trains on, {role: the role's replayed learners' whole sequences with a
    `replayed` column}) under `protocol`, from an annotated frame."""
    if protocol == "production":
        df = production_cut(df)
        frames = {r: replay_frame(df, replayed_ids[r]) for r in ROLES}
        return df[df.before], {r: f.assign(replayed=~f.before.to_numpy()) for r, f in frames.items()}
    train = df[df.user_id.isin(set(ids["train"]))]
    return train, {r: replay_frame(df, replayed_ids[r]).assign(replayed=True) for r in ROLES}


@dataclass
class Plan:
    """What one replay does: the data, the learners of each role (`ids`: the whole split;
    `replayed_ids`: the first --max-test-students of dev and test), the training rows, each role's
    whole sequences (`frames`) and replayed rows (`rows`), each problem's skills (`skill_of`: its
    first skill's unit, for the skill requests, or None), the job's config, and `log`."""
    data: Path | None
    regime: str
    protocol: str
    train_all_units: bool
    retrain: bool
    progress: bool
    df: pd.DataFrame
    ids: dict
    replayed_ids: dict
    train_df: pd.DataFrame
    frames: dict
    rows: dict
    skills_of: dict
    skill_of: dict | None
    config: object
    log: object
    knowledge: bool = False      # also ask the knowledge of the item's skills before each first attempt at an item
    known: dict = field(default_factory=dict)    # role -> the knowledge rows the replay recorded
    item_learning: str = "all"   # items whose difficulty the replayed attempts teach (app.config.ITEM_LEARNING)


def prepare(data: Path | None, max_test_students: int | None, retrain: bool, progress: bool,
            train_all_units: bool, regime: str, protocol: str, skill_requests: bool, knowledge: bool = False,
            item_learning: str = "all") -> Plan:
    from jobs.train import TrainConfig

    df = annotate(regime_attempts(REGIMES[regime], data))
    ids = split.ids_by_role(df.user_id, SPLIT_SEED)  # the training job's learner roles, in key order
    replayed_ids = {role: ids[role][:max_test_students] for role in ROLES}
    train_df, frames = learner_rows(df, protocol, ids, replayed_ids)
    frames = {r: with_training_counts(f, train_df) for r, f in frames.items()}
    rows = {r: f[f.replayed.to_numpy(dtype=bool)].reset_index(drop=True) for r, f in frames.items()}
    skills_of = skills_by_problem(df)
    skill_of = {p: f"skill:{s[0]}" for p, s in skills_of.items() if s} if skill_requests and train_all_units else None
    config = replace(TrainConfig.from_env(), split_seed=JOB_SPLIT_SEED)
    if protocol == "production":
        retrain = False                 # this protocol is the retrain, as production runs it
        config = replace(config, hold_out_test_learners=False)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    log(f"{regime} / {protocol}: {len(df)} attempts; {len(train_df)} training attempts; "
        + ", ".join(f"{len(replayed_ids[r])} {r} learners ({len(rows[r])} replayed attempts)" for r in ROLES))
    return Plan(data, regime, protocol, train_all_units, retrain, progress, df, ids, replayed_ids, train_df, frames,
                rows, skills_of, skill_of, config, log, knowledge, item_learning=item_learning)


def described(plan: Plan) -> dict:
    """The report's first keys: the data, its split into roles, the job's config, the slices."""
    the_regime, rows, config = REGIMES[plan.regime], plan.rows, plan.config
    result: dict = {"data": "demo generator" if the_regime.demo else str(plan.data), "regime": plan.regime,
                    "regime_description": the_regime.description, "protocol": plan.protocol,
                    "data_shape": describe(plan.df), "date": date.today().isoformat(),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                    "split": {"seed": SPLIT_SEED, "job_split_seed": JOB_SPLIT_SEED,
                              "train_students": len(plan.ids["train"]), "train_attempts": len(plan.train_df)}
                    | {f"{r}_{k}": v for r in ROLES for k, v in (("students", len(plan.replayed_ids[r])),
                                                                 ("students_in_split", len(plan.ids[r])),
                                                                 ("attempts", len(rows[r])))},
                    "config": {"mode": config.mode, "max_trials": config.max_trials, "threads": config.unit_threads,
                               "hold_out_test_learners": config.hold_out_test_learners,
                               "units_trained": "all model units" if plan.train_all_units else [ROOT],
                               "predicting_unit": ROOT, "skill_requests": plan.skill_of is not None,
                               "knowledge_requests": plan.knowledge, "item_learning": plan.item_learning},
                    "few_attempts_slice": {"name": few_attempts_slice(), "threshold": FEW_ATTEMPTS,
                                           "counted_in": "the rows the models were trained on (train_attempts)"}}
    if plan.protocol == "production":
        result["production_cut"] = {"new_fraction": NEW_FRACTION, "new_seed": NEW_SEED,
                                    "cut_quantile": CUT_QUANTILE} | {
            f"{r}_{kind}_{what}": int(v) for r in ROLES for kind, sel in (("returning", True), ("new", False))
            for what, v in (("learners", rows[r][rows[r].returning == sel].user_id.nunique()),
                            ("attempts", (rows[r].returning == sel).sum()))}
    if the_regime.learners:
        result["regime_seed"] = REGIME_SEED
    return result


def protocol_text(protocol: str = "learner", train_all_units: bool = True) -> str:
    roles = (f"Learners split by the training job's learner split (jobs.training.split, seed {SPLIT_SEED}): "
             f"sha256('<seed>:<user_id>') as a number in [0, 1), below 0.8 train, below 0.9 dev, else test; every "
             f"figure reported for dev and test; settings are chosen on dev, test is never tuned on. ")
    if protocol == "production":
        rows = (f"Production protocol: a seeded {NEW_FRACTION:.0%} of learners (seed {NEW_SEED}) join after the cut; "
                f"every other learner's first floor({CUT_QUANTILE:g} n) attempts are before it. Every attempt "
                f"before the cut (all roles) imported and trained on (the job's test hold-out off); every dev and "
                f"test attempt after the cut replayed, returning and new learners reported apart. ")
    else:
        rows = ("Learner protocol: training learners' rows imported and trained on; every attempt of the dev and "
                "test learners (new to the service) replayed. ")
    return (roles + rows + f"Rows imported by the assistments importer; the whole file's catalogue staged by the "
            f"importer's catalogue code; {'every model unit' if train_all_units else 'the root unit'} trained by "
            f"run_training (TrainConfig.from_env(), split seed {JOB_SPLIT_SEED}). Replay in seq order: predict() "
            f"for the root '{ROOT}' (and the item's first skill unit) before the outcome, then "
            f"record_interactions (real Postgres and Redis). Baselines on the same attempts: item difficulty, Elo "
            f"(fixed U(n) = 1/(1 + 0.05 n), and constants tuned on dev), live 1PL (bench.baselines), Best-LR and PFA "
            f"(bench.knowledge_tracing_baselines: fitted on the training rows, L2 chosen on dev). Slices (with items "
            f"of fewer than {FEW_ATTEMPTS} training attempts), and the service minus baselines with 95 % "
            f"learner-bootstrap intervals.")

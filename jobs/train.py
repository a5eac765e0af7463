"""`adaptrec train`: the daily job. For each model unit, collect the interactions on the items
under it, train, evaluate against a baseline, store, and activate if it is sane.

Cron-safe: one runner at a time (a Postgres advisory lock; a second run says so and exits 0).
A unit whose training fails or whose model is worse than the active one by more than the
margin keeps its previous model; the job then exits non-zero naming it.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from app import modelstore
from app import queries as q
from app.db import connect
from jobs.training import features
from jobs.training.practice import PracticeData, replay_auc, train_practice

log = logging.getLogger("adaptrec.train")
TRAIN_LOCK_KEY = 0x61647274  # "adrt"


@dataclass(frozen=True)
class TrainConfig:
    mode: str = "mf"
    tag: str = "default"
    min_items: int = 5
    min_interactions: int = 100
    keep_versions: int = 3
    margin: float = 0.02          # a new model may be at most this much worse (AUC / precision@10)
    max_trials: int = 3
    unit_time_budget_s: float = 30.0
    max_eval_users: int = 1000    # validation / test learners replayed per unit (each costs a fit per attempt)
    prefer_parent: bool = False   # leave a unit to its parent's model when that predicts it better
    seed: int = 0
    threads: int = 2

    @classmethod
    def from_env(cls, env=None, **overrides) -> "TrainConfig":
        env = os.environ if env is None else env
        values = {
            "mode": env.get("ADAPTREC_TRAIN_MODE", cls.mode),
            "min_items": int(env.get("ADAPTREC_TRAIN_MIN_ITEMS", cls.min_items)),
            "min_interactions": int(env.get("ADAPTREC_TRAIN_MIN_INTERACTIONS", cls.min_interactions)),
            "keep_versions": int(env.get("ADAPTREC_TRAIN_KEEP_VERSIONS", cls.keep_versions)),
            "margin": float(env.get("ADAPTREC_TRAIN_MARGIN", cls.margin)),
            "max_trials": int(env.get("ADAPTREC_TRAIN_MAX_TRIALS", cls.max_trials)),
            "threads": int(env.get("ADAPTREC_TRAIN_THREADS", cls.threads)),
            "max_eval_users": int(env.get("ADAPTREC_TRAIN_MAX_EVAL_USERS", cls.max_eval_users)),
            "prefer_parent": env.get("ADAPTREC_TRAIN_PREFER_PARENT", "0").lower() in ("1", "true", "yes"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class UnitOutcome:
    unit_id: str
    objective: str
    status: str                   # activated | kept_previous | failed | skipped
    model_id: int | None = None
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0


@dataclass
class TrainReport:
    outcomes: list[UnitOutcome] = field(default_factory=list)
    locked_out: bool = False

    @property
    def failed(self) -> list[UnitOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "kept_previous")]

    def table(self) -> str:
        lines = [f"{'unit':<40} {'objective':<10} {'status':<14} {'model':>6} {'auc/p@10':>9} {'baseline':>9} {'secs':>6}"]
        for o in self.outcomes:
            m = o.metrics.get("model", {})
            b = o.metrics.get("baseline", {})
            key = "auc" if o.objective == "practice" else "precision_at_10"
            lines.append(f"{o.unit_id[:40]:<40} {o.objective:<10} {o.status:<14} {o.model_id or '-':>6} "
                         f"{_fmt(m.get(key)):>9} {_fmt(b.get(key)):>9} {o.seconds:>6.1f}")
            if o.reason:
                lines.append(f"    {o.reason}")
        return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


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


def load_practice_data(conn, unit_id: str, mode: str) -> PracticeData:
    items = q.fetch_all(conn, "unit_items_for_training", unit_id=unit_id)
    item_ids = [i["item_id"] for i in items]
    with conn.cursor() as cur:
        cur.execute(q.sql("first_attempts_on_items"), {"item_ids": item_ids})
        rows = cur.fetchall()
    conn.rollback()  # a long read: do not hold its snapshot while training
    user_col = np.array([r[0] for r in rows], dtype=object)
    item_pos = {item_id: i for i, item_id in enumerate(item_ids)}
    user_ids, users = np.unique(user_col, return_inverse=True) if len(rows) else (np.array([]), np.array([], int))
    data = PracticeData(
        user_ids=[str(u) for u in user_ids], item_ids=item_ids,
        users=users.astype(np.int32), items=np.array([item_pos[r[1]] for r in rows], dtype=np.int32),
        outcomes=np.array([r[2] for r in rows], dtype=np.int8))
    if mode != "mf":
        data.item_features = features.item_features(items, mode)
        attrs = {r["user_id"]: r["attrs"] for r in q.fetch_all(conn, "users_attrs", user_ids=data.user_ids)}
        data.user_features = features.user_features(
            [{"user_id": u, "attrs": attrs.get(u, {})} for u in data.user_ids], mode)
        conn.rollback()
    return data


def _sane(new: dict, active: dict | None, key: str, margin: float) -> tuple[bool, str]:
    if not active:
        return True, ""
    old = (active.get("metrics") or {}).get("model", {}).get(key)
    value = new.get("model", {}).get(key)
    if old is None or value is None:  # no held-out figure to compare (too few learners)
        return True, ""
    if value < old - margin:
        return False, f"held-out {key} {value:.3f} is worse than the active model's {old:.3f} by more than {margin}"
    return True, ""


def train_unit(conn, unit_id: str, objective: str, mode: str, config: TrainConfig) -> UnitOutcome:
    started = time.perf_counter()
    if objective != "practice":
        from jobs.training.engagement import train_engagement_unit

        return train_engagement_unit(conn, unit_id, mode, config)
    data = load_practice_data(conn, unit_id, mode)
    if len(data.outcomes) == 0:
        return UnitOutcome(unit_id, objective, "skipped", reason="no attempts under this unit")
    result = train_practice(data, max_trials=config.max_trials, time_budget_s=config.unit_time_budget_s,
                            seed=config.seed, threads=config.threads, max_eval_users=config.max_eval_users)
    fitted = result.fitted
    extra = {}
    if data.user_features is not None and fitted.user_feature_vectors is not None:
        extra = {"user_feature_names": data.user_features.names[len(data.user_ids):]}
    counts = {"users": len(data.user_ids), "items": len(data.item_ids), "attempts": int(len(data.outcomes)),
              "items_attempted": int(len(np.unique(data.items)))}
    parent = _parent_comparison(conn, unit_id, config, data, result)
    if parent:
        result.metrics["parent"] = parent
    with conn:
        model_id = modelstore.save_model(
            conn, unit_id=unit_id, objective=objective, mode=mode, tag=config.tag, item_ids=data.item_ids,
            item_vectors=fitted.item_vectors, item_biases=fitted.item_biases, prior_mean=fitted.prior_mean,
            prior_cov=fitted.prior_cov, calibration=result.calibration,
            hyperparams={**result.params.__dict__, "search": result.search, "seed": config.seed},
            metrics=result.metrics, data_counts=counts, training_seconds=result.seconds, extra=extra)
    own = result.metrics["model"].get("auc")
    if config.prefer_parent and parent and own is not None and not math.isnan(own) and parent["auc"] > own:
        # The unit above predicts this unit's learners better: serve that one here.
        reason = (f"the model of {parent['unit_id']!r} predicts this unit better "
                  f"(held-out AUC {parent['auc']:.3f} vs {own:.3f}); it serves this unit")
        with conn:
            modelstore.mark_failed(conn, model_id, reason)
            q.execute(conn, "retire_active_model", unit_id=unit_id, objective=objective, tag=config.tag)
        return UnitOutcome(unit_id, objective, "parent_serves", model_id, result.metrics, reason,
                           time.perf_counter() - started)
    return _activate_if_sane(conn, unit_id, objective, model_id, result.metrics, "auc", config, started)


def _parent_comparison(conn, unit_id: str, config: TrainConfig, data: PracticeData, result) -> dict | None:
    """Held-out AUC, on this unit's test learners, of the active model of the nearest unit above."""
    row = q.fetch_one(conn, "nearest_ancestor_active_model", unit_id=unit_id, objective="practice", tag=config.tag)
    conn.rollback()
    if row is None or result.test_users is None or not len(result.test_users):
        return None
    other = modelstore.load_model(conn, row["model_id"])
    conn.rollback()
    auc = replay_auc(other.item_ids, other.item_vectors, other.item_biases, other.prior_mean, other.prior_cov,
                     data, result.test_users)
    return None if math.isnan(auc) else {"unit_id": row["unit_id"], "model_id": row["model_id"], "auc": auc}


def _activate_if_sane(conn, unit_id, objective, model_id, metrics, key, config, started) -> UnitOutcome:
    with conn:
        active = modelstore.active_model_summary(conn, unit_id, objective, config.tag)
        ok, reason = _sane(metrics, active, key, config.margin)
        if ok:
            modelstore.activate(conn, model_id)
            modelstore.prune(conn, unit_id, objective, config.tag, config.keep_versions)
            status = "activated"
        else:
            modelstore.mark_failed(conn, model_id, reason)
            status = "kept_previous"
    return UnitOutcome(unit_id, objective, status, model_id, metrics, reason, time.perf_counter() - started)


def _ancestors(conn, unit_id: str) -> int:
    return len(q.fetch_all(conn, "units_above_unit", unit_id=unit_id)) - 1


def run_training(database_url: str, config: TrainConfig, units: list[str] | None = None,
                 progress: bool = True) -> TrainReport:
    """Train the requested units (or every model unit); returns what happened to each."""
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
            conn.rollback()
            from tqdm import tqdm

            bar = tqdm(todo, desc="training", unit="model", file=sys.stderr, disable=not progress or None)
            for unit_id, objective, mode in bar:
                bar.set_postfix_str(unit_id[:30])
                t0 = time.perf_counter()
                try:
                    outcome = train_unit(conn, unit_id, objective, mode, config)
                except Exception as exc:  # one unit's failure must not stop the others
                    conn.rollback()
                    log.exception("training %s (%s) failed", unit_id, objective)
                    outcome = UnitOutcome(unit_id, objective, "failed", reason=f"{type(exc).__name__}: {exc}",
                                          seconds=time.perf_counter() - t0)
                report.outcomes.append(outcome)
                log.info("%s %s: %s %s", unit_id, objective, outcome.status, outcome.reason)
        finally:
            conn.close()
    finally:
        lock_conn.close()  # closing the session releases the advisory lock
    return report

"""The practice objective's training step for one unit: read its learners' first attempts, train
(jobs.training.practice: the candidate that predicts its dev learners best), compare with the
nearest ancestor's model on the same dev attempts (that decides who serves the unit) and, for the
record, on test learners neither has trained on; store, and activate if sane."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from app.infra import queries as q
from app.model import store as modelstore
from app.model.artifact import Embedding, MetadataPrior, ModelArtifact, Skills
from jobs.training import split
from jobs.training.activation import activate_if_sane
from jobs.training.job import JobState, TrainConfig, UnitOutcome, UnitResult
from jobs.training.metrics import probability_metrics
from jobs.training.practice import (
    PracticeData,
    PracticeResult,
    item_feature_table,
    replay_auc,
    skill_index,
    train_practice,
)
from jobs.training.unit_data import hybrid_features

OBJECTIVE = "practice"
MIN_DEV_ATTEMPTS = 20     # fewer dev attempts in common with the ancestor decide nothing


def learner_share(conn, tenant: str, item_ids: list[str], max_attempts: int) -> float:
    """The share of learners a unit trains on: all (1.0) up to max_attempts attempts on its items
    (0: no cap), else a hash sample of learners expected to bring about max_attempts. Item
    parameters need a few hundred answers each; the root of a national platform has hundreds of
    millions, and its training time is on the critical path of the whole job (children wait)."""
    if max_attempts <= 0:
        return 1.0
    attempts = q.fetch_one(conn, "attempts_on_items", tenant=tenant, item_ids=item_ids)["attempts"]
    return 1.0 if attempts <= max_attempts else max_attempts / attempts


def load_practice_data(conn, tenant: str, unit_id: str, mode: str, max_attempts: int = 0) -> PracticeData:
    items = q.fetch_all(conn, "unit_items_for_training", tenant=tenant, unit_id=unit_id)
    item_ids = [i["item_id"] for i in items]
    share = learner_share(conn, tenant, item_ids, max_attempts)
    with conn.cursor() as cur:
        cur.execute(q.sql("first_attempts_on_items"), {"tenant": tenant, "item_ids": item_ids, "share": share})
        rows = cur.fetchall()
    conn.rollback()  # a long read: do not hold its snapshot while training
    user_col = np.array([r[0] for r in rows], dtype=object)
    item_pos = {item_id: i for i, item_id in enumerate(item_ids)}
    user_ids, users = np.unique(user_col, return_inverse=True) if len(rows) else (np.array([]), np.array([], int))
    data = PracticeData(
        user_ids=[str(u) for u in user_ids], item_ids=item_ids,
        users=users.astype(np.int32), items=np.array([item_pos[r[1]] for r in rows], dtype=np.int32),
        outcomes=np.array([r[2] for r in rows], dtype=np.int8), times=np.array([r[3] for r in rows], dtype=np.float64))
    data.item_features, data.user_features = hybrid_features(conn, tenant, items, data.user_ids, mode)
    data.item_skills, _ = skill_index(items)
    data.learner_share = share
    return data


def load_sequences(conn, tenant: str, data: PracticeData, user_ids: list[str]) -> PracticeData:
    """Every attempt (repeats included) of `user_ids` at the unit's items, in `data`'s index space."""
    with conn.cursor() as cur:
        cur.execute(q.sql("attempts_of_users_on_items"), {"tenant": tenant, "user_ids": list(user_ids),
                                                          "item_ids": data.item_ids})
        rows = cur.fetchall()
    conn.rollback()
    user_pos = {u: k for k, u in enumerate(data.user_ids)}
    item_pos = {item_id: i for i, item_id in enumerate(data.item_ids)}
    return PracticeData(data.user_ids, data.item_ids,
                        users=np.array([user_pos[r[0]] for r in rows], dtype=np.int32),
                        items=np.array([item_pos[r[1]] for r in rows], dtype=np.int32),
                        outcomes=np.array([r[2] for r in rows], dtype=np.int8), item_skills=data.item_skills,
                        times=np.array([r[3] for r in rows], dtype=np.float64))


@dataclass
class Trained:
    """A practice unit fitted (fit_unit) but not yet compared with its ancestors, stored or
    activated (finish_unit). Picklable: a pool worker fits a unit while the units above it still
    train, hands this back to the orchestrator, and a worker finishes it once they have."""
    unit_id: str
    mode: str
    data: PracticeData
    result: PracticeResult
    artifact: ModelArtifact
    counts: dict
    seconds: float          # fit_unit's

    @property
    def attempts(self) -> int:
        """Its size: the first attempts it holds (the orchestrator bounds how many it keeps)."""
        return len(self.data.outcomes)


def train_unit(conn, unit_id: str, mode: str, config: TrainConfig, state: JobState | None = None) -> UnitResult:
    """Train, store and (if sane, and not better served by an ancestor's) activate the unit's
    practice model. `state` carries this run's dev predictions of the units above (parents first)."""
    trained = fit_unit(conn, unit_id, mode, config)
    return trained if isinstance(trained, UnitResult) else finish_unit(conn, trained, config, state)


def fit_unit(conn, unit_id: str, mode: str, config: TrainConfig) -> Trained | UnitResult:
    """train_unit's first step, which needs nothing of the units above: read the unit's attempts,
    choose, calibrate and refit its model (most of a unit's time). A UnitResult when it trains
    nothing."""
    started = time.perf_counter()
    data = load_practice_data(conn, config.tenant, unit_id, mode, config.max_attempts)
    if len(data.outcomes) == 0:
        return UnitResult(UnitOutcome(unit_id, OBJECTIVE, "skipped", reason="no attempts under this unit"))
    roles = split.roles(data.user_ids, config.split_seed)
    if not (roles == split.TRAIN).any():
        return UnitResult(UnitOutcome(unit_id, OBJECTIVE, "skipped", reason=(
            f"none of its {len(data.user_ids)} learners is a training learner (all are dev or test learners)")))
    result = train_practice(data, max_trials=config.max_trials, time_budget_s=config.unit_time_budget_s,
                            seed=config.seed, threads=config.unit_threads, max_eval_users=config.max_eval_users,
                            split_seed=config.split_seed, hold_out_test=config.hold_out_test_learners,
                            dev_sequences=lambda users: load_sequences(conn, config.tenant, data, users))
    fitted, calibration = result.fitted, result.calibration
    prior = result.metadata_prior        # a new learner's prior from their metadata
    # the service's skill offsets and per-skill practice counts need each item's skill
    skills = data.item_skills is not None and (calibration.skill is not None or calibration.learning is not None)
    artifact = ModelArtifact(
        Embedding(data.item_ids, fitted.item_vectors, fitted.item_biases, fitted.prior_mean, fitted.prior_cov),
        calibration, skills=Skills(data.item_skills) if skills else None,
        metadata_prior=MetadataPrior(prior["tokens"], prior["shifts"]) if prior is not None else None,
        item_features=item_feature_table(fitted, data), item_attempts=trained_attempts(data, result.trained_users))
    counts = {"users": len(data.user_ids), "items": len(data.item_ids), "attempts": len(data.outcomes),
              "items_attempted": len(np.unique(data.items)), "trained_users": len(result.trained_users),
              "learner_share": round(data.learner_share, 6),
              **{f"{name}_users": int((roles == code).sum()) for code, name in enumerate(split.ROLE_NAMES)}}
    return Trained(unit_id, mode, data, result, artifact, counts, time.perf_counter() - started)


def trained_attempts(data: PracticeData, trained_users: np.ndarray) -> np.ndarray:
    """Each item's first attempts by the learners the model was fitted on: how well it knows the
    item, the prior of the difficulty the service learns between trainings (app.online.item_offsets)."""
    fitted_on = np.zeros(len(data.user_ids), dtype=bool)
    fitted_on[trained_users] = True
    return np.bincount(data.items[fitted_on[data.users]], minlength=len(data.item_ids))


def finish_unit(conn, trained: Trained, config: TrainConfig, state: JobState | None = None) -> UnitResult:
    """train_unit's second step, once this run's units above have finished: compare the fitted
    model with the nearest ancestor's (tonight's active one on test learners, for the record; the
    dev predictions in `state`, which decide who serves the unit), store it, activate it if sane."""
    started = time.perf_counter()
    unit_id, mode, artifact = trained.unit_id, trained.mode, trained.artifact
    data, result = trained.data, trained.result
    fitted = result.fitted
    parent = parent_comparison(conn, unit_id, config, data, result)
    if parent:
        result.metrics["parent"] = parent
    ancestor = ancestor_on_dev(conn, config.tenant, unit_id, state, data, result)
    if ancestor:
        result.metrics["ancestor_dev"] = ancestor
    with conn:
        model_id = modelstore.save_model(conn, config.tenant, artifact, modelstore.ModelMeta(
            unit_id, OBJECTIVE, mode, config.tag,
            hyperparams={**result.params.__dict__, "search": result.search, "seed": config.seed,
                         "split_seed": config.split_seed, "hold_out_test_learners": config.hold_out_test_learners},
            metrics=result.metrics, data_counts=trained.counts, training_seconds=result.seconds))
    if config.prefer_parent and ancestor and not ancestor["own_serves"]:
        # This unit's model does not predict its dev learners clearly better than the unit above's
        # (which learned from more data): serve that one here.
        reason = ancestor_reason(ancestor)
        with conn:
            modelstore.mark_failed(conn, model_id, reason)
            q.execute(conn, "retire_active_model", tenant=config.tenant, unit_id=unit_id, objective=OBJECTIVE,
                      tag=config.tag)
        outcome = UnitOutcome(unit_id, OBJECTIVE, "parent_serves", model_id, result.metrics, reason)
        if state is not None:
            state.dev_predictions[unit_id] = state.dev_predictions[ancestor["unit_id"]]
    else:
        outcome = activate_if_sane(conn, UnitOutcome(unit_id, OBJECTIVE, "stored", model_id, result.metrics), config)
        if state is not None and outcome.status == "activated" and result.dev is not None:
            state.dev_predictions[unit_id] = dict(zip(dev_keys(data, result), result.dev.p.tolist()))
    outcome.seconds = trained.seconds + time.perf_counter() - started
    users = result.trained_users
    return UnitResult(outcome, artifact, user_ids=[data.user_ids[u] for u in users],
                      user_vectors=fitted.user_vectors[users], user_biases=fitted.user_biases[users],
                      counts=trained.counts, test_user_ids=[data.user_ids[u] for u in result.test_users])


def parent_comparison(conn, unit_id: str, config: TrainConfig, data: PracticeData, result: PracticeResult
                      ) -> dict | None:
    """Held-out AUC of the active model of the nearest unit above, on this unit's test learners.

    Honest when both models hold the split's test learners out: roles follow the learner id, so
    this unit's test learners are the parent's test learners too, and neither model trained on
    them (the child's figure, metrics["model"], comes from a fit on its train learners alone).
    `held_out_from_both` says whether that holds (same split seed, the parent stored with its test
    learners held out); the parent may take over a unit (prefer_parent) only when it does.
    """
    row = q.fetch_one(conn, "nearest_ancestor_active_model", tenant=config.tenant, unit_id=unit_id,
                      objective=OBJECTIVE, tag=config.tag)
    conn.rollback()
    if row is None or result.test_users is None or not len(result.test_users):
        return None
    users = result.test_users
    if (split.roles([data.user_ids[u] for u in users], config.split_seed) != split.TEST).any():
        raise AssertionError("the parent comparison must use test learners of the split only")
    other = modelstore.load_model(conn, config.tenant, row["model_id"])
    summary = modelstore.active_model_summary(conn, config.tenant, row["unit_id"], OBJECTIVE, config.tag) or {}
    conn.rollback()
    hyper = (summary.get("hyperparams") or {}) if summary.get("model_id") == row["model_id"] else {}
    held_out = hyper.get("split_seed") == config.split_seed and hyper.get("hold_out_test_learners") is True
    e = other.artifact.embedding
    auc = replay_auc(e.item_ids, e.item_vectors, e.item_biases, e.prior_mean, e.prior_cov, data, users)
    if math.isnan(auc):
        return None
    return {"unit_id": row["unit_id"], "model_id": row["model_id"], "auc": auc,
            "learners": len(users), "attempts": int(np.isin(data.users, users).sum()),
            "split_seed": config.split_seed, "held_out_from_both": bool(held_out)}


def dev_keys(data: PracticeData, result: PracticeResult) -> list[tuple[str, str]]:
    """(learner id, item id) of each of the chosen model's dev predictions: how units share them."""
    return [(data.user_ids[u], data.item_ids[i]) for u, i in zip(result.dev.users.tolist(), result.dev.items.tolist())]


def ancestor_on_dev(conn, tenant: str, unit_id: str, state: JobState | None, data: PracticeData, result: PracticeResult
                    ) -> dict | None:
    """This unit's chosen model against the model that serves its nearest ancestor, on the dev
    attempts both predicted in this run (fits on train learners only, calibrated on dev): the
    comparison that decides who serves the unit. The ancestor's p came from its own replay, with
    the learner's whole history under it, as it would answer a request for this unit. Fewer than
    MIN_DEV_ATTEMPTS in common decide nothing in the unit's favour: its own model must show it
    is better, so then the ancestor serves (`own_serves` False, `too_few` True)."""
    if state is None:
        return None
    above = [r["unit_id"] for r in sorted(q.fetch_all(conn, "units_above_unit", tenant=tenant, unit_id=unit_id),
                                          key=lambda r: r["depth"]) if r["depth"] > 0]
    conn.rollback()
    nearest = next((u for u in above if u in state.dev_predictions), None)
    if nearest is None:
        return None
    theirs = state.dev_predictions[nearest]
    has_dev = result.dev is not None and len(result.dev.p) > 0
    ancestor_p = np.array([theirs.get(key, np.nan) for key in dev_keys(data, result)]) if has_dev else np.empty(0)
    both = np.flatnonzero(~np.isnan(ancestor_p))    # the dev attempts the ancestor predicted too
    if len(both) < MIN_DEV_ATTEMPTS:
        return {"unit_id": nearest, "attempts": len(both), "too_few": True, "own_serves": False}
    own, y, ancestor_p = result.dev.p[both], result.dev.y[both], ancestor_p[both]
    mine, other = probability_metrics(y, own), probability_metrics(y, ancestor_p)
    difference, se = paired_logloss_difference(y, own, ancestor_p, result.dev.users[both])
    return {"unit_id": nearest, "attempts": len(both), "learners": len(np.unique(result.dev.users[both])),
            "logloss": other["logloss"], "auc": other["auc"],
            "own_logloss": mine["logloss"], "own_auc": mine["auc"],
            "difference": difference, "se": se, "own_serves": bool(difference + 2 * se < 0)}


def ancestor_reason(ancestor: dict) -> str:
    """Why the ancestor serves a unit, for the model's status and the job's report."""
    if ancestor.get("too_few"):
        return (f"only {ancestor['attempts']} of this unit's dev attempts were predicted by the model of "
                f"{ancestor['unit_id']!r} too, fewer than {MIN_DEV_ATTEMPTS}: too few to prefer its own model; "
                "that one serves this unit")
    return (f"its own model does not predict this unit's dev learners significantly better than the model of "
            f"{ancestor['unit_id']!r} (log-loss {ancestor['own_logloss']:.4f} vs {ancestor['logloss']:.4f} on "
            f"{ancestor['attempts']} attempts, difference {ancestor['difference']:+.4f} ± {2 * ancestor['se']:.4f}); "
            "that one serves this unit")


def paired_logloss_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, learners: np.ndarray
                              ) -> tuple[float, float]:
    """Mean per-attempt log-loss of a minus b on the same attempts, and its standard error with
    attempts clustered by learner (one learner's attempts are not independent). A unit's own model
    serves only when it is better by two standard errors: with a few dev learners, a difference
    in the noise would hand the unit to the model fitted on less data."""
    y = np.asarray(y, dtype=np.float64)

    def loss(p):
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    d = loss(p_a) - loss(p_b)
    _, codes = np.unique(learners, return_inverse=True)
    sums, counts = np.bincount(codes, d), np.bincount(codes)
    n, clusters, mean = len(d), len(sums), float(d.mean())
    if clusters < 2:
        return mean, float("inf")
    se = math.sqrt(clusters / (clusters - 1) * float(np.sum((sums - mean * counts) ** 2))) / n
    return mean, se

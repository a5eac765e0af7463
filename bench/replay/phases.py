"""bench.replay's measuring: the baselines on the replayed attempts, the service trained once and
every role replayed through it and scored, and the full retrain on first halves beside it."""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from app.access.tenants import DEFAULT
from bench.attempts import COLUMNS, second_half_mask
from bench.baselines import baseline_predictions
from bench.compare import ROLES, bootstrap_difference, metrics, reliability_rows, slice_table
from bench.knowledge_tracing_baselines import kt_predictions
from bench.replay.service import first_half_live_fits, full_retrain_predictions, knowledge_requests, replay_service
from bench.replay.setup import ROOT, Plan
from bench.replay.training import import_and_train, root_practice_result


def service_vs_baselines(frame: pd.DataFrame, p_service: np.ndarray, p_base: dict[str, np.ndarray],
                         best: str) -> dict:
    """The service minus Elo (tuned), the live 1PL, Best-LR and PFA, and minus `best` (the baseline
    with the lowest dev log-loss), with 95 % learner-bootstrap intervals."""
    out = {}
    for name in dict.fromkeys(("elo_tuned", "irt_live", "best_lr", "pfa", best)):
        if name in p_base:
            out[f"service - {name}"] = bootstrap_difference(frame, p_service, p_base[name])
    return out


KNOWLEDGE_TARGET_ECE = 0.02     # issue 26: the knowledge p of a skill against the next first attempts, test learners
SKILL_ATTEMPT_BANDS = ((0, 1), (1, 10), (10, 50), (50, math.inf))


def _with_means(y: np.ndarray, p: np.ndarray) -> dict:
    out = metrics(y, p)
    if len(y):
        out["mean_p"] = round(float(np.mean(p)), 4)
        out["mean_outcome"] = round(float(np.mean(y)), 4)
    return out


def knowledge_calibration(y: np.ndarray, p_item: np.ndarray, known: pd.DataFrame) -> dict:
    """The knowledge p of a skill, asked before a learner's first attempt at an item of it, against
    that attempt's outcome. `y`, `p_item`: the replayed attempts' outcomes and the service's own
    p of the item attempted (the root request); `known`: bench.replay.service's knowledge rows
    (row, unit, rank, p, attempts), a unit without a p left out.

    `every_skill`: one pair per (attempt, skill of its item); `first_skill`: the item's first
    skill only (one pair per attempt); `item_level_same_attempts`: the item's own p on the
    attempts of the pairs (each attempt once), the context the skill's p is read
    against; `by_skill_attempts`: every_skill by the learner's attempts at the skill's items
    before (0: a skill never practised, answered from the rest of the history)."""
    known = known[~np.isnan(known.p.to_numpy())]
    rows, pk = known.row.to_numpy(dtype=np.int64), known.p.to_numpy(dtype=np.float64)
    y = np.asarray(y)
    first = known["rank"].to_numpy() == 0
    attempted = np.unique(rows)
    out = {"every_skill": _with_means(y[rows], pk), "first_skill": _with_means(y[rows[first]], pk[first]),
           "item_level_same_attempts": _with_means(y[attempted], np.asarray(p_item)[attempted]),
           "attempts": int(len(attempted))}
    before = known.attempts.to_numpy()
    out["by_skill_attempts"] = {
        (f"{lo}+" if math.isinf(hi) else str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"):
            _with_means(y[rows[(before >= lo) & (before < hi)]], pk[(before >= lo) & (before < hi)])
        for lo, hi in SKILL_ATTEMPT_BANDS}
    out["reliability"] = reliability_rows(y[rows], pk)
    return out


def measure_baselines(plan: Plan, result: dict, blocks: dict) -> tuple[dict, str]:
    """Every baseline's p on each role's replayed attempts (no servers) and its metrics in `blocks`;
    returns (p by role and baseline, the baseline with the lowest dev log-loss)."""
    t0 = time.perf_counter()
    item_codes = {p: k for k, p in enumerate(sorted(plan.skills_of))}
    user_codes = {u: k for k, u in enumerate(plan.df.user_id.unique())}
    p_base, result["baseline_constants"] = baseline_predictions(plan.train_df, plan.frames, item_codes, user_codes)
    p_kt, result["baseline_constants"]["knowledge_tracing"] = kt_predictions(plan.train_df, plan.frames,
                                                                             plan.skills_of, "dev")
    for role in ROLES:
        p_base[role] |= p_kt[role]
    for role in ROLES:
        y = plan.rows[role].correct.to_numpy()
        blocks[role]["baselines"] = {name: metrics(y, p) for name, p in p_base[role].items()}
        plan.log(f"baselines ({role}): {json.dumps(blocks[role]['baselines'])}")
    learned = [m for m in p_base["dev"] if m != "truth"]
    best = min(learned, key=lambda m: blocks["dev"]["baselines"][m].get("logloss", math.inf))
    result["best_baseline_on_dev"] = best
    result["baseline_seconds"] = round(time.perf_counter() - t0, 1)
    return p_base, best


def measure_service(plan: Plan, result: dict, blocks: dict, p_base: dict, best: str, predictions: Path | None) -> None:
    """The service trained once, each role replayed and scored, the predictions written if asked,
    then the full retrain (learner protocol)."""
    import tempfile

    from app.config import Settings
    from cli.embedded import servers_for

    with servers_for(Settings.from_env()) as settings, tempfile.TemporaryDirectory(prefix="adaptrec-replay-") as tmp:
        workdir = Path(tmp)
        p_service, p_skill, old_model = replay_roles(plan, settings, workdir, result, blocks)
        for role in ROLES:
            score_role(plan, role, blocks[role], p_service[role], p_skill[role], p_base[role], best)
            if role in plan.known:
                found = blocks[role]["knowledge"] = knowledge_calibration(plan.rows[role].correct.to_numpy(),
                                                                          p_service[role], plan.known[role])
                shown = {k: found[k] for k in ("every_skill", "first_skill", "item_level_same_attempts")}
                plan.log(f"knowledge ({role}): {json.dumps(shown)}")
        if predictions is not None:
            rows = plan.rows
            pd.concat([rows[r][[*COLUMNS, "pos"]].assign(
                role=r, service=p_service[r], **({"service_skill": p_skill[r]} if p_skill[r] is not None else {}),
                **p_base[r]) for r in ROLES], ignore_index=True).to_csv(predictions, index=False, float_format="%.6f")
        second = {r: second_half_mask(plan.rows[r].pos.to_numpy(), plan.rows[r].n.to_numpy()) for r in ROLES}
        if plan.retrain and any(m.any() for m in second.values()):
            full_retrain(plan, settings, workdir, result, blocks, p_service, old_model, second)


def replay_roles(plan: Plan, settings, workdir: Path, result: dict, blocks: dict) -> tuple[dict, dict, object]:
    """The service: trained once, each role replayed through it (a role's attempts touch only its own
    learners' histories, so the order of the roles does not matter); its Redis keys deleted after.
    Returns (p by role, skill requests' p by role, the root's model as served)."""
    from app.infra.cache import Cache
    from app.serving.model_cache import ModelCache
    from harness.databases import connected_scratch_database, delete_keys

    p_service: dict[str, np.ndarray] = {}
    p_skill: dict[str, np.ndarray | None] = {}
    with connected_scratch_database(settings.database_url) as (url, conn):
        plan.log("importing the training rows and training every model unit ...")
        result["training"] = import_and_train(url, conn, plan.train_df, plan.skills_of, plan.config,
                                              None if plan.train_all_units else [ROOT], workdir, "train")
        plan.log(f"training: {json.dumps(result['training'])}")
        prefix = f"adaptrec-replay-{uuid.uuid4().hex[:10]}:"
        cache = Cache(settings.redis_url, prefix=prefix)
        models = ModelCache(plan.item_learning)
        try:
            for role in ROLES:
                asked = knowledge_requests(plan.rows[role], plan.skills_of) if plan.knowledge else None
                p_service[role], p_skill[role], blocks[role]["replay"], known = replay_service(
                    conn, cache, models, plan.rows[role], plan.skill_of, plan.progress, asked)
                if known is not None:
                    plan.known[role] = known
            with conn:
                old_model = models.nearest(conn, DEFAULT, [ROOT], "practice")
        finally:
            result["redis_keys_deleted"] = delete_keys(cache.client, prefix)
            cache.close()
    return p_service, p_skill, old_model


def score_role(plan: Plan, role: str, block: dict, p: np.ndarray, p_skill: np.ndarray | None, p_base: dict,
               best: str) -> None:
    """One role's service figures: overall, its skill requests, slices beside the baselines,
    reliability, and the service minus the baselines."""
    frame = plan.rows[role]
    y = frame.correct.to_numpy()
    block["service"] = metrics(y, p)
    methods = {"service": p}
    if p_skill is not None:
        has = ~np.isnan(p_skill)
        block["service_skill_requests"] = metrics(y[has], p_skill[has])
        methods["service_skill_requests"] = p_skill
    block["slices"] = slice_table(frame, methods | p_base)
    block["service_reliability"] = reliability_rows(y, p)
    block["service_vs_baselines"] = service_vs_baselines(frame, p, p_base, best)
    plan.log(f"service ({role}): {json.dumps(block['service'])} {json.dumps(block['replay'])}")


def full_retrain(plan: Plan, settings, workdir: Path, result: dict, blocks: dict, p_service: dict, old_model,
                 second: dict) -> None:
    """The root retrained on the training learners + the dev and test learners' first halves, its
    predictions for the second halves beside the replay's and two live fits from first halves only."""
    from app.serving.model_cache import ModelCache
    from harness.databases import connected_scratch_database

    rows = plan.rows
    half_rows = pd.concat([f[(f.n >= 2) & (f.pos < f.n // 2)][COLUMNS] for f in rows.values()])
    retrained: dict = {}
    # Here the job must train the replayed learners (it holds out its own test learners otherwise).
    retrain_config = replace(plan.config, hold_out_test_learners=False)
    with connected_scratch_database(settings.database_url) as (url, conn):
        plan.log("full retrain: training learners + dev and test learners' first halves (root unit) ...")
        info = import_and_train(url, conn, pd.concat([plan.train_df, half_rows], ignore_index=True), plan.skills_of,
                                retrain_config, [ROOT], workdir, "retrain", on_result=root_practice_result(retrained))
        with conn:
            new_model = ModelCache().nearest(conn, DEFAULT, [ROOT], "practice")
    for role in ROLES:
        frame, sec = rows[role], second[role]
        if not sec.any():
            continue
        ys, halves = frame.correct.to_numpy()[sec], frame[sec]
        p_retrain = full_retrain_predictions(retrained["root"], new_model, halves.user_id.tolist(),
                                             halves.problem_id.tolist())
        blocks[role]["full_retrain"] = {
            "retrain": metrics(ys, p_retrain),
            "service_same_attempts": metrics(ys, p_service[role][sec]),
            "service_first_half_only": metrics(ys, first_half_live_fits(old_model, frame, sec)),
            "retrained_items_live_fit_first_half": metrics(ys, first_half_live_fits(new_model, frame, sec)),
        }
        plan.log(f"full_retrain ({role}): {json.dumps(blocks[role]['full_retrain'])}")
    info.pop("parent_comparison", None)     # only the root was retrained
    result["full_retrain_training"] = info

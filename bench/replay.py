"""Replay benchmark: next-attempt prediction as a platform lives it, beside simple baselines.

    python -m bench.replay [--data PATH] [--regime all|250-learners|300-attempts|demo-few-learners|
                           demo-many-learners] [--protocol learner|production] [--json OUT]
                           [--max-test-students N] [--predictions OUT.csv.gz] [--root-only]
                           [--no-retrain] [--no-skill-requests]

Every figure is given for dev and for test learners side by side. Learners take their role from
the training job's own split (jobs.training.split, seed SPLIT_SEED: sha256(f"{seed}:{user_id}")
as a number in [0, 1), below 0.8 train, below 0.9 dev, else test). Anything chosen (windows,
constants, model choice, Elo's constants here) is chosen on dev; test is reported beside it and
never tuned on. `--max-test-students N` replays the first N dev and N test learners (key order).

Data (bench.attempts): an ASSISTments-format attempts file (`user_id, seq, problem_id, correct,
skills`), or a regime of it, or a demo-generator regime written in the same format.

Protocols:
- `learner` (default): the training learners' attempts are imported by the real importer and the
  real nightly job trains every model unit on them; dev and test learners are new to the service,
  and all their attempts are replayed.
- `production`: the service as it runs: a cut in time (bench.attempts.production_cut: a seeded
  20 % of learners join after it, every other learner's sequence is cut at its half). Every
  attempt before the cut, of every learner, is imported and trained on (the job's hold-out of its
  own test learners off: the nightly job trains the learners it serves tomorrow); every dev and
  test attempt after the cut is replayed, returning learners (history before the cut, trained on)
  and new learners reported apart. No full-retrain comparison (this protocol is that).

In both, the catalogue of the whole file (every problem with its skills, every skill unit under
the root) is staged by the importer's catalogue code, so problems only replayed learners attempt
exist as items, as a platform's catalogue would. The job is `run_training(url,
TrainConfig.from_env())` with its own split seed JOB_SPLIT_SEED, so it splits the learners it is
given again for its grid, calibration and own held-out figures. Each replayed attempt, in seq
order, goes through the functions behind the API: `predict(conn, cache, models, user, [ROOT],
[item])` (a root request) and, unless --no-skill-requests, `predict(..., [skill unit of the item],
[item])` (a skill request, served by that skill's model or its nearest ancestor's, as the product
serves it), both before the outcome is known; then `record_interactions` (the API's ingest: one
transaction, then the history cache). Real Postgres and Redis (a key prefix of its own, deleted at
the end), a fresh `ModelCache`. All attempts count, repeated ones included.

Baselines on the same attempts (bench.baselines): item difficulty, Elo with fixed constants, Elo
with constants tuned on dev, a live 1PL; Best-LR and PFA (bench.knowledge_tracing_baselines:
logistic regressions on counts of the learner's earlier attempts per skill / item / in total,
fitted on the training rows, L2 chosen on dev); `truth` where the data has the true probability.
Metrics (AUC, log-loss, accuracy, ECE over 10 bins) for every method, overall and on slices (first
attempt at an item, repeat after a mistake / a success, history-length bands, returning / new
learners, items with fewer than FEW_ATTEMPTS attempts in the rows trained on), the service minus
Elo (tuned), the live 1PL, Best-LR, PFA and the best baseline on dev with 95 % learner-bootstrap
intervals, and the honest parent comparison of the job (each skill model against its parent's, on
learners neither trained on). The training block says which units the job did not activate and
why: `models_failed` (failed / kept_previous), `units_served_by_ancestor`, `units_skipped`.

`full_retrain` (learner protocol): a second scratch database with the training learners plus each
dev and test learner's first floor(n / 2) attempts, the root trained again (hold-out off, so every
replayed learner is trained on); its predictions for the second halves use those learners'
trained LightFM user vectors with the stored item vectors and calibration, beside the replay's
own predictions and two like-for-like live fits from the first half only.

Report: `dev` and `test` blocks (service, service_skill_requests, baselines, slices,
service_reliability, service_vs_baselines, replay timing, full_retrain) and `dev_test_table`. The
test block's keys are also at the top level (the held-out learners' figures, as earlier reports
had them). `targets` are judged on test.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from app.access.tenants import DEFAULT
from app.config import PROJECT_ROOT
from bench.attempts import (
    COLUMNS,
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
    second_half_mask,
    skills_by_problem,
    with_training_counts,
    write_attempts,
)
from bench.baselines import baseline_predictions
from bench.compare import (
    ROLES,
    bootstrap_difference,
    dev_test_table,
    format_table,
    metrics,
    reliability_rows,
    slice_table,
)
from bench.knowledge_tracing_baselines import kt_predictions
from bench.report import emit
from jobs.training import split

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"
ROOT = "assistments"
SPLIT_SEED = split.SEED          # learners' roles: the training job's own split of learners
# The job run here is given only rows it may train on; it splits their learners again (for its
# grid, calibration and own held-out figures) with this seed.
JOB_SPLIT_SEED = SPLIT_SEED + 1
PROTOCOLS = ("learner", "production")
START = datetime(2009, 9, 1, tzinfo=UTC)   # the importer's clock: START + seq minutes

TARGETS = {"auc": 0.83, "ece": 0.01}
PUBLISHED_AUC = {"IRT": "0.69-0.73", "BKT": 0.72, "DKT": "0.75-0.76", "AKT": 0.785, "KTM": 0.819}


def attempt_time(seq: int) -> datetime:
    return START + timedelta(minutes=int(seq))


def import_catalogue(conn, skills_of: dict[str, list[str]]) -> dict:
    """Stage the catalogue (no attempts) with the importer's own code and merge it."""
    from jobs.importers import assistments
    from jobs.importers.common import Loader

    with conn:
        loader = Loader(conn, tenant=DEFAULT)
        assistments._stage_catalogue(loader, skills_of, "")
        return loader.finish()


def import_and_train(url: str, conn, rows: pd.DataFrame, skills_of: dict[str, list[str]], config,
                     units: list[str] | None, workdir: Path, name: str, on_result=None) -> dict:
    """Import `rows` through the real importer, add the whole catalogue, run the training job
    (`on_result` goes to run_training: it receives each unit's fitted arrays)."""
    from jobs.importers import run_import
    from jobs.train import run_training

    path = workdir / f"{name}.csv.gz"
    write_attempts(rows, path)
    t0 = time.perf_counter()
    reports = run_import(conn, "assistments", [path], progress=False)
    catalogue = import_catalogue(conn, skills_of)
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = run_training(url, config, units=units, progress=False, on_result=on_result)
    train_s = time.perf_counter() - t0
    if report.locked_out:
        raise RuntimeError("another training job holds the lock on the scratch database")
    root = next((o for o in report.outcomes if o.unit_id == ROOT and o.objective == "practice"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"the root model was not activated: {root and (root.status, root.reason)}")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.hyperparams, a.calibration FROM models m JOIN model_arrays a USING (model_id) "
                    "WHERE m.model_id = %s", (root.model_id,))
        hyperparams, calibration = cur.fetchone()
    search = hyperparams.pop("search", [])
    return {"rows_imported": reports[0].rows_read, "items_added_by_catalogue": catalogue.get("items", 0),
            "import_seconds": round(import_s, 2), "train_seconds": round(train_s, 2),
            "models_activated": sum(o.status == "activated" for o in report.outcomes),
            **unit_outcomes(report.outcomes),
            "root_model_id": root.model_id,
            "root_hyperparams": hyperparams, "root_calibration": calibration,
            "root_search": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()} for t in search],
            "root_job_metrics": {k: round(root.metrics["model"][k], 4) for k in ("auc", "ece")}
            | {"baseline_auc": round(root.metrics["baseline"]["auc"], 4)},
            "parent_comparison": parent_summary(report.outcomes)}


def unit_outcomes(outcomes) -> dict:
    """The units the job did not activate, by why (jobs.training.job.UnitOutcome.status):
    `models_failed` (failed: an error; kept_previous: the new model failed the sanity rule against
    the active one), `units_served_by_ancestor` (parent_serves: trained, but its ancestor's model
    predicts its dev learners as well, so that one serves it, by choice), `units_skipped` (no
    model trained: no attempts, or no training learner, under the unit)."""
    def of(*statuses):
        return [o.unit_id for o in outcomes if o.status in statuses]
    return {"models_failed": [{"unit_id": o.unit_id, "objective": o.objective, "status": o.status, "reason": o.reason}
                              for o in outcomes if o.status in ("failed", "kept_previous")],
            "units_served_by_ancestor": of("parent_serves"), "units_skipped": of("skipped")}


def parent_summary(outcomes) -> dict:
    """The job's parent comparison over every practice model below the root: its own held-out
    AUC against its parent's on the same learners (honest when neither trained on them)."""
    rows = []
    for o in outcomes:
        parent = (o.metrics or {}).get("parent") if o.objective == "practice" else None
        own = ((o.metrics or {}).get("model") or {}).get("auc")
        if parent and own is not None and math.isfinite(own):
            rows.append((o.unit_id, own, parent["auc"], parent["attempts"], parent["held_out_from_both"]))
    if not rows:
        return {"units_compared": 0}
    own, par, attempts = (np.array([r[k] for r in rows], dtype=np.float64) for k in (1, 2, 3))
    diff = own - par
    return {"units_compared": len(rows), "held_out_from_both": int(sum(r[4] for r in rows)),
            "child_better": int((diff > 0).sum()), "parent_better": int((diff < 0).sum()),
            "median_auc_child_minus_parent": round(float(np.median(diff)), 4),
            "attempt_weighted_auc": {"child": round(float(np.average(own, weights=attempts)), 4),
                                     "parent": round(float(np.average(par, weights=attempts)), 4)},
            "attempts_compared": int(attempts.sum())}


def replay_service(conn, cache, models, test: pd.DataFrame, skill_of: dict[str, str] | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """p of every replayed attempt, predicted before it is ingested, through predict + ingest: a
    root request, and (given `skill_of`: item -> its skill's unit) a skill request (NaN for an
    item without a skill)."""
    from app.catalogue.ingest import record_interactions
    from app.catalogue.records import Interaction
    from app.serving.recommend import predict

    users, items = test.user_id.tolist(), test.problem_id.tolist()
    seqs, ys = test.seq.tolist(), test.correct.tolist()
    p = np.empty(len(test))
    predict_s = np.empty(len(test))
    ingest_s = np.empty(len(test))
    fallbacks: dict[str, int] = {}
    history_rows = np.empty(len(test), dtype=np.int64)
    p_skill = None if skill_of is None else np.full(len(test), np.nan)
    served = {"own": 0, "ancestor": 0, "none": 0}    # which model answered each skill request
    t_report = time.perf_counter()
    for k in range(len(test)):
        t0 = time.perf_counter()
        with conn:
            answer = predict(conn, DEFAULT, cache, models, users[k], [ROOT], [items[k]], now=attempt_time(seqs[k]))
        t1 = time.perf_counter()
        p[k] = answer["items"][0]["p"]
        history_rows[k] = answer["history_rows"]
        if answer["fallback"]:
            fallbacks[answer["fallback"]] = fallbacks.get(answer["fallback"], 0) + 1
        if p_skill is not None:
            unit = skill_of.get(items[k])
            if unit is not None:
                with conn:
                    answer = predict(conn, DEFAULT, cache, models, users[k], [unit], [items[k]],
                                     now=attempt_time(seqs[k]))
                p_skill[k] = answer["items"][0]["p"]
                model = answer["model"]
                served["none" if model is None else "own" if model["unit_id"] == unit else "ancestor"] += 1
        event = Interaction(event_id=f"assist:{users[k]}:{seqs[k]}", user_id=users[k], item_id=items[k],
                            kind="attempt", outcome=ys[k], occurred_at=attempt_time(seqs[k]))
        record_interactions(conn, DEFAULT, cache, [event])
        t2 = time.perf_counter()
        predict_s[k], ingest_s[k] = t1 - t0, t2 - t1
        if progress and t2 - t_report > 15:
            t_report = t2
            print(f"replay: {k + 1}/{len(test)} attempts, {np.mean(predict_s[:k + 1]) * 1e3:.2f} ms predict, "
                  f"{np.mean(ingest_s[:k + 1]) * 1e3:.2f} ms ingest", file=sys.stderr)
    timing = {"attempts": len(test), "seconds": round(float(predict_s.sum() + ingest_s.sum()), 1),
              "predict_ms": _ms(predict_s), "ingest_ms": _ms(ingest_s),
              "history_rows_mean": round(float(history_rows.mean()), 1) if len(test) else None,
              "fallbacks": fallbacks}
    if p_skill is not None:    # predict_ms then times both requests
        timing["skill_requests"] = {"served_by_the_skills_own_model": served["own"],
                                    "served_by_an_ancestors_model": served["ancestor"], "no_model": served["none"],
                                    "item_without_a_skill": int(np.isnan(p_skill).sum())}
    return p, p_skill, timing


def _ms(seconds: np.ndarray) -> dict:
    if not len(seconds):
        return {}
    return {"mean": round(float(seconds.mean() * 1e3), 2), "p50": round(float(np.percentile(seconds, 50) * 1e3), 2),
            "p99": round(float(np.percentile(seconds, 99) * 1e3), 2)}


def live_fit_from(model, history: list[tuple[str, int]], items: list[str], at: datetime) -> np.ndarray:
    """p of `items` from the product's scoring path (score_candidates) given a fixed history of
    (item, outcome) oldest first: the live fit without the database and Redis around it."""
    from app.catalogue import history as hist
    from app.serving.recommend import score_candidates

    events = [hist.Event(i, "attempt", int(o), None, at) for i, o in reversed(history)]  # newest first
    return score_candidates(model, items, events, None, DEFAULT, practice=True)[0]


def root_practice_result(into: dict):
    """An on_result for run_training that keeps the root's practice UnitResult in `into["root"]`:
    the job stores only item vectors, and a full retrain predicts with the users' own."""
    def keep(result) -> None:
        if result.outcome.unit_id == ROOT and result.outcome.objective == "practice":
            into["root"] = result
    return keep


def full_retrain_predictions(trained, model, users: list[str], items: list[str]) -> np.ndarray:
    """Calibrated p from the retrained users' own LightFM vectors (`trained`: the root's practice
    UnitResult, its final refit on all rows) and the stored items."""
    from app.online.scoring import calibrated

    user_biases, user_vectors = trained.user_biases, trained.user_vectors
    row_of = {u: k for k, u in enumerate(trained.user_ids)}
    u_rows = np.array([row_of[u] for u in users])
    i_rows = model.rows(items)
    if (i_rows < 0).any():
        raise RuntimeError("an item of the second halves is not in the retrained model")
    raw = np.einsum("ij,ij->i", user_vectors[u_rows].astype(np.float64), model.item_vectors[i_rows]) \
        + user_biases[u_rows] + model.item_biases[i_rows]
    return calibrated(model.calibration, raw)


def first_half_live_fits(model, test: pd.DataFrame, second: np.ndarray) -> np.ndarray:
    """For each second-half attempt: the live fit of `model` from the student's first half only."""
    out = np.empty(int(second.sum()))
    k = 0
    for _, rows in test.groupby("user_id", sort=False):
        n = len(rows)
        if n < 2:
            continue
        half = n // 2
        history = list(zip(rows.problem_id.iloc[:half], rows.correct.iloc[:half]))
        wanted = rows.problem_id.iloc[half:].tolist()
        out[k:k + len(wanted)] = live_fit_from(model, history, wanted, attempt_time(rows.seq.iloc[half - 1]))
        k += len(wanted)
    return out


def delete_prefix(cache, prefix: str) -> int:
    n = 0
    batch = []
    for key in cache.client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            n += cache.client.delete(*batch)
            batch = []
    if batch:
        n += cache.client.delete(*batch)
    return n


# ---- the run ----------------------------------------------------------------------------------
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


def service_vs_baselines(frame: pd.DataFrame, p_service: np.ndarray, p_base: dict[str, np.ndarray],
                         best: str) -> dict:
    """The service minus Elo (tuned), the live 1PL, Best-LR and PFA, and minus `best` (the baseline
    with the lowest dev log-loss), with 95 % learner-bootstrap intervals."""
    out = {}
    for name in dict.fromkeys(("elo_tuned", "irt_live", "best_lr", "pfa", best)):
        if name in p_base:
            out[f"service - {name}"] = bootstrap_difference(frame, p_service, p_base[name])
    return out


def run(data: Path | None, max_test_students: int | None = None, retrain: bool = True, progress: bool = False,
        train_all_units: bool = True, predictions: Path | None = None, regime: str = "all",
        protocol: str = "learner", skill_requests: bool = True) -> dict:
    from app.config import Settings
    from app.embedded import servers_for
    from app.infra.cache import Cache
    from app.model.cache import ModelCache
    from harness.databases import connected_scratch_database
    from jobs.train import TrainConfig

    started = time.perf_counter()
    the_regime = REGIMES[regime]
    df = annotate(regime_attempts(the_regime, data))
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

    result: dict = {"data": "demo generator" if the_regime.demo else str(data), "regime": regime,
                    "regime_description": the_regime.description, "protocol": protocol,
                    "data_shape": describe(df), "date": date.today().isoformat(),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                    "split": {"seed": SPLIT_SEED, "job_split_seed": JOB_SPLIT_SEED,
                              "train_students": len(ids["train"]), "train_attempts": len(train_df)}
                    | {f"{r}_{k}": v for r in ROLES for k, v in (("students", len(replayed_ids[r])),
                                                                 ("students_in_split", len(ids[r])),
                                                                 ("attempts", len(rows[r])))},
                    "config": {"mode": config.mode, "max_trials": config.max_trials, "threads": config.threads,
                               "hold_out_test_learners": config.hold_out_test_learners,
                               "units_trained": "all model units" if train_all_units else [ROOT],
                               "predicting_unit": ROOT, "skill_requests": skill_of is not None},
                    "few_attempts_slice": {"name": few_attempts_slice(), "threshold": FEW_ATTEMPTS,
                                           "counted_in": "the rows the models were trained on (train_attempts)"}}
    if protocol == "production":
        result["production_cut"] = {"new_fraction": NEW_FRACTION, "new_seed": NEW_SEED,
                                    "cut_quantile": CUT_QUANTILE} | {
            f"{r}_{kind}_{what}": int(v) for r in ROLES for kind, sel in (("returning", True), ("new", False))
            for what, v in (("learners", rows[r][rows[r].returning == sel].user_id.nunique()),
                            ("attempts", (rows[r].returning == sel).sum()))}
    if the_regime.learners:
        result["regime_seed"] = REGIME_SEED
    blocks: dict[str, dict] = {role: {} for role in ROLES}

    # -- baselines (no servers) --
    t0 = time.perf_counter()
    item_codes = {p: k for k, p in enumerate(sorted(skills_of))}
    user_codes = {u: k for k, u in enumerate(df.user_id.unique())}
    p_base, result["baseline_constants"] = baseline_predictions(train_df, frames, item_codes, user_codes)
    p_kt, result["baseline_constants"]["knowledge_tracing"] = kt_predictions(train_df, frames, skills_of, "dev")
    for role in ROLES:
        p_base[role] |= p_kt[role]
    for role in ROLES:
        y = rows[role].correct.to_numpy()
        blocks[role]["baselines"] = {name: metrics(y, p) for name, p in p_base[role].items()}
        log(f"baselines ({role}): {json.dumps(blocks[role]['baselines'])}")
    learned = [m for m in p_base["dev"] if m != "truth"]
    best = min(learned, key=lambda m: blocks["dev"]["baselines"][m].get("logloss", math.inf))
    result["best_baseline_on_dev"] = best
    result["baseline_seconds"] = round(time.perf_counter() - t0, 1)

    p_service: dict[str, np.ndarray] = {}
    p_skill: dict[str, np.ndarray | None] = {}
    with servers_for(Settings.from_env()) as settings, tempfile.TemporaryDirectory(prefix="adaptrec-replay-") as tmp:
        workdir = Path(tmp)
        # -- the service: trained once, each role replayed through it (a role's attempts touch
        #    only its own learners' histories, so the order of the roles does not matter) --
        with connected_scratch_database(settings.database_url) as (url, conn):
            log("importing the training rows and training every model unit ...")
            result["training"] = import_and_train(url, conn, train_df, skills_of, config,
                                                  None if train_all_units else [ROOT], workdir, "train")
            log(f"training: {json.dumps(result['training'])}")
            prefix = f"adaptrec-replay-{uuid.uuid4().hex[:10]}:"
            cache = Cache(settings.redis_url, prefix=prefix)
            models = ModelCache()
            try:
                for role in ROLES:
                    p_service[role], p_skill[role], blocks[role]["replay"] = replay_service(
                        conn, cache, models, rows[role], skill_of, progress)
                with conn:
                    old_model = models.nearest(conn, DEFAULT, [ROOT], "practice")
            finally:
                result["redis_keys_deleted"] = delete_prefix(cache, prefix)
                cache.close()
        for role in ROLES:
            frame, p, block = rows[role], p_service[role], blocks[role]
            y = frame.correct.to_numpy()
            block["service"] = metrics(y, p)
            methods = {"service": p}
            if p_skill[role] is not None:
                has = ~np.isnan(p_skill[role])
                block["service_skill_requests"] = metrics(y[has], p_skill[role][has])
                methods["service_skill_requests"] = p_skill[role]
            block["slices"] = slice_table(frame, methods | p_base[role])
            block["service_reliability"] = reliability_rows(y, p)
            block["service_vs_baselines"] = service_vs_baselines(frame, p, p_base[role], best)
            log(f"service ({role}): {json.dumps(block['service'])} {json.dumps(block['replay'])}")
        if predictions is not None:
            pd.concat([rows[r][[*COLUMNS, "pos"]].assign(
                role=r, service=p_service[r], **({"service_skill": p_skill[r]} if p_skill[r] is not None else {}),
                **p_base[r]) for r in ROLES], ignore_index=True).to_csv(predictions, index=False, float_format="%.6f")

        # -- full retrain on training learners + the dev and test learners' first halves --
        second = {r: second_half_mask(rows[r].pos.to_numpy(), rows[r].n.to_numpy()) for r in ROLES}
        if retrain and any(m.any() for m in second.values()):
            half_rows = pd.concat([f[(f.n >= 2) & (f.pos < f.n // 2)][COLUMNS] for f in rows.values()])
            retrained: dict = {}
            # Here the job must train the replayed learners (it holds out its own test learners otherwise).
            retrain_config = replace(config, hold_out_test_learners=False)
            with connected_scratch_database(settings.database_url) as (url, conn):
                log("full retrain: training learners + dev and test learners' first halves (root unit) ...")
                info = import_and_train(url, conn, pd.concat([train_df, half_rows], ignore_index=True), skills_of,
                                        retrain_config, [ROOT], workdir, "retrain",
                                        on_result=root_practice_result(retrained))
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
                log(f"full_retrain ({role}): {json.dumps(blocks[role]['full_retrain'])}")
            info.pop("parent_comparison", None)     # only the root was retrained
            result["full_retrain_training"] = info

    result.update(blocks)
    result["dev_test_table"] = dev_test_table(blocks)
    # The keys of the earlier reports, kept with their meaning: the held-out (now: test) learners' figures.
    result.update(blocks["test"])
    if "full_retrain" in result:
        result["full_retrain"] = {**result["full_retrain"], "training": result["full_retrain_training"]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["protocol_text"] = protocol_text(protocol, train_all_units)
    if regime == "all" and data == DEFAULT_DATA:
        result["published_auc_on_this_data"] = PUBLISHED_AUC
    result["targets"] = {"service_auc_at_least": TARGETS["auc"], "service_ece_at_most": TARGETS["ece"],
                         "judged_on": "test",
                         "met": bool(result["service"].get("auc", 0) >= TARGETS["auc"]
                                     and result["service"].get("ece", 1) <= TARGETS["ece"])}
    log(format_table(result["dev_test_table"]))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="assistments", choices=["assistments"], help="attempts file format")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="attempts file (.csv or .csv.gz); unused by the demo regimes")
    parser.add_argument("--regime", default="all", choices=list(REGIMES),
                        help="the data regime: " + "; ".join(f"{r.name}: {r.description}" for r in REGIMES.values()))
    parser.add_argument("--protocol", default="learner", choices=PROTOCOLS,
                        help="learner: dev / test learners are new to the service; production: a cut in time, "
                             "returning and new learners after it")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--max-test-students", type=int, default=None,
                        help="replay only the first N dev and the first N test learners (split-key order; "
                             "default: all)")
    parser.add_argument("--root-only", action="store_true",
                        help="train only the root unit (it is the one that predicts) instead of every model unit; "
                             "implies --no-skill-requests")
    parser.add_argument("--no-skill-requests", action="store_true",
                        help="do not also ask for each attempt through the item's skill unit")
    parser.add_argument("--no-retrain", action="store_true", help="skip the full_retrain comparison")
    parser.add_argument("--predictions", type=Path,
                        help="also write every replayed attempt with each method's p here (.csv or .csv.gz)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if REGIMES[args.regime].demo is None and not args.data.exists():
        parser.error(f"{args.data}: no such file")
    if args.max_test_students is not None and args.max_test_students < 1:
        parser.error("--max-test-students must be at least 1")
    result = run(args.data, args.max_test_students, retrain=not args.no_retrain, progress=not args.quiet,
                 train_all_units=not args.root_only, predictions=args.predictions, regime=args.regime,
                 protocol=args.protocol, skill_requests=not args.no_skill_requests)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

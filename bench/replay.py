"""Replay benchmark: next-attempt prediction as in the published knowledge-tracing tables.

    python -m bench.replay --format assistments --data PATH [--json OUT] [--max-test-students N]
                           [--predictions OUT.csv.gz] [--root-only] [--no-retrain]

Protocol (split by student, question level, every attempt of a replayed student predicted before
it is revealed; every figure for dev and for test side by side):

1. Read the attempts file (`user_id, seq, problem_id, correct, skills`, .csv or .csv.gz). User
   ids are text. Students take their role from the training job's own learner split
   (jobs.training.split, seed SPLIT_SEED): sha256(f"{seed}:{user_id}") as a number in [0, 1),
   below 0.8 train, below 0.9 dev, else test; so a student is dev or test here exactly when the
   job would hold them out. Dev and test students are replayed in split-key order
   (`--max-test-students N`: the first N of each). Anything this bench or a person chooses
   (windows, constants, model choice) is chosen on dev; test is reported beside it, never tuned on.
2. In a scratch database (created and dropped here) the training students' rows are written to
   a temporary .csv.gz of the same format and imported by the real importer. The catalogue of
   the whole file (every problem with its skills, every skill unit under the root) is staged by
   the importer's own catalogue code (`assistments._stage_catalogue` through a `Loader`), so
   problems only dev / test students attempt exist as items, as a platform's catalogue would, but
   no replayed attempt is in the database. Then the real nightly job trains every model unit:
   `run_training(url, TrainConfig.from_env())` with one change: it is given only training
   students, all "train" under SPLIT_SEED, so it splits them again with JOB_SPLIT_SEED for its
   grid, calibration and own held-out figures (`training.root_job_metrics`). Predictions ask for
   the root unit `assistments`, so the root's practice model is the one that predicts.
3. Each dev, then each test student's attempts are replayed in `seq` order through the functions
   behind the API: `predict(conn, cache, models, user, ["assistments"], [item])` for p (before the
   outcome is known), then `record_interactions` (the API's ingest: one transaction, then the
   history cache; event id and time as the importer makes them). Real Redis (a key prefix of its
   own, deleted at the end), a fresh `ModelCache`. All attempts count, repeated ones included. A
   prediction reads only the model and that student's history, so the roles do not interact.
4. Baselines on the same attempts: `item_difficulty` (training students' smoothed success rate
   per item, unseen items the global rate), `elo` (Pelanek 2016: p = sigmoid(skill - difficulty),
   uncertainty function U(n) = ELO_ALPHA / (1 + ELO_BETA n) for students and items; one pass over
   the training students, then online through each role's replay from that state), `irt_live`
   (1PL: c + ability - difficulty, difficulties and c by joint MAP on the training students with
   N(0, 1) abilities and N(0, IRT_ITEM_SD^2) difficulties; each replayed student's ability by MAP
   from their earlier attempts only). Their constants are fixed, not tuned.
5. `full_retrain`: a second scratch database with the training students plus each dev and test
   student's first half of attempts (floor(n / 2), students with n >= 2), the root trained again
   through `run_training` (hold-out of its test learners off, so every replayed student is
   trained on, as the nightly job trains the learners it serves); its predictions for the second
   halves use those students' trained LightFM user vectors (the job's final refit) with the stored
   item vectors and calibration. Beside it on the same attempts: the service's replay predictions
   (which saw every earlier attempt), and two like-for-like live fits from the first half only
   (old model; retrained items, as the service would serve these students after the nightly job).
Metrics: AUC, log-loss, accuracy, ECE (10 bins) from jobs.training.metrics.probability_metrics.

Report: `dev` and `test` blocks (each: service, baselines, service_slices, service_reliability,
replay timing, full_retrain) and `dev_test_table` (each method's metrics on dev beside test). The
keys of the earlier 80/20 report (`service`, `baselines`, `service_slices`, `service_reliability`,
`replay`, `full_retrain`) keep their meaning, the held-out students' figures: they are the test
block's. `targets` are judged on test.
"""
from __future__ import annotations

import argparse
import copy
import csv
import gzip
import itertools
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from app.config import PROJECT_ROOT
from bench.report import emit
from jobs.training import split
from jobs.training.metrics import probability_metrics

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"
ROOT = "assistments"
COLUMNS = ["user_id", "seq", "problem_id", "correct", "skills"]
SPLIT_SEED = split.SEED          # students' roles: the training job's own split of learners
# The job run here is given only the training students, all "train" under SPLIT_SEED; it splits
# them again (for its grid, calibration and own held-out figures) with this seed.
JOB_SPLIT_SEED = SPLIT_SEED + 1
ROLES = ("dev", "test")         # the replayed roles, reported side by side
START = datetime(2009, 9, 1, tzinfo=UTC)   # the importer's clock: START + seq minutes

ELO_ALPHA, ELO_BETA = 1.0, 0.05      # U(n) = alpha / (1 + beta n)
DIFFICULTY_PRIOR_WEIGHT = 5.0        # item_difficulty smoothing, as the training job's baseline
IRT_ITEM_SD = 1.0                    # prior sd of 1PL item difficulties (abilities: N(0, 1))

TARGETS = {"auc": 0.83, "ece": 0.01}
PUBLISHED_AUC = {"IRT": "0.69-0.73", "BKT": 0.72, "DKT": "0.75-0.76", "AKT": 0.785, "KTM": 0.819}


# ---- data and split ---------------------------------------------------------------------------
def read_attempts(path: Path) -> pd.DataFrame:
    """All rows, ids as text, sorted by (user_id, seq)."""
    df = pd.read_csv(path, dtype={"user_id": str, "problem_id": str, "skills": str, "seq": np.int64,
                                  "correct": np.int8}, keep_default_na=False, usecols=COLUMNS)
    return df[COLUMNS].sort_values(["user_id", "seq"], kind="stable").reset_index(drop=True)


def replay_frame(df: pd.DataFrame, test_ids: list[str]) -> pd.DataFrame:
    """The test students' rows in replay order: students in `test_ids` order, attempts by seq;
    `pos` is the attempt's 0-based position in the student's history and `n` their count."""
    rank = {u: i for i, u in enumerate(test_ids)}
    out = df[df.user_id.isin(rank)].copy()
    out["_rank"] = out.user_id.map(rank)
    out = out.sort_values(["_rank", "seq"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    out["pos"] = out.groupby("user_id", sort=False).cumcount()
    out["n"] = out.groupby("user_id", sort=False)["seq"].transform("size")
    return out


def second_half_mask(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Attempts in the second half of their student's history (first half = floor(n / 2); students
    with fewer than 2 attempts have no halves)."""
    return (n >= 2) & (pos >= n // 2)


def skills_by_problem(df: pd.DataFrame) -> dict[str, list[str]]:
    """problem -> skill names, the union over its rows, first seen first (as the importer)."""
    out: dict[str, list[str]] = {}
    for problem, text in df[["problem_id", "skills"]].drop_duplicates().itertuples(index=False):
        skills = out.setdefault(problem, [])
        for name in text.split("|"):
            name = name.strip()
            if name and name not in skills:
                skills.append(name)
    return out


def write_attempts(df: pd.DataFrame, path: Path) -> None:
    with gzip.open(path, "wt", newline="", compresslevel=1) as f:
        df[COLUMNS].to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


def metrics(y, p) -> dict:
    if len(y) == 0:                   # an empty slice (e.g. no history of 50 with few students)
        return {"n": 0}
    m = probability_metrics(np.asarray(y), np.asarray(p, dtype=np.float64))
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in m.items()}


# ---- baselines (pure numpy) -------------------------------------------------------------------
def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def item_difficulty(train_items: np.ndarray, train_y: np.ndarray, n_items: int, test_items: np.ndarray,
                    prior_weight: float = DIFFICULTY_PRIOR_WEIGHT) -> np.ndarray:
    """Each item's success rate among training attempts, shrunk towards the global rate by
    `prior_weight` pseudo-attempts; an item without training attempts gets the global rate."""
    attempts = np.bincount(train_items, minlength=n_items).astype(np.float64)
    correct = np.bincount(train_items, weights=train_y, minlength=n_items)
    overall = correct.sum() / max(attempts.sum(), 1.0)
    rate = (correct + prior_weight * overall) / (attempts + prior_weight)
    return rate[test_items]


@dataclass
class Elo:
    """Elo for students and items (Pelanek 2016): p = sigmoid(skill_s - difficulty_i); after an
    answer skill_s += U(n_s)(y - p), difficulty_i -= U(n_i)(y - p), U(n) = alpha / (1 + beta n),
    n the number of earlier updates of that student / item. Everyone starts at 0."""
    n_users: int
    n_items: int
    alpha: float = ELO_ALPHA
    beta: float = ELO_BETA

    def __post_init__(self):
        self.skill = np.zeros(self.n_users)
        self.difficulty = np.zeros(self.n_items)
        self.user_n = np.zeros(self.n_users, dtype=np.int64)
        self.item_n = np.zeros(self.n_items, dtype=np.int64)

    def run(self, users: np.ndarray, items: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Predict each attempt in order, then learn from it; returns the predictions."""
        skill, difficulty, user_n, item_n = self.skill, self.difficulty, self.user_n, self.item_n
        a, b = self.alpha, self.beta
        out = np.empty(len(users))
        for k, (u, i, o) in enumerate(zip(users.tolist(), items.tolist(), y.tolist())):
            p = 1.0 / (1.0 + math.exp(difficulty[i] - skill[u]))
            out[k] = p
            err = o - p
            skill[u] += a / (1.0 + b * user_n[u]) * err
            difficulty[i] -= a / (1.0 + b * item_n[i]) * err
            user_n[u] += 1
            item_n[i] += 1
        return out


def fit_irt(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
            item_sd: float = IRT_ITEM_SD) -> tuple[np.ndarray, np.ndarray, float]:
    """Joint MAP of the 1PL logit p = c + theta_u - b_i with theta ~ N(0, 1), b ~ N(0, item_sd^2),
    c flat. Returns (theta, b, c)."""
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=np.float64)
    item_precision = 1.0 / item_sd ** 2

    def objective(x):
        theta, b, c = x[:n_users], x[n_users:n_users + n_items], x[-1]
        z = c + theta[users] - b[items]
        g = sigmoid(z) - y
        value = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * theta @ theta + 0.5 * item_precision * b @ b
        grad = np.concatenate([np.bincount(users, weights=g, minlength=n_users) + theta,
                               -np.bincount(items, weights=g, minlength=n_items) + item_precision * b,
                               [g.sum()]])
        return value, grad

    x0 = np.zeros(n_users + n_items + 1)
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-6})
    x = result.x
    return x[:n_users], x[n_users:n_users + n_items], float(x[-1])


def irt_live(b: np.ndarray, c: float, items: np.ndarray, y: np.ndarray, starts: np.ndarray,
             steps: int = 20, tol: float = 1e-8) -> np.ndarray:
    """Predictions of each attempt from the ability fitted (MAP, N(0, 1) prior, Newton) on the
    student's earlier attempts only. `starts` marks each student's first attempt (rows grouped by
    student, in order)."""
    out = np.empty(len(items))
    y = np.asarray(y, dtype=np.float64)
    offset = c - b[items]                          # logit = theta + offset
    bounds = np.r_[np.flatnonzero(starts), len(items)]
    for s, e in itertools.pairwise(bounds):
        theta = 0.0
        for t in range(s, e):
            if t > s:                              # refit on attempts s..t-1 (warm start)
                o, obs = offset[s:t], y[s:t]
                for _ in range(steps):
                    p = sigmoid(theta + o)
                    step = (np.sum(p - obs) + theta) / (np.sum(p * (1.0 - p)) + 1.0)
                    theta -= step
                    if abs(step) < tol:
                        break
            out[t] = 1.0 / (1.0 + math.exp(-(theta + offset[t])))
    return out


# ---- the service ------------------------------------------------------------------------------
def attempt_time(seq: int) -> datetime:
    return START + timedelta(minutes=int(seq))


def import_catalogue(conn, skills_of: dict[str, list[str]]) -> dict:
    """Stage the catalogue (no attempts) with the importer's own code and merge it."""
    from jobs.importers import assistments
    from jobs.importers.common import Loader

    with conn:
        loader = Loader(conn)
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
            "models_failed": [o.unit_id for o in report.outcomes if o.status != "activated"],
            "root_model_id": root.model_id,
            "root_hyperparams": hyperparams, "root_calibration": calibration,
            "root_search": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()} for t in search],
            "root_job_metrics": {k: round(root.metrics["model"][k], 4) for k in ("auc", "ece")}
            | {"baseline_auc": round(root.metrics["baseline"]["auc"], 4)}}


def replay_service(conn, cache, models, test: pd.DataFrame, progress: bool = False) -> tuple[np.ndarray, dict]:
    """p of every test attempt, predicted before it is ingested, through predict + ingest."""
    from app.ingest import record_interactions
    from app.recommend import predict
    from app.records import Interaction

    users, items = test.user_id.tolist(), test.problem_id.tolist()
    seqs, ys = test.seq.tolist(), test.correct.tolist()
    p = np.empty(len(test))
    predict_s = np.empty(len(test))
    ingest_s = np.empty(len(test))
    fallbacks: dict[str, int] = {}
    history_rows = np.empty(len(test), dtype=np.int64)
    t_report = time.perf_counter()
    for k in range(len(test)):
        t0 = time.perf_counter()
        with conn:
            answer = predict(conn, cache, models, users[k], [ROOT], [items[k]])
        t1 = time.perf_counter()
        p[k] = answer["items"][0]["p"]
        history_rows[k] = answer["history_rows"]
        if answer["fallback"]:
            fallbacks[answer["fallback"]] = fallbacks.get(answer["fallback"], 0) + 1
        event = Interaction(event_id=f"assist:{users[k]}:{seqs[k]}", user_id=users[k], item_id=items[k],
                            kind="attempt", outcome=ys[k], occurred_at=attempt_time(seqs[k]))
        record_interactions(conn, cache, [event])
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
    return p, timing


def _ms(seconds: np.ndarray) -> dict:
    if not len(seconds):
        return {}
    return {"mean": round(float(seconds.mean() * 1e3), 2), "p50": round(float(np.percentile(seconds, 50) * 1e3), 2),
            "p99": round(float(np.percentile(seconds, 99) * 1e3), 2)}


def live_fit_from(model, history: list[tuple[str, int]], items: list[str], at: datetime) -> np.ndarray:
    """p of `items` from the product's scoring path (score_candidates) given a fixed history of
    (item, outcome) oldest first: the live fit without the database and Redis around it."""
    from app import history as hist
    from app.recommend import score_candidates

    events = [hist.Event(i, "attempt", int(o), None, at) for i, o in reversed(history)]  # newest first
    return score_candidates(model, items, events, None, practice=True)[0]


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
def baseline_predictions(train_df: pd.DataFrame, frames: dict[str, pd.DataFrame], item_codes: dict[str, int],
                         user_codes: dict[str, int]) -> dict[str, dict[str, np.ndarray]]:
    """{role: {baseline: p of each replayed attempt}}: fitted on the training students only; Elo
    continues online from its trained state through each role's replay separately."""
    n_items = len(item_codes)
    tr_items = train_df.problem_id.map(item_codes).to_numpy()
    tr_users = train_df.user_id.map(user_codes).to_numpy()
    tr_y = train_df.correct.to_numpy().astype(np.float64)
    elo = Elo(len(user_codes), n_items)
    elo.run(tr_users, tr_items, tr_y)            # training students, in user order then seq
    n_train = int(train_df.user_id.nunique())
    _, b, c = fit_irt(tr_users, tr_items, tr_y, n_train, n_items)
    out = {}
    for role, frame in frames.items():
        items, users = frame.problem_id.map(item_codes).to_numpy(), frame.user_id.map(user_codes).to_numpy()
        y = frame.correct.to_numpy()
        out[role] = {"item_difficulty": item_difficulty(tr_items, tr_y, n_items, items),
                     "elo": copy.deepcopy(elo).run(users, items, y.astype(np.float64)),
                     "irt_live": irt_live(b, c, items, y, frame.pos.to_numpy() == 0)}
    return out


def service_slices(frame: pd.DataFrame, p: np.ndarray) -> dict:
    """The service's metrics on slices of one role's replay: first / repeated attempts, history length."""
    y = frame.correct.to_numpy()
    first = ~frame.duplicated(["user_id", "problem_id"]).to_numpy()
    pos = frame.pos.to_numpy()
    return {
        "first_attempts_only": metrics(y[first], p[first]),
        "repeated_attempts": metrics(y[~first], p[~first]),
        "no_history (pos 0)": metrics(y[pos == 0], p[pos == 0]),
        "pos 1-9": metrics(y[(pos >= 1) & (pos < 10)], p[(pos >= 1) & (pos < 10)]),
        "pos 10-49": metrics(y[(pos >= 10) & (pos < 50)], p[(pos >= 10) & (pos < 50)]),
        "pos >= 50": metrics(y[pos >= 50], p[pos >= 50]),
    }


def dev_test_table(blocks: dict[str, dict]) -> list[dict]:
    """One row per method: each metric on dev beside test (`blocks`: {role: report block})."""
    rows = []
    for method in ("service", "item_difficulty", "elo", "irt_live"):
        row: dict = {"method": method}
        for key in ("auc", "logloss", "accuracy", "ece", "n"):
            for role in ROLES:
                block = blocks[role]
                m = block["service"] if method == "service" else block["baselines"][method]
                row[f"{key}_{role}"] = m.get(key)
        rows.append(row)
    return rows


def run(data: Path, max_test_students: int | None = None, retrain: bool = True, progress: bool = False,
        train_all_units: bool = True, predictions: Path | None = None) -> dict:
    from app.cache import Cache
    from app.config import Settings
    from app.embedded import servers_for
    from app.model_cache import ModelCache
    from harness.databases import connected_scratch_database
    from jobs.train import TrainConfig

    started = time.perf_counter()
    df = read_attempts(data)
    ids = split.ids_by_role(df.user_id, SPLIT_SEED)  # the training job's learner roles, in key order
    replayed = {role: ids[role][:max_test_students] for role in ROLES}
    train_df = df[df.user_id.isin(set(ids["train"]))]
    frames = {role: replay_frame(df, replayed[role]) for role in ROLES}
    skills_of = skills_by_problem(df)
    config = replace(TrainConfig.from_env(), split_seed=JOB_SPLIT_SEED)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    log(f"{len(df)} attempts; {len(ids['train'])} training students ({len(train_df)} attempts), "
        + ", ".join(f"{len(replayed[r])} {r} students ({len(frames[r])} attempts)" for r in ROLES))

    result: dict = {"data": str(data), "date": date.today().isoformat(),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                    "split": {"seed": SPLIT_SEED, "job_split_seed": JOB_SPLIT_SEED,
                              "train_students": len(ids["train"]), "train_attempts": len(train_df)}
                    | {f"{r}_{k}": v for r in ROLES for k, v in (("students", len(replayed[r])),
                                                                 ("students_in_split", len(ids[r])),
                                                                 ("attempts", len(frames[r])))},
                    "config": {"mode": config.mode, "max_trials": config.max_trials, "threads": config.threads,
                               "units_trained": "all model units" if train_all_units else [ROOT],
                               "predicting_unit": ROOT}}
    blocks: dict[str, dict] = {role: {} for role in ROLES}

    # -- baselines (no servers) --
    t0 = time.perf_counter()
    item_codes = {p: k for k, p in enumerate(sorted(skills_of))}
    user_codes = {u: k for k, u in enumerate(ids["train"] + replayed["dev"] + replayed["test"])}
    p_base = baseline_predictions(train_df, frames, item_codes, user_codes)
    for role in ROLES:
        y = frames[role].correct.to_numpy()
        blocks[role]["baselines"] = {name: metrics(y, p) for name, p in p_base[role].items()}
        log(f"baselines ({role}): {json.dumps(blocks[role]['baselines'])}")
    result["baseline_seconds"] = round(time.perf_counter() - t0, 1)

    p_service: dict[str, np.ndarray] = {}
    with servers_for(Settings.from_env()) as settings, tempfile.TemporaryDirectory(prefix="adaptrec-replay-") as tmp:
        workdir = Path(tmp)
        # -- the service: trained once, each role replayed through it (a role's attempts touch
        #    only its own students' histories, so the order of the roles does not matter) --
        with connected_scratch_database(settings.database_url) as (url, conn):
            log("importing the training students and training every model unit ...")
            result["training"] = import_and_train(url, conn, train_df, skills_of, config,
                                                  None if train_all_units else [ROOT], workdir, "train")
            log(f"training: {json.dumps(result['training'])}")
            prefix = f"adaptrec-replay-{uuid.uuid4().hex[:10]}:"
            cache = Cache(settings.redis_url, prefix=prefix)
            models = ModelCache()
            try:
                for role in ROLES:
                    p_service[role], blocks[role]["replay"] = replay_service(conn, cache, models, frames[role],
                                                                             progress)
                with conn:
                    old_model = models.nearest(conn, [ROOT], "practice")
            finally:
                result["redis_keys_deleted"] = delete_prefix(cache, prefix)
                cache.close()
        for role in ROLES:
            frame, p, block = frames[role], p_service[role], blocks[role]
            y = frame.correct.to_numpy()
            block["service"] = metrics(y, p)
            block["service_slices"] = service_slices(frame, p)
            block["service_reliability"] = _reliability(y, p)
            log(f"service ({role}): {json.dumps(block['service'])} {json.dumps(block['replay'])}")
        if predictions is not None:
            pd.concat([frames[r][COLUMNS].assign(role=r, service=p_service[r], **p_base[r]) for r in ROLES],
                      ignore_index=True).to_csv(predictions, index=False, float_format="%.6f")

        # -- full retrain on training students + the dev and test students' first halves --
        second = {r: second_half_mask(frames[r].pos.to_numpy(), frames[r].n.to_numpy()) for r in ROLES}
        if retrain and any(m.any() for m in second.values()):
            half_rows = pd.concat([f[(f.n >= 2) & (f.pos < f.n // 2)][COLUMNS] for f in frames.values()])
            retrained: dict = {}
            # Here the job must train the replayed students (it holds out its own test learners otherwise).
            retrain_config = replace(config, hold_out_test_learners=False)
            with connected_scratch_database(settings.database_url) as (url, conn):
                log("full retrain: training students + dev and test students' first halves (root unit) ...")
                info = import_and_train(url, conn, pd.concat([train_df, half_rows], ignore_index=True), skills_of,
                                        retrain_config, [ROOT], workdir, "retrain",
                                        on_result=root_practice_result(retrained))
                with conn:
                    new_model = ModelCache().nearest(conn, [ROOT], "practice")
            for role in ROLES:
                frame, sec = frames[role], second[role]
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
            result["full_retrain_training"] = info

    result.update(blocks)
    result["dev_test_table"] = dev_test_table(blocks)
    # The keys of the 80/20 report, kept with their meaning: the held-out (now: test) students' figures.
    result.update(blocks["test"])
    if "full_retrain" in result:
        result["full_retrain"] = {**result["full_retrain"], "training": result["full_retrain_training"]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["protocol"] = protocol_text(train_all_units)
    result["published_auc_on_this_data"] = PUBLISHED_AUC
    result["targets"] = {"service_auc_at_least": TARGETS["auc"], "service_ece_at_most": TARGETS["ece"],
                         "judged_on": "test",
                         "met": bool(result["service"]["auc"] >= TARGETS["auc"]
                                     and result["service"]["ece"] <= TARGETS["ece"])}
    log(format_table(result["dev_test_table"]))
    return result


def format_table(rows: list[dict]) -> str:
    """The dev / test table as text, for the log."""
    head = f"{'method':<16}" + "".join(f"{k + ' ' + r:>14}" for k in ("auc", "logloss", "ece") for r in ROLES)
    lines = [head]
    for row in rows:
        cells = "".join(f"{_cell(row[f'{k}_{r}']):>14}" for k in ("auc", "logloss", "ece") for r in ROLES)
        lines.append(f"{row['method']:<16}{cells}")
    return "\n".join(lines)


def _cell(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"


def _reliability(y, p) -> list[dict]:
    from jobs.training.metrics import reliability

    return [{"bin": f"{b['lower']:.1f}-{b['upper']:.1f}", "n": b["n"],
             "predicted": None if b["predicted"] is None else round(b["predicted"], 4),
             "observed": None if b["observed"] is None else round(b["observed"], 4)}
            for b in reliability(np.asarray(y), np.asarray(p), 10)]


def protocol_text(train_all_units: bool = True) -> str:
    return (f"Students split by the training job's learner split (jobs.training.split, seed {SPLIT_SEED}): "
            f"sha256('<seed>:<user_id>') as a number in [0, 1), below 0.8 train, below 0.9 dev, else test; dev "
            f"and test students replayed in split-key order, every figure reported for both; settings are chosen on "
            f"dev, test is never tuned on. Training students' rows imported by the assistments importer; the whole "
            f"file's catalogue (items and skill units, no attempts) staged by the importer's catalogue code; "
            f"{'every model unit' if train_all_units else 'the root unit'} trained by run_training "
            f"(TrainConfig.from_env(), split seed {JOB_SPLIT_SEED}: the job splits the training students it is "
            f"given for its own grid, calibration and held-out figures); the root model '{ROOT}' predicts. Each dev "
            f"and test student's attempts (all, repeats included) replayed in seq order: predict() before the "
            f"outcome, then record_interactions (real Postgres and Redis). Metrics over all replayed attempts of a "
            f"role. Baselines on the same attempts, constants fixed: item_difficulty (training success rate, "
            f"{DIFFICULTY_PRIOR_WEIGHT:g} pseudo-attempts at the global rate), elo (Pelanek 2016, U(n) = "
            f"{ELO_ALPHA:g}/(1 + {ELO_BETA:g} n), one pass over training students then online through each role's "
            f"replay), irt_live (1PL joint MAP on training students, N(0,1) abilities, N(0,{IRT_ITEM_SD:g}^2) "
            f"difficulties; replayed abilities by MAP on earlier attempts). full_retrain: root retrained by "
            f"run_training (test hold-out off) on training students + each dev and test student's first floor(n/2) "
            f"attempts, second halves predicted with the retrained LightFM user vectors and the stored "
            f"calibration, compared on the same attempts with the replay's predictions.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="assistments", choices=["assistments"], help="attempts file format")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="attempts file (.csv or .csv.gz)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--max-test-students", type=int, default=None,
                        help="replay only the first N dev and the first N test students (split-key order; "
                             "default: all)")
    parser.add_argument("--root-only", action="store_true",
                        help="train only the root unit (it is the one that predicts) instead of every model unit")
    parser.add_argument("--no-retrain", action="store_true", help="skip the full_retrain comparison")
    parser.add_argument("--predictions", type=Path,
                        help="also write every replayed attempt with each method's p here (.csv or .csv.gz)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data}: no such file")
    if args.max_test_students is not None and args.max_test_students < 1:
        parser.error("--max-test-students must be at least 1")
    result = run(args.data, args.max_test_students, retrain=not args.no_retrain, progress=not args.quiet,
                 train_all_units=not args.root_only, predictions=args.predictions)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Totara drop-in: the quality and the speed of GET /user-items and /similar-items as Totara calls them.

    python -m bench.totara [--quality] [--speed] [--modes full mf] [--data ../shared/data/ml-100k]
                           [--speed-data movielens|fixture] [--rate 200] [--seconds 20] [--json OUT]

QUALITY, per training mode (--modes, default full: Totara's default). MovieLens-100k becomes a Totara export
with one tenant, 0: item_data_0.csv holds every movie as `engage_article{id}` (the five one-hot component
columns, one-hot `topic_<Genre>` columns, `document` = the title with commas and quotes scrubbed, as Totara's
exporter writes it); user_data_0.csv holds lang (always en), gender, occupation and an age group;
user_interactions_0.csv rates 4-5 stars 1, else 0. The split is seeded (numpy default_rng(seed)): 15 % of the
users are COLD (their user_data row is written, none of their ratings), and of every other user 20 % of their
4-5 star ratings are held out; held-out rows are never written. Then the product's own path:
jobs.importers.run_import (format totara, the mode ADAPTREC_TOTARA_MODE would set), jobs.train.run_training
over every tenant (`adaptrec train --all`; TrainConfig defaults but --seed, --threads), and the service as
`adaptrec serve` runs it (harness.service: gunicorn, 2 workers), asked GET
/user-items?item_type=engage_article&n_items=10 once for every user with a held-out positive, one request after
another, signed as Totara signs. precision@10, recall@10 and NDCG@10 (jobs.training.metrics' definitions; a
short answer misses at the places it lacks) against the held-out positives, beside, on the same users and
split: the stored model scored offline from all the user's exported positives (bench.topn_job.serving_scores,
the service's own engagement_scores) with every exported item of the user excluded, as the service's `top`
strategy excludes them ("the nightly model's figure for the same split"; also with only the positives excluded,
jobs.training.topn.evaluate's rule); popularity (most exported positives, the user's items excluded); and the
job's own figure from models.metrics, which is on a DIFFERENT split (20 % of the pairs it was given, before its
refit). Differences carry a 95 % interval from a paired bootstrap over users. Cold users with a 4-5 star rating
ask the same; their answers are compared with popularity by exported positives and by exported interactions.
Nothing is tuned (product defaults; in mf the job's own grid on its own validation pairs), so there is no dev
split and the test split is scored once.
SPEED: the MovieLens export (the same split, mode full) or the fixture tests/fixtures/totara_export
(--speed-data) imported and trained in a scratch database, gunicorn started as above (one BLAS thread per
worker); a separate process sends signed GETs open-loop at --rate for --seconds per phase after --warmup
(latency from the scheduled send time, as bench.latency; a fresh signature per request): /user-items of users
with a history, /user-items of users without one (the popularity path), /similar-items of random items, and
/healthz as the floor. The answer for users without history is cached for 60 s (app.serving.related.TRENDING_TTL_S),
so a phase covers an expiry or not by its timing; each phase says when it started. Reported: p50/p90/p99/max,
errors, server CPU per request (gunicorn workers, Postgres backends, Redis), the access log's own durations and
statuses, the workers' memory, the load average and the busiest processes before. Target: p99 <= 25 ms at 200
requests/s. Prints one JSON object; --json also writes it.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from app.totara.protocol import ITEM_TYPES, sign
from bench.latency import scheduled_latency, summarise
from bench.load import Outcome, open_loop, send_times
from bench.report import emit
from harness.measure import CpuMeter, child_pids, loadavg, machine, percentile, pids_matching, proc_rss_mb, redis_pids

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "ml-100k"
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "totara_export"
TENANT = "0"
COMPONENT = "engage_article"
K = 10
MIN_RATING = 4                  # 4-5 stars: Totara's rating 1
HOLD_OUT, COLD_USERS = 0.2, 0.15
P99_TARGET_MS = 25.0
AGE_GROUPS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"),
              (200, "56+"))
USER_COLUMNS = ("user_id", "lang", "gender", "occupation", "age_group")


# ---- MovieLens as a Totara export (pure) ------------------------------------------------------
def read_movielens(folder: Path) -> tuple[np.ndarray, list[tuple[int, str, list[str]]], list[dict]]:
    """(ratings (n, 4) int64 user, movie, stars, unix time; movies (id, title, genres); users dicts)."""
    ratings = np.loadtxt(folder / "u.data", dtype=np.int64, ndmin=2)
    genres = [line.split("|")[0] for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines()
              if line.strip()]
    movies = []
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        movies.append((int(fields[0]), fields[1], [g for g, flag in zip(genres, fields[5:]) if flag == "1"]))
    users = []
    for line in (folder / "u.user").read_text(encoding="latin-1").splitlines():
        user_id, age, gender, occupation, _zip = line.split("|")
        users.append({"user_id": int(user_id), "age": int(age), "gender": gender, "occupation": occupation})
    return ratings, movies, users


def age_group(age: int) -> str:
    return next(label for upper, label in AGE_GROUPS if age < upper)


def topic_column(name: str) -> str:
    """Totara's column for a topic: 'topic_' + the name without spaces and punctuation."""
    return "topic_" + "".join(c for c in name if c.isalnum() or c == "_")


def split(ratings: np.ndarray, seed: int, hold_out: float = HOLD_OUT, cold_share: float = COLD_USERS
          ) -> tuple[np.ndarray, np.ndarray]:
    """(cold_users, held): the sorted ids of the cold users, and a boolean mask over the rows of
    `ratings` of the held-out positives: int(round(hold_out * n)) of each warm user's n positive rows,
    drawn with default_rng(seed) user by user in id order. Cold users' rows are never held out (they
    are all left out of the export)."""
    rng = np.random.default_rng(seed)
    user_ids = np.unique(ratings[:, 0])
    cold = np.sort(rng.permutation(user_ids)[: int(round(cold_share * len(user_ids)))])
    held = np.zeros(len(ratings), dtype=bool)
    positive = ratings[:, 2] >= MIN_RATING
    is_cold = np.isin(ratings[:, 0], cold)
    for user in user_ids:
        if user in cold:
            continue
        rows = np.flatnonzero((ratings[:, 0] == user) & positive & ~is_cold)
        held[rng.permutation(rows)[: int(round(hold_out * len(rows)))]] = True
    return cold, held


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def write_export(folder: Path, ratings: np.ndarray, exported: np.ndarray, movies, users) -> dict:
    """Tenant 0 of a Totara export in `folder`: all movies and users, the `exported` rows of `ratings`."""
    folder.mkdir(parents=True, exist_ok=True)
    genres = sorted({g for _, _, gs in movies for g in gs})
    _write_csv(folder / "tenants.csv", [["tenants"], [TENANT]])
    header = ["item_id", *ITEM_TYPES, *(topic_column(g) for g in genres), "document"]
    _write_csv(folder / f"item_data_{TENANT}.csv", [header] + [
        [f"{COMPONENT}{movie}", *(int(c == COMPONENT) for c in ITEM_TYPES), *(int(g in own) for g in genres),
         title.replace(",", " ").replace('"', " ")] for movie, title, own in movies])
    _write_csv(folder / f"user_data_{TENANT}.csv", [list(USER_COLUMNS)] + [
        [u["user_id"], "en", u["gender"], u["occupation"], age_group(u["age"])] for u in users])
    rows = ratings[exported]
    _write_csv(folder / f"user_interactions_{TENANT}.csv", [["user_id", "item_id", "rating", "timestamp"]] + [
        [int(u), f"{COMPONENT}{int(m)}", int(r >= MIN_RATING), int(t)] for u, m, r, t in rows])
    return {"items": len(movies), "users": len(users), "interactions": int(len(rows)),
            "positives": int((rows[:, 2] >= MIN_RATING).sum()), "topics": len(genres)}


# ---- metrics (pure) -----------------------------------------------------------------------------
def per_user_hits(lists: list[list[int]], relevant: list[set], k: int = K) -> np.ndarray:
    """(n_users, k) bool: whether each place of each answer is a relevant item (an answer shorter
    than k misses at the places it lacks)."""
    return np.array([[a in rel for a in answer[:k]] + [False] * (k - len(answer[:k]))
                     for answer, rel in zip(lists, relevant)], dtype=bool).reshape(len(lists), k)


def list_metrics(lists: list[list[int]], relevant: list[set], k: int = K) -> dict:
    """precision@k, recall@k and NDCG@k of ranked answers (jobs.training.metrics.ranking_metrics'
    definitions, over users with a relevant item); an answer shorter than k counts the rest as misses."""
    keep = [i for i, rel in enumerate(relevant) if rel]
    if not keep:
        return {"precision_at_10": None, "recall_at_10": None, "ndcg_at_10": None, "users": 0}
    hits = per_user_hits([lists[i] for i in keep], [relevant[i] for i in keep], k)
    sizes = np.array([len(relevant[i]) for i in keep])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discounts[: min(n, k)].sum() for n in sizes])
    return {"precision_at_10": _r(hits.sum(axis=1).mean() / k), "recall_at_10": _r((hits.sum(axis=1) / sizes).mean()),
            "ndcg_at_10": _r(((hits * discounts).sum(axis=1) / ideal).mean()), "users": len(keep)}


def paired_difference(a: list[list[int]], b: list[list[int]], relevant: list[set], resamples: int = 1000,
                      seed: int = 0, k: int = K) -> dict:
    """precision@k of answers a minus answers b on the same users, with a 95 % interval from
    resampling users (a paired bootstrap)."""
    keep = [i for i, rel in enumerate(relevant) if rel]
    rel = [relevant[i] for i in keep]
    diff = (per_user_hits([a[i] for i in keep], rel, k).sum(axis=1)
            - per_user_hits([b[i] for i in keep], rel, k).sum(axis=1)) / k
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": _r(diff.mean()), "ci95": [_r(low), _r(high)], "users": len(diff)}


def top_k(scores: np.ndarray, ids: list[int], exclude: set, k: int = K) -> list[int]:
    """The k best ids by score (ties: the earlier id), without `exclude`."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [ids[i] for i in itertools.islice((i for i in order if ids[i] not in exclude), k)]


def _r(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def signed_headers(totara_key: str, now: float | None = None) -> dict:
    """The two headers Totara's client sends (app.totara.protocol.sign)."""
    stamp = int(time.time() if now is None else now)
    return {"X-Totara-Time": str(stamp), "X-Totara-Ml-Key": sign(stamp, totara_key)}


def user_items_path(user: int, n: int = K, item_type: str = COMPONENT, tenant: str = TENANT) -> str:
    return f"/user-items?totara_user_id={user}&item_type={item_type}&tenant={tenant}&n_items={n}"


def similar_items_path(item_id: str, n: int = K, tenant: str = TENANT) -> str:
    return f"/similar-items?totara_item_id={item_id}&tenant={tenant}&n_items={n}"


# ---- import and train through the product ------------------------------------------------------
def import_and_train(url: str, folder: Path, mode: str, seed: int, threads: int) -> dict:
    """run_import (format totara, `mode`) and run_training over every tenant (train --all); the
    outcome of tenant 0's engagement model of the root unit `totara`."""
    from app.infra.db import connect
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    t0 = time.perf_counter()
    with closing(connect(url, application_name="bench-totara")) as conn:
        reports = run_import(conn, "totara", [folder], progress=False, totara_mode=mode)
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = run_training(url, TrainConfig(tenant=None, seed=seed, threads=threads), progress=False)
    train_s = time.perf_counter() - t0
    root = next((o for o in report.outcomes if o.tenant == TENANT and o.unit_id == "totara"
                 and o.objective == "engagement"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"tenant {TENANT}: the root model was not activated: {root}; all: {report.outcomes}")
    return {"outcome": root, "outcomes": [(o.tenant, o.unit_id, o.objective, o.status) for o in report.outcomes],
            "rows_read": sum(r.rows_read for r in reports), "import_seconds": round(import_s, 1),
            "train_seconds": round(train_s, 1)}


def load_serving_model(url: str, model_id: int):
    """(the stored model as the service holds it, the hyperparameters the job stored with it)."""
    from app.infra.db import connect
    from app.model import store as modelstore
    from app.online.scoring import ServingModel

    with closing(connect(url, application_name="bench-totara")) as conn:
        stored = modelstore.load_model(conn, TENANT, model_id)
        listed = {m["model_id"]: m for m in modelstore.list_models(conn, TENANT, include_retired=True)}
        conn.rollback()
    params = listed[model_id]["hyperparams"] or {}
    return ServingModel.from_stored(stored), {k: params.get(k) for k in ("l2", "warp", "weight", "foldin_reg")}


# ---- QUALITY ------------------------------------------------------------------------------------
def get_json(base_url: str, path: str, headers: dict, timeout_s: float = 30.0) -> tuple[int, dict]:
    """(status, parsed body) of one GET; an error status is returned, not raised."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"unparsed": raw[:300].decode("utf-8", "replace")}


def ask_service(base_url: str, totara_key: str, users: list[int]) -> tuple[list[list[int]], dict]:
    """/user-items of each user, one request after another over HTTP: (answers, statuses, short
    answers, latency, the first body)."""
    answers, statuses, short, seconds, first = [], {}, 0, [], None
    for user in users:
        t0 = time.perf_counter()
        status, body = get_json(base_url, user_items_path(user), signed_headers(totara_key))
        seconds.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        first = body if first is None else first
        items = [int(i) for i, _ in body.get("items", [])] if status == 200 else []
        short += len(items) < K
        answers.append(items)
    ms = [s * 1000 for s in seconds]
    return answers, {"statuses": statuses, "short_answers": short, "first_body": first,
                     "sequential_ms": {"p50": _r(percentile(ms, 50), 2), "p99": _r(percentile(ms, 99), 2)}}


def bench_quality_mode(server_url: str, settings, ratings, movies, users, cold, held, mode: str, args, say) -> dict:
    from app.catalogue.history import KEEP
    from bench.topn_job import serving_scores
    from harness.databases import drop_redis_prefix, scratch_database
    from harness.service import running_service

    started = time.perf_counter()
    is_cold = np.isin(ratings[:, 0], cold)
    exported = ~held & ~is_cold
    positive = ratings[:, 2] >= MIN_RATING
    movie_ids = [m for m, _, _ in movies]
    column = {m: j for j, m in enumerate(movie_ids)}
    train_pos: dict[int, set] = {}   # exported positives
    seen: dict[int, set] = {}        # every exported item, rating 0 or 1
    test_pos: dict[int, set] = {}
    for (u, m, _, _), e, h, p in zip(ratings, exported, held, positive):
        if e:
            seen.setdefault(int(u), set()).add(int(m))
        if e and p:
            train_pos.setdefault(int(u), set()).add(int(m))
        if h:
            test_pos.setdefault(int(u), set()).add(int(m))
    test_users = sorted(test_pos)
    cold_pos = {int(u): {int(m) for m in ratings[(ratings[:, 0] == u) & positive, 1]} for u in cold}
    cold_users = [u for u in cold if cold_pos[u]]
    rows_per_user = np.bincount(ratings[exported, 0])

    key = "bench-" + uuid.uuid4().hex
    prefix = f"{settings.redis_prefix}{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory(prefix="adaptrec-totara-") as tmp, \
            scratch_database(server_url, "adaptrec_totarabench") as url:
        sizes = write_export(Path(tmp), ratings, exported, movies, users)
        say(f"{mode}: export written ({sizes}); importing and training")
        trained = import_and_train(url, Path(tmp), mode, args.seed, args.threads)
        outcome = trained["outcome"]
        say(f"{mode}: imported in {trained['import_seconds']} s, trained in {trained['train_seconds']} s")
        model, params = load_serving_model(url, outcome.model_id)

        try:
            with running_service(url, settings.redis_url, "unused-" + uuid.uuid4().hex, Path(tmp) / "gunicorn.log",
                                 redis_prefix=prefix, workers=args.workers,
                                 env={"ADAPTREC_TOTARA_KEY": key, "ADAPTREC_LOG_FORMAT": "json"}) as service:
                t0 = time.perf_counter()
                warm_answers, warm_calls = ask_service(service.base_url, key, test_users)
                cold_answers, cold_calls = ask_service(service.base_url, key, cold_users)
                ask_s = time.perf_counter() - t0
                server_log = server_log_summary(service.log_path)
        finally:
            drop_redis_prefix(settings.redis_url, prefix)
        say(f"{mode}: asked /user-items for {len(test_users)} + {len(cold_users)} users in {ask_s:.1f} s")

    # The stored model offline, folded in from every exported positive of the user (no history
    # window). The job's rule excludes the user's positives from the ranking; the service's `top`
    # strategy excludes every item the user interacted with (rating 0 too), so both are reported.
    t0 = time.perf_counter()
    scores = serving_scores(model, [np.array([column[m] for m in sorted(train_pos.get(u, ()))], dtype=np.int64)
                                    for u in test_users], [f"{COMPONENT}{m}" for m in movie_ids])
    offline_job_rule = [top_k(scores[i], movie_ids, train_pos.get(u, set())) for i, u in enumerate(test_users)]
    offline = [top_k(scores[i], movie_ids, seen.get(u, set())) for i, u in enumerate(test_users)]
    score_s = time.perf_counter() - t0
    cols = np.array([column[int(m)] for m in ratings[exported, 1]])
    interactions_count = np.bincount(cols, minlength=len(movie_ids)).astype(np.float64)
    positives_count = np.bincount(cols, weights=ratings[exported, 2] >= MIN_RATING, minlength=len(movie_ids))
    popular = [top_k(positives_count, movie_ids, seen.get(u, set())) for u in test_users]
    relevant = [test_pos[u] for u in test_users]
    leaks = [(u, int(rows_per_user[u]), sorted(set(a) & train_pos.get(u, set())))
             for a, u in zip(warm_answers, test_users) if set(a) & seen.get(u, set())]
    heavy = [i for i, u in enumerate(test_users) if rows_per_user[u] > KEEP]
    job = outcome.metrics
    warm = {
        "users": len(test_users), "held_out_positives": int(held.sum()),
        "service_user_items": list_metrics(warm_answers, relevant),
        "model_offline_same_split": list_metrics(offline, relevant),
        "model_offline_same_split_job_rule": list_metrics(offline_job_rule, relevant),
        "popularity": list_metrics(popular, relevant),
        "job_own_split": {"model": {k: _r(job["model"][k]) for k in ("precision_at_10", "ndcg_at_10")}
                          | {"users": job["model"]["users"]},
                          "popularity": {k: _r(job["baseline"][k]) for k in ("precision_at_10", "ndcg_at_10")},
                          "split": "the job's own: a random 20 % of the exported positive pairs, scored before "
                                   "its refit on all of them (NOT the bench's held-out ratings)"},
        "differences": {"service_minus_offline": paired_difference(warm_answers, offline, relevant),
                        "service_minus_popularity": paired_difference(warm_answers, popular, relevant),
                        "offline_minus_popularity": paired_difference(offline, popular, relevant)},
        "service_vs_offline": {
            "identical_top10": sum(a == o for a, o in zip(warm_answers, offline)),
            "answers_with_an_item_already_interacted_with": len(leaks),
            "those_answers": [{"user": u, "exported_rows": n, "exported_positives_recommended": p}
                              for u, n, p in leaks[:10]],
            "users_with_more_exported_rows_than_history_keep": len(heavy), "history_keep": KEEP,
            "service_on_those_users": list_metrics([warm_answers[i] for i in heavy], [relevant[i] for i in heavy]),
            "offline_on_those_users": list_metrics([offline[i] for i in heavy], [relevant[i] for i in heavy])},
        "calls": warm_calls,
        "notes": {"model_offline_same_split": "the stored model, every exported item of the user excluded (the "
                                              "service's `top` rule): the nightly model's figure for this split",
                  "model_offline_same_split_job_rule": "the same scores, only the user's positives excluded "
                                                       "(jobs.training.topn.evaluate's rule)",
                  "popularity": "most exported positives, every exported item of the user excluded"},
    }
    service_p = warm["service_user_items"]["precision_at_10"] or 0.0
    warm["target"] = {"service_p10>=offline_p10_same_split": service_p
                      >= (warm["model_offline_same_split"]["precision_at_10"] or 0.0),
                      "service_p10>=popularity_p10": service_p >= (warm["popularity"]["precision_at_10"] or 0.0)}
    cold_rel = [cold_pos[u] for u in cold_users]
    by_positives = [top_k(positives_count, movie_ids, set())] * len(cold_users)
    by_interactions = [top_k(interactions_count, movie_ids, set())] * len(cold_users)
    cold_report = {
        "users": len(cold_users), "cold_users_total": len(cold),
        "service_user_items": list_metrics(cold_answers, cold_rel),
        "popularity_positives": list_metrics(by_positives, cold_rel),
        "popularity_interactions": list_metrics(by_interactions, cold_rel),
        "service_minus_popularity_positives": paired_difference(cold_answers, by_positives, cold_rel),
        "distinct_answers": len({tuple(a) for a in cold_answers}),
        "service_answer": cold_answers[0] if cold_answers else None,
        "popularity_positives_answer": by_positives[0] if by_positives else None,
        "popularity_interactions_answer": by_interactions[0] if by_interactions else None,
        "calls": cold_calls,
        "relevant": "every 4-5 star rating of the cold user (none of their ratings was exported)",
    }
    return {"mode": mode, "export": sizes, "import_seconds": trained["import_seconds"],
            "train_seconds": trained["train_seconds"], "trained": trained["outcomes"],
            "model": {"model_id": outcome.model_id, "mode": model.mode, "params": params},
            "warm": warm, "cold": cold_report, "server_log": server_log,
            "seconds": {"ask_service": round(ask_s, 1), "score_offline": round(score_s, 1),
                        "total": round(time.perf_counter() - started, 1)}}


# ---- SPEED: the open-loop client (runs in its own process) -----------------------------------
def signed_open_loop(base_url: str, totara_key: str, offsets: list[float], paths: list[str], record,
                     threads: int = 64, timeout_s: float = 10.0) -> float:
    """bench.load.open_loop for Totara's GET requests: request i (paths[i % len(paths)]) is due at
    start + offsets[i] and carries a signature made when it is sent. Returns the start time."""
    return open_loop(base_url, None, offsets, lambda i: ("GET", paths[i % len(paths)], None), record, threads,
                     timeout_s, sign=lambda: signed_headers(totara_key))


def drive(base_url: str, totara_key: str, paths: list[str], rate: float, seconds: float, threads: int = 64) -> dict:
    """One phase: `rate` signed GETs per second for `seconds`; bench.latency's summary of it."""
    latencies, lags, kinds, samples = [], [], {}, []
    last = [0.0]
    lock = threading.Lock()
    cpu0 = time.process_time()

    def record(o: Outcome) -> None:
        with lock:
            last[0] = max(last[0], o.done)
            totara = paths[o.index % len(paths)].startswith(("/user-items", "/similar-items"))
            ok = o.ok and (not totara or b'"success":true' in o.payload.replace(b" ", b""))
            if ok:
                latencies.append(scheduled_latency(o.due, o.done))
                lags.append((o.sent - o.due) * 1000.0)
            else:
                kinds[o.what] = kinds.get(o.what, 0) + 1
                if len(samples) < 3:
                    samples.append(o.payload[:300].decode("utf-8", "replace"))

    start = signed_open_loop(base_url, totara_key, send_times(rate, seconds), paths, record, threads)
    errors = sum(kinds.values())
    out = summarise(latencies, errors, max(last[0] - start, seconds) if last[0] else seconds, rate, lags)
    if out["requests"]:
        out["client_cpu_ms_per_request"] = round((time.process_time() - cpu0) * 1000.0 / out["requests"], 3)
    if kinds:
        out["error_kinds"], out["error_samples"] = kinds, samples
    return out


def _drive_in_child(kwargs: dict) -> dict:
    return drive(**kwargs)


# ---- SPEED: setup, phases, the server's own log -----------------------------------------------
def speed_paths(kind: str, ratings, movies, cold, held, folder: Path, seed: int) -> dict:
    """Request paths of each phase, shuffled (seed): warm users, users without history, items."""
    rng = random.Random(seed)
    if kind == "movielens":
        warm_users = sorted({int(u) for u in ratings[~np.isin(ratings[:, 0], cold), 0]})
        cold_users = [int(u) for u in cold]
        paths = {"user_items": [user_items_path(u) for u in warm_users],
                 "user_items_cold": [user_items_path(u) for u in cold_users],
                 "similar_items": [similar_items_path(f"{COMPONENT}{m}") for m, _, _ in movies]}
    else:  # the fixture: tenants 0 and 1, every item type
        paths = {"user_items": [], "user_items_cold": [], "similar_items": []}
        for tenant in ("0", "1"):
            with open(folder / f"user_interactions_{tenant}.csv", encoding="utf-8") as f:
                active = sorted({int(r["user_id"]) for r in csv.DictReader(f)})
            with open(folder / f"item_data_{tenant}.csv", encoding="utf-8") as f:
                items = [r["item_id"] for r in csv.DictReader(f)]
            types = [t for t in ITEM_TYPES if any(i.startswith(t) for i in items)]
            paths["user_items"] += [user_items_path(u, item_type=t, tenant=tenant) for u in active for t in types]
            paths["user_items_cold"] += [user_items_path(u, item_type=t, tenant=tenant)
                                         for u in range(9001, 9041) for t in types]
            paths["similar_items"] += [similar_items_path(i, tenant=tenant) for i in items]
    for p in paths.values():
        rng.shuffle(p)
    paths["healthz"] = ["/healthz"]
    return paths


def server_log_summary(log_path: Path) -> dict:
    """Per endpoint: statuses and the app's own duration_ms (p50/p99) from the JSON access lines;
    and how many ERROR lines (tracebacks) the log holds."""
    by_endpoint: dict[str, dict] = {}
    errors, samples = 0, []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if str(entry.get("level", "")).upper() in ("ERROR", "CRITICAL"):
            errors += 1
            if len(samples) < 3:
                samples.append(line[:500])
        if entry.get("event") != "request":
            continue
        e = by_endpoint.setdefault(entry.get("endpoint"), {"statuses": {}, "durations": []})
        e["statuses"][str(entry.get("status"))] = e["statuses"].get(str(entry.get("status")), 0) + 1
        e["durations"].append(float(entry.get("duration_ms") or 0.0))
    out = {name: {"statuses": e["statuses"], "app_p50_ms": _r(percentile(e["durations"], 50), 2),
                  "app_p99_ms": _r(percentile(e["durations"], 99), 2), "app_max_ms": _r(max(e["durations"]), 2)}
           for name, e in by_endpoint.items()}
    return {"endpoints": out, "error_lines": errors, "error_samples": samples}


def busy_processes(limit: int = 8) -> list[str]:
    """The busiest processes on the machine (ps: CPU share over each one's life, elapsed time, command)."""
    try:
        text = subprocess.run(["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split())[:120] for line in text.splitlines()[1: limit + 1]]


def bench_speed(server_url: str, settings, ratings, movies, users, cold, held, args, say) -> dict:
    from app.serving.related import TRENDING_TTL_S
    from harness.databases import drop_redis_prefix, scratch_database
    from harness.measure import settle
    from harness.service import running_service

    result: dict = {"data": args.speed_data, "mode": "full" if args.speed_data == "movielens" else "full (fixture)"}
    key = "bench-" + uuid.uuid4().hex
    prefix = f"{settings.redis_prefix}{uuid.uuid4().hex[:8]}:"
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(server_url, "adaptrec_totarabench"))
        stack.callback(drop_redis_prefix, settings.redis_url, prefix)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-totara-speed-")))
        if args.speed_data == "movielens":
            folder = tmp / "export"
            result["export"] = write_export(folder, ratings, ~held & ~np.isin(ratings[:, 0], cold), movies, users)
        else:
            folder = FIXTURE
        trained = import_and_train(url, folder, "full", args.seed, args.threads)
        result["setup"] = {k: trained[k] for k in ("import_seconds", "train_seconds", "outcomes")}
        say(f"speed: imported and trained ({trained['import_seconds']} s, {trained['train_seconds']} s)")
        paths = speed_paths(args.speed_data, ratings, movies, cold, held, folder, args.seed)
        service = stack.enter_context(running_service(
            url, settings.redis_url, "unused-" + uuid.uuid4().hex, tmp / "gunicorn.log", redis_prefix=prefix,
            workers=args.workers, env={"ADAPTREC_TOTARA_KEY": key, "ADAPTREC_LOG_FORMAT": "json"}))
        base = service.base_url
        say(f"speed: gunicorn ready on {base} ({args.workers} workers)")
        first = {}
        first_cold = time.monotonic()   # the first cold answer; from popularity, it fills the trending cache
        for phase in ("user_items", "user_items_cold", "similar_items"):
            conn = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=30)
            conn.request("GET", paths[phase][0], headers=signed_headers(key))
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            first[phase] = {"path": paths[phase][0], "status": resp.status, "body": body[:200].decode()}
            if resp.status != 200:
                raise SystemExit(f"bench.totara: {paths[phase][0]} answered {resp.status}: {body[:500]!r}")
        result["first_answers"] = first
        result["load_before"] = settle(args.settle_load, args.settle_max, say) if args.settle_max > 0 else loadavg()
        result["busy_processes_before"] = busy_processes()
        dbname = urlsplit(url).path.lstrip("/")
        meter = CpuMeter({"gunicorn_workers": lambda: child_pids(service.proc.pid),
                          "postgres_backends": lambda: pids_matching("postgres:", dbname),
                          "redis": lambda: redis_pids(settings.redis_url)})
        phases = {}
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
            def run(name: str, seconds: float, measure: bool) -> dict:
                if measure:
                    meter.start()
                load0, offset = loadavg(), round(time.monotonic() - first_cold, 1)
                out = ex.submit(_drive_in_child, {"base_url": base, "totara_key": key, "paths": paths[name],
                                                  "rate": args.rate, "seconds": seconds,
                                                  "threads": args.client_threads}).result()
                if measure and out["requests"]:
                    used = meter.stop()
                    out["server_cpu_ms_per_request"] = {k: round(v * 1000.0 / out["requests"], 2)
                                                        for k, v in used.items()}
                    out["load_at_start"] = load0
                    out["started_s_after_first_cold_answer"] = offset
                return out

            for name in ("user_items", "user_items_cold", "similar_items", "healthz"):
                if args.warmup > 0:
                    run(name, args.warmup, False)
                phases[name] = run(name, args.seconds, True)
                say(f"speed: {name} at {args.rate}/s: p50 {phases[name]['p50_ms']} p99 {phases[name]['p99_ms']} ms, "
                    f"{phases[name]['errors']} errors")
        result["phases"] = phases
        result["trending_cache"] = {"ttl_s": TRENDING_TTL_S, "note": "a cold /user-items answer (popularity) is "
                                    "cached per tenant, item type and n for ttl_s from the first cold answer on; a "
                                    "phase whose window covers an expiry pays the trending query in every request that "
                                    "misses meanwhile"}
        result["distinct_paths"] = {k: len(v) for k, v in paths.items()}
        result["load_after"] = loadavg()
        rss = [proc_rss_mb(p) for p in service.workers()]
        result["worker_rss_mb"] = [r for r in rss if r is not None]
        result["server_log"] = server_log_summary(service.log_path)
    result["target"] = {"p99_ms": P99_TARGET_MS, **{
        f"{name}_p99<=25": phases[name]["p99_ms"] is not None and phases[name]["p99_ms"] <= P99_TARGET_MS
        and phases[name]["errors"] == 0 for name in ("user_items", "user_items_cold", "similar_items")}}
    return result


# ---- the run --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.totara", description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true", help="run the quality part (default: both parts)")
    parser.add_argument("--speed", action="store_true", help="run the speed part (default: both parts)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the MovieLens-100k folder")
    parser.add_argument("--modes", nargs="+", default=["full"], choices=("mf", "partial", "full"),
                        help="training modes of the quality part (default: full, Totara's default)")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the job's seed")
    parser.add_argument("--threads", type=int, default=1, help="LightFM threads of the job (1 = reproducible)")
    parser.add_argument("--speed-data", choices=("movielens", "fixture"), default="movielens")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of each speed phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per speed phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each speed phase")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--client-threads", type=int, default=64, help="threads of the load process")
    parser.add_argument("--settle-load", type=float, default=1.0,
                        help="before the speed phases, wait for the 1-minute load to drop below this")
    parser.add_argument("--settle-max", type=float, default=60.0, help="... for at most this many seconds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.quality or args.speed):
        args.quality = args.speed = True

    def say(message: str) -> None:
        print(f"bench.totara: {message}", file=sys.stderr, flush=True)

    from app.config import Settings
    from app.embedded import servers_for

    started = time.perf_counter()
    report: dict = {"date": date.today().isoformat(), "machine": machine(), "load_at_start": loadavg(),
                    "seed": args.seed, "threads": args.threads}
    ratings = movies = users = cold = held = None   # MovieLens: only for the quality part and its speed data
    if args.quality or args.speed_data == "movielens":
        if not (args.data / "u.data").is_file():
            parser.error(f"{args.data}: no MovieLens-100k here (u.data); pass --data")
        ratings, movies, users = read_movielens(args.data)
        cold, held = split(ratings, args.seed)
        report["data"] = os.path.abspath(args.data)
        report["split"] = {"cold_users": len(cold), "cold_share": COLD_USERS, "hold_out_per_user": HOLD_OUT,
                           "held_out_rows": int(held.sum()), "positives": f"ratings >= {MIN_RATING}",
                           "tuned": "nothing: product defaults, so no dev split; the test split is scored once"}
    with servers_for(Settings.from_env()) as settings:
        if args.quality:
            report["quality"] = {mode: bench_quality_mode(settings.database_url, settings, ratings, movies, users,
                                                          cold, held, mode, args, say) for mode in args.modes}
        if args.speed:
            report["speed"] = bench_speed(settings.database_url, settings, ratings, movies, users, cold, held,
                                          args, say)
    report["seconds"] = round(time.perf_counter() - started, 1)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

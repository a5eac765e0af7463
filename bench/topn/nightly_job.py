"""bench.topn's (c): the nightly job's rows, the product's own path on ratings >= 4 and the published
comparison on every rating."""
from __future__ import annotations

import time

import numpy as np

from app.online.engagement import positives_matrix
from bench.topn.data import PUBLISHED_PROTOCOL, rounded
from bench.topn_job import PRODUCT_MIN_RATING, held_out_positives, serving_scores, train_through_job
from jobs.importers.movielens import ROOT_ID
from jobs.training import engagement
from jobs.training.engagement_fit import evaluate


def bench_published_job(ratings: np.ndarray, n_users: int, n_items: int, seed: int, threads: int,
                        same_split: dict) -> dict:
    """(c2) the job's numerical core on every rating as a positive: the published comparison only."""
    users, items = ratings[:, 0] - 1, ratings[:, 1] - 1
    data = engagement.EngagementData([str(u) for u in range(1, n_users + 1)], [str(i) for i in range(1, n_items + 1)],
                                     users.astype(np.int32), items.astype(np.int32))
    result = engagement.train_engagement(data, seed=seed, threads=threads, refit_all=False)
    return {
        "protocol": PUBLISHED_PROTOCOL,
        "positives": "all ratings (1-5 stars)",
        "through": "jobs.training.engagement.train_engagement(refit_all=False) on arrays, no database",
        "model": rounded({k: result.metrics["model"][k] for k in ("precision_at_10", "recall_at_10", "ndcg_at_10",
                                                                   "users")}),
        "popularity": rounded(result.metrics["baseline"]),
        "bench_blend": same_split["blend"],
        "params": result.params, "seconds": round(result.seconds, 1),
        "test_split": "the same held-out pairs as random_80_20 (split_pairs(n, seed, 0.2) over the pairs in u.data "
                      "order); its validation split (10 % of all pairs, seed + 1) and grid (engagement.JOB_GRID) "
                      "are its own",
    }


def bench_product_job(data: str, ratings: np.ndarray, n_users: int, n_items: int, seed: int, threads: int,
                      server_url: str, same_split: dict) -> dict:
    """(c1) the real nightly job on what the product trains on after importing MovieLens: ratings >= 4."""
    positive, held = held_out_positives(ratings, seed)
    trained = train_through_job(data, ratings[~held], server_url, seed, threads)
    kept = positive & ~held
    if trained["counts"]["positives"] != int(kept.sum()):
        raise RuntimeError(f"the job trained on {trained['counts']['positives']} positives, the bench expected "
                           f"{int(kept.sum())} (the imported ratings >= {PRODUCT_MIN_RATING})")
    X = positives_matrix(ratings[kept, 0] - 1, ratings[kept, 1] - 1, n_users, n_items)
    T = positives_matrix(ratings[held, 0] - 1, ratings[held, 1] - 1, n_users, n_items)
    started = time.perf_counter()
    scored = np.flatnonzero(np.diff(T.indptr) > 0)          # ranking_metrics skips the other users
    scores = np.zeros((n_users, n_items))
    scores[scored] = serving_scores(trained["model"], [X.indices[X.indptr[u]:X.indptr[u + 1]] for u in scored],
                                    [str(i) for i in range(1, n_items + 1)])
    score_seconds = time.perf_counter() - started
    popularity = np.tile(np.asarray(X.sum(axis=0)).ravel(), (n_users, 1))
    stored, outcome = trained["hyperparams"], trained["outcome"]
    return {
        "protocol": "PRODUCT: what the service would serve after `adaptrec import --format movielens` and the "
                    "nightly job",
        "positives": f"ratings >= {PRODUCT_MIN_RATING} (the importer's outcome 1); lower ratings are imported too, "
                     "as outcome 0, and are not positives",
        "through": "jobs.importers.movielens into a scratch database, jobs.train.run_training on the root unit "
                   f"'{ROOT_ID}', the stored model scored per user by app.online.scoring.engagement_scores",
        "pairs": {"ratings_imported": int((~held).sum()), "positives_trained": trained["counts"]["positives"],
                  "held_out": int(held.sum())},
        "model": rounded(evaluate(scores, X, T)),
        "popularity": rounded(evaluate(popularity, X, T)),
        "bench_blend": same_split["blend"],
        "job": {"status": outcome.status, "own_held_out": {"model": rounded(outcome.metrics["model"]),
                                                           "popularity": rounded(outcome.metrics["baseline"])},
                "params": {k: stored.get(k) for k in ("l2", "warp", "weight", "foldin_reg", "ease_neighbours")},
                "item_weights": trained["item_weights"]},
        "test_split": "the held-out pairs of random_80_20_rating_ge_4 (split_pairs(n, seed, 0.2) over the ratings "
                      ">= 4 in u.data order), whose blend is bench_blend; training positives excluded from the "
                      "ranking. job.own_held_out is the job's own report: 20 % of what it was given, before its "
                      "refit on all of it",
        "seconds": {"import": round(trained["import_seconds"], 1), "train": round(trained["train_seconds"], 1),
                    "score": round(score_seconds, 1)},
    }

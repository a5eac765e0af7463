"""bench.topn's (d): new movies scored from their features alone, beside random scores and genre
popularity."""
from __future__ import annotations

import os
import time
from dataclasses import asdict

import numpy as np

from app.online.engagement import positives_matrix, warp_scores
from bench.topn.data import per_user_auc, read_items
from jobs.training import features
from jobs.training.engagement import split_pairs
from jobs.training.engagement_fit import WarpConfig

COLD_START_TARGET_AUC = 0.70


def genre_popularity(genre_matrix: np.ndarray, popularity: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(n_items,) mean over each item's genres of the mean popularity of the known items of that genre.

    genre_matrix : (n_items, n_genres) 0/1; popularity : (n_items,) counts (used for known items only);
    known : (n_items,) bool. Items without a genre, or only genres no known item has, score 0.
    """
    G = np.asarray(genre_matrix, dtype=np.float64)
    known_g = G[known]
    per_genre = np.divide(known_g.T @ popularity[known], known_g.sum(axis=0),
                          out=np.zeros(G.shape[1]), where=known_g.sum(axis=0) > 0)
    return np.divide(G @ per_genre, G.sum(axis=1), out=np.zeros(G.shape[0]), where=G.sum(axis=1) > 0)


def bench_item_cold_start(data: str, ratings: np.ndarray, n_users: int, n_items: int, seed: int,
                          threads: int) -> dict:
    from lightfm import LightFM

    started = time.perf_counter()
    items = read_items(os.path.join(data, "u.item"))
    assert len(items) == n_items
    cold = split_pairs(n_items, seed, 0.2)
    warm_idx, cold_idx = np.flatnonzero(~cold), np.flatnonzero(cold)
    users, item_col = ratings[:, 0] - 1, ratings[:, 1] - 1
    is_cold = cold[item_col]
    remap = np.full(n_items, -1)
    remap[warm_idx] = np.arange(len(warm_idx))
    X = positives_matrix(users[~is_cold], remap[item_col[~is_cold]], n_users, len(warm_idx))   # warm columns only
    T = positives_matrix(users[is_cold], item_col[is_cold], n_users, n_items)[:, cold_idx].tocsr()
    config = WarpConfig()            # the nightly job's hybrid settings (engagement._default_params)

    out = {"items": {"train": len(warm_idx), "held_out": len(cold_idx)},
           "pairs": {"train": int((~is_cold).sum()), "held_out": int(is_cold.sum())},
           "users_scored": int((np.diff(T.indptr) > 0).sum()),
           "positives": "all ratings", "user_vectors": "trained (every user is known)",
           "warp": asdict(config)}
    for mode in ("partial", "full"):
        fs = features.item_features(items, mode)
        model = LightFM(loss="warp", no_components=config.no_components, learning_rate=config.learning_rate,
                        item_alpha=config.alpha, user_alpha=config.alpha, max_sampled=config.max_sampled,
                        random_state=seed)
        model.fit(X.tocoo(), item_features=fs.matrix[warm_idx], epochs=config.epochs, num_threads=threads)
        ib, iv = model.get_item_representations(fs.matrix[cold_idx])
        _, uv = model.get_user_representations()
        out[mode] = {"auc": round(per_user_auc(warp_scores(uv, iv, ib), T), 4), "features": fs.matrix.shape[1]}
    genre_names = sorted({g for i in items for g in i["attrs"]["genres"]})
    genre_matrix = np.array([[g in i["attrs"]["genres"] for g in genre_names] for i in items])
    popularity = np.bincount(item_col[~is_cold], minlength=n_items).astype(np.float64)
    by_genre = genre_popularity(genre_matrix, popularity, ~cold)[cold_idx]
    rng = np.random.default_rng(seed)
    out["baselines"] = {"random": round(per_user_auc(rng.random((n_users, len(cold_idx))), T), 4),
                        "genre_popularity": round(per_user_auc(np.tile(by_genre, (n_users, 1)), T), 4)}
    out["target"] = {"auc": COLD_START_TARGET_AUC,
                     "met": all(out[m]["auc"] >= COLD_START_TARGET_AUC for m in ("partial", "full")),
                     "margin": {m: round(out[m]["auc"] - COLD_START_TARGET_AUC, 4) for m in ("partial", "full")}}
    out["notes"] = {"full": "TF-IDF over every title (unsupervised, as the job fits it over all items); titles end "
                             "in the release year, e.g. '(1995)', which becomes a text feature",
                    "genre_popularity": "scores do not depend on the user"}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out

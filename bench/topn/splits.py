"""bench.topn's (a) and (b): ua.base / ua.test as LightFM's MovieLens example scores it, and the random
80/20 split with the bench's own tuning on a validation split, EASE's neighbour cut compared."""
from __future__ import annotations

import os
import time
from dataclasses import asdict

import numpy as np

from app.online.engagement import EngagementModel, blend_scores, ease_scores, fold_in, positives_matrix, warp_scores
from bench.topn.data import PUBLISHED_PROTOCOL, per_user_auc, read_ratings, rounded
from bench.topn_job import held_out_positives
from jobs.training.ease import EASE_NEIGHBOURS, fit_ease, top_k_neighbours
from jobs.training.engagement import split_pairs
from jobs.training.engagement_fit import evaluate, fit_engagement, fit_warp, tune_engagement, warp_parts
from jobs.training.metrics import ranking_metrics

NEIGHBOUR_GRID = (50, 100, 200, 500)


def bench_ua(data: str, n_users: int, n_items: int, seed: int, threads: int, ease_l2: float) -> dict:
    from lightfm import LightFM
    from lightfm.evaluation import auc_score, precision_at_k

    base, test = read_ratings(os.path.join(data, "ua.base")), read_ratings(os.path.join(data, "ua.test"))
    X = positives_matrix(base[:, 0] - 1, base[:, 1] - 1, n_users, n_items)
    T = positives_matrix(test[:, 0] - 1, test[:, 1] - 1, n_users, n_items)
    model = LightFM(learning_rate=0.05, loss="warp", random_state=seed)
    model.fit_partial(X.tocoo(), epochs=10, num_threads=threads)
    ib, iv = model.get_item_representations()
    ub, uv = model.get_user_representations()
    s = uv @ iv.T + ib[None, :] + ub[:, None]
    relevant = np.split(T.indices, T.indptr[1:-1])
    out = {"warp": {
        "config": "LightFM(learning_rate=0.05, loss='warp') defaults (10 components, max_sampled 10, no "
                  "regularisation), fit_partial 10 epochs",
        "lightfm_protocol": {**rounded(ranking_metrics(s, relevant, None, 10)), "auc": round(per_user_auc(s, T), 4),
                             "lightfm_evaluation_precision_at_10":
                                 round(float(precision_at_k(model, T, k=10, num_threads=threads).mean()), 4),
                             "lightfm_evaluation_auc": round(float(auc_score(model, T, num_threads=threads).mean()), 4),
                             "published": {"precision_at_10": 0.11, "auc": 0.90}},
        "train_excluded": {**rounded(evaluate(s, X, T)), "auc": round(per_user_auc(s, T, X), 4)}}}
    e = ease_scores(X, fit_ease(X, ease_l2))
    out["ease"] = {"l2": ease_l2, "note": "l2 chosen on the random split's validation, not on ua.test",
                   "lightfm_protocol": {**rounded(ranking_metrics(e, relevant, None, 10)),
                                        "auc": round(per_user_auc(e, T), 4)},
                   "train_excluded": {**rounded(evaluate(e, X, T)), "auc": round(per_user_auc(e, T, X), 4)}}
    return out


def bench_random(ratings: np.ndarray, min_rating: int, n_users: int, n_items: int, seed: int, threads: int) -> dict:
    positive, held = held_out_positives(ratings, seed, 0.2, min_rating)
    r = ratings[positive]
    users, items = r[:, 0] - 1, r[:, 1] - 1
    test = held[positive]
    train_idx = np.flatnonzero(~test)
    val = np.zeros(len(users), dtype=bool)
    val[train_idx[split_pairs(len(train_idx), seed + 1, 0.125)]] = True
    fit = ~test & ~val

    def m(rows):
        return positives_matrix(users[rows], items[rows], n_users, n_items)

    tuned = tune_engagement(m(fit), m(val), seed=seed, threads=threads)
    neighbours = ease_neighbours(m(fit), m(val), tuned, seed, threads)
    X, T = m(~test), m(test)
    started = time.perf_counter()
    w, reg = tuned["weight"], tuned["foldin_reg"]
    both, uv = fit_engagement(X, tuned["l2"], tuned["warp"], 0.5, reg, seed, threads)  # 0.5: fit both parts
    top_k = top_k_neighbours(both.B, EASE_NEIGHBOURS)
    ease = ease_scores(X, both.B)
    warp = warp_scores(uv, both.item_vectors, both.item_biases)
    warp_foldin = warp_scores(fold_in(X, both.item_vectors, both.item_biases, reg), both.item_vectors,
                              both.item_biases)
    exclude = X.toarray() > 0
    popularity = np.tile(np.asarray(X.sum(axis=0)).ravel(), (n_users, 1))
    production = EngagementModel(top_k, both.item_vectors, both.item_biases, reg, w)
    dense = EngagementModel(both.B, both.item_vectors, both.item_biases, reg, w)
    results = {
        "popularity": evaluate(popularity, X, T),
        "warp": evaluate(warp, X, T),
        "warp_foldin": evaluate(warp_foldin, X, T),
        "ease": evaluate(ease, X, T),
        "ease_top_k": evaluate(ease_scores(X, top_k), X, T),
        "blend": evaluate(production.score_rows(X), X, T),
        "blend_dense_ease": evaluate(dense.score_rows(X), X, T),
        "blend_trained_vectors": evaluate(blend_scores(ease, warp, w, exclude), X, T),
    }
    return {
        "positives": f"ratings >= {min_rating}" if min_rating > 1 else "all ratings",
        "protocol": PUBLISHED_PROTOCOL if min_rating <= 1 else
        f"the product's positives (ratings >= {min_rating}); the bench's own full search",
        "pairs": {"train": int((~test).sum()), "test": int(test.sum()), "validation_fit": int(fit.sum()),
                  "validation": int(val.sum())},
        **{k: rounded(v) for k, v in results.items()},
        "selected": {"ease_l2": tuned["l2"], "warp": asdict(tuned["warp"]), "foldin_reg": reg, "blend_weight": w},
        "ease_neighbours": neighbours,
        "notes": {"warp": "trained user vectors", "warp_foldin": "user vectors folded in from positives (topn.fold_in)",
                  "ease": "dense n_items x n_items weights",
                  "ease_top_k": f"each item's top {EASE_NEIGHBOURS} source items (the job's default)",
                  "blend": f"EngagementModel.score_rows: (1-w) z(ease_top_k) + w z(warp_foldin), w = {w} (validation)",
                  "blend_dense_ease": "the same blend with dense EASE (what was stored before issue 15)",
                  "blend_trained_vectors": "dense EASE blended with the trained WARP user vectors"},
        "validation_search": [rounded(s) for s in tuned["search"]],
        "tuning_seconds": round(tuned["seconds"], 1),
        "refit_and_score_seconds": round(time.perf_counter() - started, 1),
    }


def ease_neighbours(X_fit, X_val, tuned: dict, seed: int, threads: int) -> dict:
    """Validation figures of EASE alone and of the blend with dense EASE and with each item's top k
    source items, k in NEIGHBOUR_GRID; the tuned l2, WARP config, fold-in penalty and weight."""
    started = time.perf_counter()
    B = fit_ease(X_fit, tuned["l2"])
    iv, ib, _ = warp_parts(fit_warp(X_fit, tuned["warp"], seed, threads))
    warp = warp_scores(fold_in(X_fit, iv, ib, tuned["foldin_reg"]), iv, ib)
    exclude = X_fit.toarray() > 0
    validation = {}
    for k in (None, *NEIGHBOUR_GRID):
        e = ease_scores(X_fit, B if k is None else top_k_neighbours(B, k))
        validation["dense" if k is None else str(k)] = {
            "ease": rounded(evaluate(e, X_fit, X_val)),
            "blend": rounded(evaluate(blend_scores(e, warp, tuned["weight"], exclude), X_fit, X_val))}
    best = max(NEIGHBOUR_GRID, key=lambda k: (validation[str(k)]["blend"]["precision_at_10"],
                                              validation[str(k)]["blend"]["ndcg_at_10"], -k))
    return {"validation": validation, "by_validation": best, "default": EASE_NEIGHBOURS,
            "weight": tuned["weight"], "seconds": round(time.perf_counter() - started, 1)}

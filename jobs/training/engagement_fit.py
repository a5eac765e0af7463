"""Fitting the engagement (top-N) model family: WARP LightFM, EASE and the per-user standardised
blend of the two, from a binary user x item matrix of positives; the tuner and its evaluation.
Pure functions, no database. Scoring a fitted model (`EngagementModel`, `fold_in`, the blend) is serving
code and lives in app.online.engagement, which this module imports, never the reverse.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from app.online.engagement import EngagementModel, blend_scores, ease_scores, fold_in, warp_scores
from jobs.training.ease import fit_ease, top_k_neighbours
from jobs.training.metrics import ranking_metrics


@dataclass(frozen=True)
class WarpConfig:
    no_components: int = 48
    learning_rate: float = 0.03
    alpha: float = 1e-5              # item_alpha = user_alpha
    max_sampled: int = 30
    epochs: int = 30


def new_warp(config: WarpConfig, seed: int) -> LightFM:
    return LightFM(loss="warp", no_components=config.no_components, learning_rate=config.learning_rate,
                   item_alpha=config.alpha, user_alpha=config.alpha, max_sampled=config.max_sampled,
                   random_state=seed)


def fit_warp(X: sp.csr_matrix, config: WarpConfig, seed: int = 0, threads: int = 1) -> LightFM:
    """WARP LightFM on the positives of X. Deterministic for a seed only with threads=1."""
    model = new_warp(config, seed)
    model.fit(sp.coo_matrix(X), epochs=config.epochs, num_threads=threads)
    return model


def warp_parts(model: LightFM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item_vectors (n_items, d), item_biases (n_items,), user_vectors (n_users, d)), float32."""
    ib, iv = model.get_item_representations()
    _, uv = model.get_user_representations()
    return iv.astype(np.float32), ib.astype(np.float32), uv.astype(np.float32)


def fit_easek(X: sp.csr_matrix, l2: float, neighbours: int | None):
    """EASE's weights as served: each item's top `neighbours` source items (CSR), or the dense
    (n_items, n_items) array when neighbours is None (benches comparing with the dense model)."""
    B = fit_ease(X, l2)
    return B if neighbours is None else top_k_neighbours(B, neighbours)


def fit_engagement(X: sp.csr_matrix, l2: float | None, warp: WarpConfig | None, weight: float,
                   foldin_reg: float = 5.0, seed: int = 0, threads: int = 1, neighbours: int | None = None
                   ) -> tuple[EngagementModel, np.ndarray | None]:
    """Fit the parts the blend needs; returns the model and the trained WARP user vectors (or None).

    X : (n_users, n_items) binary CSR; l2 : EASE penalty (None: no EASE, weight must be 1);
    warp : WARP config (None: no WARP, weight must be 0); neighbours : EASE's top-k per item
    (`fit_easek`; None: dense). EASE is fitted when weight < 1, WARP when weight > 0.
    """
    B = fit_easek(X, l2, neighbours) if l2 is not None and weight < 1 else None
    iv = ib = uv = None
    if warp is not None and weight > 0:
        iv, ib, uv = warp_parts(fit_warp(X, warp, seed, threads))
    params = {"l2": l2, "warp": asdict(warp) if warp else None, "weight": weight, "foldin_reg": foldin_reg,
              "ease_neighbours": neighbours}
    return EngagementModel(B, iv, ib, foldin_reg, weight, params), uv


def evaluate(scores: np.ndarray, X_train: sp.csr_matrix, X_held: sp.csr_matrix, k: int = 10) -> dict:
    """metrics.ranking_metrics with X_held's rows as relevant items and X_train's excluded."""
    return ranking_metrics(scores, np.split(X_held.indices, X_held.indptr[1:-1]),
                           np.split(X_train.indices, X_train.indptr[1:-1]), k=k)


GRID = {"l2": (100.0, 200.0, 300.0, 500.0, 800.0),
        "warp": (WarpConfig(32, 0.05), WarpConfig(64, 0.05), WarpConfig(48, 0.03)),
        "epochs": (10, 20, 30, 45),
        "foldin_reg": (2.0, 5.0, 10.0),
        "weight": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}


def tune_engagement(X_fit: sp.csr_matrix, X_val: sp.csr_matrix, grid: dict = GRID, seed: int = 0, threads: int = 1,
                    k: int = 10, neighbours: int | None = None, rows: np.ndarray | None = None) -> dict:
    """Choose EASE's l2, a WARP config and epoch count, the fold-in penalty and the blend weight on
    validation, one after the other, each by validation precision@k (NDCG@k breaks ties).

    X_fit, X_val : (n_users, n_items) binary CSR with disjoint positives; neighbours : EASE's top-k
    per item as it will be served (None: dense), so l2 and the weight are chosen for it. WARP is chosen with trained
    user vectors, the fold-in penalty by folding in every user's X_fit row, and the weight on the
    blend of the chosen EASE with the folded-in WARP (what `EngagementModel.score` computes).
    rows : the users (row indices) the choices are evaluated on (None: all); every fit uses all.
    Returns {"l2", "warp" (WarpConfig), "foldin_reg", "weight", "search" (list of dicts), "seconds"}.
    """
    started = time.perf_counter()
    search = []
    E_fit, E_val = (X_fit, X_val) if rows is None else (X_fit[rows], X_val[rows])

    def better(m, best):
        return best is None or (m[f"precision_at_{k}"], m[f"ndcg_at_{k}"]) > (best[0][f"precision_at_{k}"],
                                                                              best[0][f"ndcg_at_{k}"])

    best_ease = None
    for l2 in grid["l2"]:
        s = ease_scores(E_fit, fit_easek(X_fit, l2, neighbours))
        m = evaluate(s, E_fit, E_val, k)
        search.append({"model": "ease", "l2": l2, **m})
        if better(m, best_ease):
            best_ease = (m, l2, s)
    best_warp = None
    coo = sp.coo_matrix(X_fit)
    for config in grid["warp"]:
        model, done = new_warp(config, seed), 0
        for e in sorted(grid["epochs"]):
            model.fit_partial(coo, epochs=e - done, num_threads=threads)   # same as fit(epochs=e)
            done = e
            iv, ib, uv = warp_parts(model)
            m = evaluate(warp_scores(uv if rows is None else uv[rows], iv, ib), E_fit, E_val, k)
            chosen = WarpConfig(config.no_components, config.learning_rate, config.alpha, config.max_sampled, e)
            search.append({"model": "warp", **asdict(chosen), **m})
            if better(m, best_warp):
                best_warp = (m, chosen, iv, ib)
    best_reg = None
    _, _, iv, ib = best_warp
    for reg in grid["foldin_reg"]:
        s = warp_scores(fold_in(E_fit, iv, ib, reg), iv, ib)
        m = evaluate(s, E_fit, E_val, k)
        search.append({"model": "warp_foldin", "foldin_reg": reg, **m})
        if better(m, best_reg):
            best_reg = (m, reg, s)
    best_weight = None
    exclude = E_fit.toarray() > 0
    for w in grid["weight"]:
        m = evaluate(blend_scores(best_ease[2], best_reg[2], w, exclude), E_fit, E_val, k)
        search.append({"model": "blend_foldin", "weight": w, **m})
        if better(m, best_weight):
            best_weight = (m, w)
    return {"l2": best_ease[1], "warp": best_warp[1], "foldin_reg": best_reg[1], "weight": best_weight[1],
            "search": search, "seconds": time.perf_counter() - started}

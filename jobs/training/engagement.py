"""Engagement models (views, likes, completions, ratings; Totara's 0/1 values) for top-N.

mf mode: the blend of app.online.topn: EASE (a closed-form item model) and WARP LightFM with
the user's vector folded in from their positives, mixed per user after standardising; EASE's
penalty, WARP's epochs and the blend weight are tuned on a validation split. EASE keeps an
n_items x n_items matrix, so above EASE_MAX_ITEMS items the model is WARP alone.
partial / full modes: WARP LightFM with item and user features (so items known only by their
metadata and text still get vectors), no EASE; its dimension and epochs tuned on validation, as
Totara's engine tunes them (HYBRID_GRID).
Evaluation: a random 20 % of positive pairs held out (seed), precision/recall/NDCG@10 beside
popularity, training items excluded. Pure numpy/scipy/LightFM: no SQL (that is engagement_job).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from app.online.fit import prior_from_users
from app.online.topn import TopNModel, fold_in, positives_matrix
from jobs.training import features
from jobs.training.topn import WarpConfig, evaluate, fit_topn, fit_warp, tune_topn, warp_parts

EASE_MAX_ITEMS = 5000
# The nightly job's grid: a subset of bench.topn's full search that kept its winners on MovieLens.
JOB_GRID = {"l2": (100.0, 300.0, 800.0), "warp": (WarpConfig(48, 0.03),), "epochs": (10, 20, 30),
            "foldin_reg": (5.0,), "weight": (0.0, 0.3, 0.5, 0.7, 0.9)}
# The hybrid modes' grid: Totara's engine tunes "the lateral dimension and the number of epochs".
HYBRID_GRID = {"no_components": (16, 32, 48), "epochs": (10, 20, 30)}


@dataclass
class EngagementData:
    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray            # (n,) int32 positive pairs
    items: np.ndarray            # (n,) int32
    item_features: features.FeatureSet | None = None
    user_features: features.FeatureSet | None = None

    def matrix(self, rows: np.ndarray | None = None) -> sp.csr_matrix:
        rows = np.ones(len(self.users), dtype=bool) if rows is None else rows
        return positives_matrix(self.users[rows], self.items[rows], len(self.user_ids), len(self.item_ids))


@dataclass
class EngagementResult:
    model: TopNModel             # item vectors / biases always set (WARP); B when EASE is used
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    params: dict
    metrics: dict
    search: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def split_pairs(n: int, seed: int, fraction: float) -> np.ndarray:
    """Boolean mask of held-out pairs: a random `fraction` of them, fixed by seed."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(n * fraction))]] = True
    return mask


def _fit_hybrid_warp(data: EngagementData, X: sp.csr_matrix, config: WarpConfig, seed: int, threads: int
                     ) -> TopNModel:
    model = LightFM(loss="warp", no_components=config.no_components, learning_rate=config.learning_rate,
                    item_alpha=config.alpha, user_alpha=config.alpha, max_sampled=config.max_sampled,
                    random_state=seed)
    item_x = data.item_features.matrix if data.item_features else None
    user_x = data.user_features.matrix if data.user_features else None
    model.fit(sp.coo_matrix(X), user_features=user_x, item_features=item_x, epochs=config.epochs,
              num_threads=threads)
    ib, iv = model.get_item_representations(item_x)
    return TopNModel(None, iv.astype(np.float32), ib.astype(np.float32), foldin_reg=5.0, weight=1.0,
                     params={"warp": asdict(config), "weight": 1.0},
                     user_tokens=user_token_table(model, data.user_features))


def user_token_table(model: LightFM, user_features) -> dict | None:
    """The embeddings of the users' metadata tokens (lang:fr, country:DE, ...; not ids, not text), so
    the service can build a user it has no positives for from their metadata, as LightFM builds a
    hybrid user (app.online.metadata.vector_from_features). None without metadata tokens."""
    if user_features is None:
        return None
    columns = [c for c, name in enumerate(user_features.names) if not name.startswith(("id:", "text:"))]
    if not columns:
        return None
    return {"tokens": [user_features.names[c] for c in columns],
            "vectors": model.user_embeddings[columns].astype(np.float32).round(6).tolist(),
            "biases": model.user_biases[columns].astype(np.float32).round(6).tolist()}


def tune_hybrid(data: EngagementData, X_fit: sp.csr_matrix, X_val: sp.csr_matrix, base: WarpConfig, seed: int,
                threads: int, grid: dict = HYBRID_GRID, k: int = 10) -> tuple[WarpConfig, list[dict]]:
    """The hybrid WARP's dimension and epoch count with the best validation precision@k (NDCG@k
    breaks ties), users scored as the service scores them (folded in from their X_fit positives).
    Epochs are tried by continuing one fit, so each dimension costs one fit of max(epochs)."""
    item_x = data.item_features.matrix if data.item_features else None
    user_x = data.user_features.matrix if data.user_features else None
    coo, search, best = sp.coo_matrix(X_fit), [], None
    for dim in grid["no_components"]:
        config = WarpConfig(dim, base.learning_rate, base.alpha, base.max_sampled, max(grid["epochs"]))
        model = LightFM(loss="warp", no_components=dim, learning_rate=config.learning_rate, item_alpha=config.alpha,
                        user_alpha=config.alpha, max_sampled=config.max_sampled, random_state=seed)
        done = 0
        for epochs in sorted(grid["epochs"]):
            model.fit_partial(coo, user_features=user_x, item_features=item_x, epochs=epochs - done,
                              num_threads=threads)
            done = epochs
            ib, iv = model.get_item_representations(item_x)
            scores = TopNModel(None, iv.astype(np.float32), ib.astype(np.float32), weight=1.0).score_rows(X_fit)
            m = evaluate(scores, X_fit, X_val, k)
            search.append({"model": "hybrid_warp", "no_components": dim, "epochs": epochs, **m})
            key = (m[f"precision_at_{k}"], m[f"ndcg_at_{k}"])
            if best is None or key > best[0]:
                best = (key, WarpConfig(dim, config.learning_rate, config.alpha, config.max_sampled, epochs))
    return best[1], search


def _fit(data: EngagementData, X: sp.csr_matrix, params: dict, seed: int, threads: int) -> TopNModel:
    warp = WarpConfig(**params["warp"])
    if data.item_features is not None:
        return _fit_hybrid_warp(data, X, warp, seed, threads)
    model, _ = fit_topn(X, params["l2"], warp, params["weight"], params["foldin_reg"], seed, threads)
    if model.item_vectors is None:  # EASE alone won; WARP vectors still serve related items and the prior
        model.item_vectors, model.item_biases, _ = warp_parts(fit_warp(X, warp, seed, threads))
    return model


def _default_params(grid: dict, weight: float, l2=None) -> dict:
    c = grid["warp"][0]
    return {"l2": l2, "warp": asdict(WarpConfig(c.no_components, c.learning_rate, c.alpha, c.max_sampled,
                                                max(grid["epochs"]))),
            "foldin_reg": grid["foldin_reg"][0], "weight": weight}


def train_engagement(data: EngagementData, seed: int = 0, threads: int = 2, refit_all: bool = True,
                     grid: dict = JOB_GRID) -> EngagementResult:
    """Tune on validation pairs, report on held-out pairs, then refit on all of them."""
    started = time.perf_counter()
    test = split_pairs(len(data.users), seed, 0.2)
    rest = ~test
    val = rest & split_pairs(len(data.users), seed + 1, 0.125)  # 10 % of all pairs
    X_rest, X_test = data.matrix(rest), data.matrix(test)

    search: list[dict] = []
    if data.item_features is not None:
        params = _default_params(grid, weight=1.0)  # hybrid WARP alone: its dimension and epochs tuned
        warp, search = tune_hybrid(data, data.matrix(rest & ~val), data.matrix(val), WarpConfig(**params["warp"]),
                                   seed, threads)
        params["warp"] = asdict(warp)
    elif len(data.item_ids) > EASE_MAX_ITEMS:
        params = _default_params(grid, weight=1.0)  # WARP alone, at the grid's default settings
    else:
        tuned = tune_topn(data.matrix(rest & ~val), data.matrix(val), grid, seed, threads)
        params = {"l2": tuned["l2"], "warp": asdict(tuned["warp"]), "foldin_reg": tuned["foldin_reg"],
                  "weight": tuned["weight"]}
        search = tuned["search"]

    model = _fit(data, X_rest, params, seed, threads)
    popularity = np.asarray(X_rest.sum(axis=0)).ravel().astype(np.float64)
    metrics = {"model": evaluate(model.score_rows(X_rest), X_rest, X_test),
               "baseline": evaluate(np.tile(popularity, (X_rest.shape[0], 1)), X_rest, X_test),
               "baseline_name": "popularity"}
    X_all = data.matrix()
    if refit_all:
        model = _fit(data, X_all, params, seed, threads)
    # The population prior over [user vector, bias]: folded-in vectors of every known user.
    uv = fold_in(X_all, model.item_vectors, model.item_biases, model.foldin_reg)
    mean, cov = prior_from_users(uv, np.zeros(len(uv)))
    return EngagementResult(model, mean, cov, params, metrics, search, time.perf_counter() - started)

"""Engagement models (views, likes, completions, ratings; Totara's 0/1 values) for top-N.

mf mode: the blend of app.online.engagement: EASE (a closed-form item model, each item keeping its top
`neighbours` source items, jobs.training.ease.top_k_neighbours) and WARP LightFM with the user's
vector folded in from their positives, mixed per user after standardising; EASE's penalty, WARP's
epochs and the blend weight are tuned on a validation split, with EASE cut to its top-k as it is
served. Fitting EASE inverts an n_items x n_items matrix, so above EASE_MAX_ITEMS items the model
is WARP alone.
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

from app.online.engagement import EngagementModel, fold_in, positives_matrix
from app.online.fit import prior_from_users
from app.online.metadata import fit_metadata_prior
from jobs.training import features
from jobs.training.ease import EASE_NEIGHBOURS
from jobs.training.engagement_fit import WarpConfig, evaluate, fit_engagement, fit_warp, tune_engagement, warp_parts

EASE_MAX_ITEMS = 5000
# Users the job evaluates and tunes on, and folds in for the population prior, at most: a random
# sample of them above this (every fit still uses every user). Precision@10 on 5,000 users has a
# standard error near 0.005; scoring 100,000 users x 10,000 items would be gigabytes per pass.
EVAL_USERS = 5000
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
    model: EngagementModel             # item vectors / biases always set (WARP); B when EASE is used
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
                     ) -> EngagementModel:
    model = LightFM(loss="warp", no_components=config.no_components, learning_rate=config.learning_rate,
                    item_alpha=config.alpha, user_alpha=config.alpha, max_sampled=config.max_sampled,
                    random_state=seed)
    item_x = data.item_features.matrix if data.item_features else None
    # Users by identity only: the service folds a user in from their current positives, and a WARP
    # trained with user features ranks those folded-in users far worse (MovieLens as a Totara
    # export, full mode: precision@10 0.146 with user features, 0.236 without). Their metadata
    # serves the users without positives instead (cold_user_shifts).
    model.fit(sp.coo_matrix(X), item_features=item_x, epochs=config.epochs, num_threads=threads)
    ib, iv = model.get_item_representations(item_x)
    return EngagementModel(None, iv.astype(np.float32), ib.astype(np.float32), foldin_reg=5.0, weight=1.0,
                     params={"warp": asdict(config), "weight": 1.0})


def cold_user_shifts(user_vectors: np.ndarray, tokens: tuple[list[str], np.ndarray], ridge: float = 10.0) -> dict:
    """How each metadata token (lang:fr, occupation:writer, ...; `tokens`: features.token_indicators
    of the users) moves a user's vector from the mean: ridge regression of the users' folded-in
    vectors on their 0/1 tokens (app.online.metadata.fit_metadata_prior, as the practice models'
    prior). The service scores a user without positives with mean + the shifts of their tokens."""
    names, indicators = tokens
    shifts = fit_metadata_prior(user_vectors.astype(np.float64), indicators, ridge)
    return {"tokens": names, "shifts": shifts.round(6).tolist(), "mean": user_vectors.mean(axis=0).round(6).tolist()}


COLD_RIDGES = (1.0, 10.0, 100.0, 1000.0)


def choose_cold_users(model: EngagementModel, data: EngagementData, X: sp.csr_matrix, seed: int, share: float = 0.2,
                      k: int = 10, rows: np.ndarray | None = None) -> dict | None:
    """Whether users without positives are better ranked from their metadata than by popularity,
    and with which ridge: a seeded `share` of the users with positives in X play new users (their
    positives in X are what they go on to like; nothing is excluded), the shifts are regressed on the
    others' folded-in vectors, and popularity counts the others' positives. Metadata is used only
    when its best ridge beats popularity's precision@k by two standard errors of the paired per-user
    difference: a tie, or a gain within noise, leaves those users to popularity. None without
    metadata tokens."""
    tokens = features.token_indicators(data.user_features, len(data.user_ids))
    if tokens is None:
        return None
    if rows is not None:   # the job's sample of users (eval_rows)
        X, tokens = X[rows], (tokens[0], tokens[1][rows])
    active = np.flatnonzero(np.diff(X.indptr) > 0)
    rng = np.random.default_rng(seed + 2)
    cold = np.zeros(X.shape[0], dtype=bool)
    cold[rng.choice(active, size=max(1, int(len(active) * share)), replace=False)] = True
    known = np.flatnonzero(~cold & (np.diff(X.indptr) > 0))
    uv = fold_in(X[known], model.item_vectors, model.item_biases, model.foldin_reg)
    held, nothing = X[cold], sp.csr_matrix((int(cold.sum()), X.shape[1]), dtype=X.dtype)
    popularity = np.asarray(X[known].sum(axis=0)).ravel().astype(np.float64)
    base = evaluate(np.tile(popularity, (held.shape[0], 1)), nothing, held, k)
    tried, indicators = [], tokens[1]
    base_hits = _hits(np.tile(popularity, (held.shape[0], 1)), held, k)
    best = None
    for ridge in COLD_RIDGES:
        shifts = fit_metadata_prior(uv.astype(np.float64), indicators[known], ridge)
        users = uv.mean(axis=0) + indicators[cold] @ shifts
        scores = users @ model.item_vectors.T.astype(np.float64) + model.item_biases
        tried.append({"ridge": ridge, **evaluate(scores, nothing, held, k)})
        hits = _hits(scores, held, k)
        if best is None or hits.mean() > best[1].mean():
            best = (ridge, hits)
    gain = (best[1] - base_hits) / k
    se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
    return {"users": int(cold.sum()), "popularity": base, "metadata": tried, "ridge": best[0],
            "gain": round(float(gain.mean()), 5), "se": round(float(se), 5), "used": bool(gain.mean() > 2 * se)}


def _hits(scores: np.ndarray, held: sp.csr_matrix, k: int) -> np.ndarray:
    """Per user (row): how many of the top k by `scores` are among the row's items of `held`."""
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return np.array([len(set(t.tolist()) & set(held.indices[held.indptr[r]:held.indptr[r + 1]].tolist()))
                     for r, t in enumerate(top)], dtype=np.float64)


def tune_hybrid(data: EngagementData, X_fit: sp.csr_matrix, X_val: sp.csr_matrix, base: WarpConfig, seed: int,
                threads: int, grid: dict = HYBRID_GRID, k: int = 10, rows: np.ndarray | None = None
                ) -> tuple[WarpConfig, list[dict]]:
    """The hybrid WARP's dimension and epoch count with the best validation precision@k (NDCG@k
    breaks ties), users scored as the service scores them (folded in from their X_fit positives).
    Epochs are tried by continuing one fit, so each dimension costs one fit of max(epochs)."""
    item_x = data.item_features.matrix if data.item_features else None
    coo, search, best = sp.coo_matrix(X_fit), [], None
    E_fit, E_val = (X_fit, X_val) if rows is None else (X_fit[rows], X_val[rows])
    for dim in grid["no_components"]:
        config = WarpConfig(dim, base.learning_rate, base.alpha, base.max_sampled, max(grid["epochs"]))
        model = LightFM(loss="warp", no_components=dim, learning_rate=config.learning_rate, item_alpha=config.alpha,
                        user_alpha=config.alpha, max_sampled=config.max_sampled, random_state=seed)
        done = 0
        for epochs in sorted(grid["epochs"]):
            model.fit_partial(coo, item_features=item_x, epochs=epochs - done, num_threads=threads)
            done = epochs
            ib, iv = model.get_item_representations(item_x)
            scores = EngagementModel(None, iv.astype(np.float32), ib.astype(np.float32), weight=1.0).score_rows(E_fit)
            m = evaluate(scores, E_fit, E_val, k)
            search.append({"model": "hybrid_warp", "no_components": dim, "epochs": epochs, **m})
            key = (m[f"precision_at_{k}"], m[f"ndcg_at_{k}"])
            if best is None or key > best[0]:
                best = (key, WarpConfig(dim, config.learning_rate, config.alpha, config.max_sampled, epochs))
    return best[1], search


def _fit(data: EngagementData, X: sp.csr_matrix, params: dict, seed: int, threads: int) -> EngagementModel:
    warp = WarpConfig(**params["warp"])
    if data.item_features is not None:
        return _fit_hybrid_warp(data, X, warp, seed, threads)
    model, _ = fit_engagement(X, params["l2"], warp, params["weight"], params["foldin_reg"], seed, threads,
                        params.get("ease_neighbours"))
    if model.item_vectors is None:  # EASE alone won; WARP vectors still serve related items and the prior
        model.item_vectors, model.item_biases, _ = warp_parts(fit_warp(X, warp, seed, threads))
    return model


def _default_params(grid: dict, weight: float, l2=None) -> dict:
    c = grid["warp"][0]
    return {"l2": l2, "warp": asdict(WarpConfig(c.no_components, c.learning_rate, c.alpha, c.max_sampled,
                                                max(grid["epochs"]))),
            "foldin_reg": grid["foldin_reg"][0], "weight": weight}


def eval_rows(n_users: int, seed: int, cap: int | None = None) -> np.ndarray | None:
    """The users (sorted row indices) a unit's engagement model is tuned and evaluated on, and
    whose folded-in vectors make its prior: all (None) up to `cap` (EVAL_USERS), else a seeded sample."""
    cap = EVAL_USERS if cap is None else cap
    if n_users <= cap:
        return None
    return np.sort(np.random.default_rng(seed + 3).choice(n_users, size=cap, replace=False))


def train_engagement(data: EngagementData, seed: int = 0, threads: int = 2, refit_all: bool = True,
                     grid: dict = JOB_GRID, neighbours: int | None = EASE_NEIGHBOURS) -> EngagementResult:
    """Tune on validation pairs, report on held-out pairs, then refit on all of them.

    neighbours : source items EASE keeps per item (the stored top-k); None keeps it dense (benches).
    """
    started = time.perf_counter()
    test = split_pairs(len(data.users), seed, 0.2)
    rest = ~test
    val = rest & split_pairs(len(data.users), seed + 1, 0.125)  # 10 % of all pairs
    X_rest, X_test = data.matrix(rest), data.matrix(test)
    rows = eval_rows(len(data.user_ids), seed)   # None: every user

    search: list[dict] = []
    if data.item_features is not None:
        params = _default_params(grid, weight=1.0)  # hybrid WARP alone: its dimension and epochs tuned
        warp, search = tune_hybrid(data, data.matrix(rest & ~val), data.matrix(val), WarpConfig(**params["warp"]),
                                   seed, threads, rows=rows)
        params["warp"] = asdict(warp)
    elif len(data.item_ids) > EASE_MAX_ITEMS:
        params = _default_params(grid, weight=1.0)  # WARP alone, at the grid's default settings
    else:
        tuned = tune_engagement(data.matrix(rest & ~val), data.matrix(val), grid, seed, threads, neighbours=neighbours,
                          rows=rows)
        params = {"l2": tuned["l2"], "warp": asdict(tuned["warp"]), "foldin_reg": tuned["foldin_reg"],
                  "weight": tuned["weight"], "ease_neighbours": neighbours}
        search = tuned["search"]

    model = _fit(data, X_rest, params, seed, threads)
    popularity = np.asarray(X_rest.sum(axis=0)).ravel().astype(np.float64)
    E_rest, E_test = (X_rest, X_test) if rows is None else (X_rest[rows], X_test[rows])
    metrics = {"model": evaluate(model.score_rows(E_rest), E_rest, E_test),
               "baseline": evaluate(np.tile(popularity, (E_rest.shape[0], 1)), E_rest, E_test),
               "baseline_name": "popularity"}
    if rows is not None:
        metrics["evaluated_users"] = len(rows)
    cold = choose_cold_users(model, data, X_rest, seed, rows=rows) if data.item_features is not None else None
    if cold:
        metrics["cold_users"] = cold
    X_all = data.matrix()
    if refit_all:
        model = _fit(data, X_all, params, seed, threads)
    # The population prior over [user vector, bias]: folded-in vectors of every known user.
    uv = fold_in(X_all if rows is None else X_all[rows], model.item_vectors, model.item_biases, model.foldin_reg)
    if cold and cold["used"]:
        names, indicators = features.token_indicators(data.user_features, len(data.user_ids))
        model.user_tokens = cold_user_shifts(uv, (names, indicators if rows is None else indicators[rows]),
                                             ridge=cold["ridge"])
    mean, cov = prior_from_users(uv, np.zeros(len(uv)))
    return EngagementResult(model, mean, cov, params, metrics, search, time.perf_counter() - started)

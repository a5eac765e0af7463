"""Engagement models (views, likes, completions; Totara's 0/1 values): LightFM with WARP loss
for top-N, evaluated on a random held-out split of positive pairs against popularity."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from app import modelstore
from app import queries as q
from app.online.fit import prior_from_users
from jobs.training import features
from jobs.training.metrics import ranking_metrics


@dataclass
class EngagementData:
    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray            # (n,) int32 positive pairs
    items: np.ndarray            # (n,) int32
    item_features: features.FeatureSet | None = None
    user_features: features.FeatureSet | None = None


@dataclass(frozen=True)
class WarpParams:
    no_components: int = 32
    epochs: int = 30
    alpha: float = 1e-6
    learning_rate: float = 0.05
    max_sampled: int = 30


GRID = (WarpParams(32, 30), WarpParams(64, 30), WarpParams(32, 60, 1e-5), WarpParams(16, 30))


@dataclass
class EngagementResult:
    item_vectors: np.ndarray
    item_biases: np.ndarray
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    params: WarpParams
    metrics: dict
    search: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def split_pairs(n: int, seed: int, fraction: float) -> np.ndarray:
    """Boolean mask of held-out pairs: a random `fraction` of them, fixed by seed."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(round(n * fraction))]] = True
    return mask


def _matrix(data: EngagementData, rows: np.ndarray) -> sp.coo_matrix:
    return sp.coo_matrix((np.ones(int(rows.sum()), dtype=np.float32), (data.users[rows], data.items[rows])),
                         shape=(len(data.user_ids), len(data.item_ids)))


def fit_warp(data: EngagementData, params: WarpParams, rows: np.ndarray, seed: int, threads: int) -> LightFM:
    model = LightFM(loss="warp", no_components=params.no_components, learning_rate=params.learning_rate,
                    item_alpha=params.alpha, user_alpha=params.alpha, max_sampled=params.max_sampled,
                    random_state=seed)
    model.fit(_matrix(data, rows), user_features=data.user_features.matrix if data.user_features else None,
              item_features=data.item_features.matrix if data.item_features else None,
              epochs=params.epochs, num_threads=threads)
    return model


def _representations(model: LightFM, data: EngagementData):
    ib, iv = model.get_item_representations(data.item_features.matrix if data.item_features else None)
    ub, uv = model.get_user_representations(data.user_features.matrix if data.user_features else None)
    return ib, iv, ub, uv


def evaluate(data: EngagementData, train: np.ndarray, held: np.ndarray, scores: np.ndarray, k: int = 10) -> dict:
    n_users = len(data.user_ids)
    relevant = [[] for _ in range(n_users)]
    exclude = [[] for _ in range(n_users)]
    for u, i in zip(data.users[held], data.items[held]):
        relevant[u].append(i)
    for u, i in zip(data.users[train], data.items[train]):
        exclude[u].append(i)
    return ranking_metrics(scores, [np.array(r, dtype=int) for r in relevant],
                           [np.array(e, dtype=int) for e in exclude], k=k)


def train_engagement(data: EngagementData, grid=GRID, max_trials: int = 3, time_budget_s: float = 60.0,
                     seed: int = 0, threads: int = 2, refit_all: bool = True) -> EngagementResult:
    started = time.perf_counter()
    test = split_pairs(len(data.users), seed, 0.2)
    rest = ~test
    val = rest & split_pairs(len(data.users), seed + 1, 0.125)  # 10 % of all pairs
    fit_rows = rest & ~val
    search, best = [], None
    for i, params in enumerate(grid[:max_trials]):
        if i and time.perf_counter() - started > time_budget_s:
            break
        model = fit_warp(data, params, fit_rows, seed, threads)
        ib, iv, ub, uv = _representations(model, data)
        m = evaluate(data, fit_rows, val, uv @ iv.T + ib[None, :])
        search.append({**asdict(params), "val_precision_at_10": m["precision_at_10"]})
        if best is None or m["precision_at_10"] > best[0]:
            best = (m["precision_at_10"], params)
    params = best[1]
    model = fit_warp(data, params, rest, seed, threads)
    ib, iv, ub, uv = _representations(model, data)
    popularity = np.bincount(data.items[rest], minlength=len(data.item_ids)).astype(np.float64)
    metrics = {"model": evaluate(data, rest, test, uv @ iv.T + ib[None, :]),
               "baseline": evaluate(data, rest, test, np.tile(popularity, (len(data.user_ids), 1))),
               "baseline_name": "popularity"}
    if refit_all:
        model = fit_warp(data, params, np.ones(len(data.users), dtype=bool), seed, threads)
        ib, iv, ub, uv = _representations(model, data)
    known = np.unique(data.users)
    mean, cov = prior_from_users(uv[known], ub[known])
    return EngagementResult(iv.astype(np.float32), ib.astype(np.float32), mean, cov, params, metrics, search,
                            time.perf_counter() - started)


def load_engagement_data(conn, unit_id: str, mode: str) -> EngagementData:
    items = q.fetch_all(conn, "unit_items_for_training", unit_id=unit_id)
    item_ids = [i["item_id"] for i in items]
    rows = q.fetch_all(conn, "positive_engagements_on_items", item_ids=item_ids, min_value=0)
    conn.rollback()
    item_pos = {item_id: i for i, item_id in enumerate(item_ids)}
    user_col = np.array([r["user_id"] for r in rows], dtype=object)
    user_ids, users = np.unique(user_col, return_inverse=True) if rows else (np.array([]), np.array([], int))
    data = EngagementData([str(u) for u in user_ids], item_ids, users.astype(np.int32),
                          np.array([item_pos[r["item_id"]] for r in rows], dtype=np.int32))
    if mode != "mf":
        data.item_features = features.item_features(items, mode)
        attrs = {r["user_id"]: r["attrs"] for r in q.fetch_all(conn, "users_attrs", user_ids=data.user_ids)}
        data.user_features = features.user_features(
            [{"user_id": u, "attrs": attrs.get(u, {})} for u in data.user_ids], mode)
        conn.rollback()
    return data


def train_engagement_unit(conn, unit_id: str, mode: str, config):
    from jobs.train import UnitOutcome, _activate_if_sane

    started = time.perf_counter()
    data = load_engagement_data(conn, unit_id, mode)
    if len(data.users) < 10:
        return UnitOutcome(unit_id, "engagement", "skipped", reason="too few positive engagements")
    result = train_engagement(data, max_trials=config.max_trials, time_budget_s=config.unit_time_budget_s,
                              seed=config.seed, threads=config.threads)
    counts = {"users": len(data.user_ids), "items": len(data.item_ids), "positives": int(len(data.users))}
    with conn:
        model_id = modelstore.save_model(
            conn, unit_id=unit_id, objective="engagement", mode=mode, tag=config.tag, item_ids=data.item_ids,
            item_vectors=result.item_vectors, item_biases=result.item_biases, prior_mean=result.prior_mean,
            prior_cov=result.prior_cov, calibration={"method": "none"},
            hyperparams={**asdict(result.params), "search": result.search, "seed": config.seed},
            metrics=result.metrics, data_counts=counts, training_seconds=result.seconds)
    return _activate_if_sane(conn, unit_id, "engagement", model_id, result.metrics, "precision_at_10", config,
                             started)

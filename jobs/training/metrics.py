"""Evaluation metrics in pure numpy: probability quality for practice models, ranking quality
for engagement models. Arrays in, floats out; no database, no LightFM."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

EPS = 1e-7


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), via the rank-sum (Mann-Whitney) formula.

    y : (n,) 0/1 outcomes; score : (n,) any monotone score. NaN when only one class is present.
    """
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) == 0:  # e.g. a small unit whose learners include no test learner
        return float("nan")
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float(np.mean((np.asarray(p) >= 0.5) == np.asarray(y, dtype=bool)))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width buckets of predicted probability: count, mean predicted, observed rate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        out.append({"lower": b / bins, "upper": (b + 1) / bins, "n": n,
                    "predicted": float(p[mask].mean()) if n else None,
                    "observed": float(y[mask].mean()) if n else None})
    return out


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |observed - predicted| over buckets."""
    n = len(y)
    if n == 0:
        return float("nan")
    return float(sum(b["n"] / n * abs(b["observed"] - b["predicted"]) for b in reliability(y, p, bins) if b["n"]))


def probability_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    return {"auc": auc(y, p), "logloss": logloss(y, p), "accuracy": accuracy(y, p), "ece": ece(y, p),
            "n": len(y)}


def ranking_metrics(scores: np.ndarray, relevant: list[np.ndarray], exclude: list[np.ndarray] | None = None,
                    k: int = 10) -> dict:
    """precision@k, recall@k and NDCG@k averaged over users with at least one relevant item.

    scores : (n_users, n_items) ranking scores; relevant[u] : item indices held out for user u;
    exclude[u] : item indices never to recommend to u (their training items).
    """
    precisions, recalls, ndcgs = [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for u, rel in enumerate(relevant):
        if len(rel) == 0:
            continue
        row = np.array(scores[u], dtype=np.float64, copy=True)
        if exclude is not None and len(exclude[u]):
            row[exclude[u]] = -np.inf
        top = np.argpartition(-row, k)[:k]
        top = top[np.argsort(-row[top])]
        hits = np.isin(top, rel)
        precisions.append(hits.sum() / k)
        recalls.append(hits.sum() / len(rel))
        ideal = discounts[: min(len(rel), k)].sum()
        ndcgs.append((hits * discounts).sum() / ideal)
    return {f"precision_at_{k}": float(np.mean(precisions)) if precisions else float("nan"),
            f"recall_at_{k}": float(np.mean(recalls)) if recalls else float("nan"),
            f"ndcg_at_{k}": float(np.mean(ndcgs)) if ndcgs else float("nan"),
            "users": len(precisions)}

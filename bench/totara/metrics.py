"""Top-N figures of answers against held-out positives (pure): precision, recall and NDCG at k, a
paired bootstrap of a difference, and the top k of a score vector."""
from __future__ import annotations

import itertools

import numpy as np

from bench.totara.export import K


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
    return {"precision_at_10": rounded(hits.sum(axis=1).mean() / k),
            "recall_at_10": rounded((hits.sum(axis=1) / sizes).mean()),
            "ndcg_at_10": rounded(((hits * discounts).sum(axis=1) / ideal).mean()), "users": len(keep)}


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
    return {"difference": rounded(diff.mean()), "ci95": [rounded(low), rounded(high)], "users": len(diff)}


def top_k(scores: np.ndarray, ids: list[int], exclude: set, k: int = K) -> list[int]:
    """The k best ids by score (ties: the earlier id), without `exclude`."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [ids[i] for i in itertools.islice((i for i in order if ids[i] not in exclude), k)]


def rounded(x, digits: int = 4):
    """x as a float rounded to `digits`, None as None."""
    return None if x is None else round(float(x), digits)

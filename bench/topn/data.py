"""MovieLens-100k for bench.topn: the ratings and the items read, a per-user AUC, and the rounding of
the report's figures."""
from __future__ import annotations

import numpy as np

from jobs.training.metrics import auc

PUBLISHED_PROTOCOL = ("PUBLISHED COMPARISON ONLY: every rating is an implicit positive, as in the LightFM / ALS "
                      "tables; the product never trains on this (its importer stores ratings below 4 as outcome 0)")


def read_ratings(path: str) -> np.ndarray:
    """(n, 4) int64 rows of user id, item id (both 1-based), rating, timestamp."""
    return np.loadtxt(path, dtype=np.int64, ndmin=2)


def read_items(path: str) -> list[dict]:
    """u.item as the item dicts of jobs.training.features.item_features, in item id order."""
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
              "War", "Western"]
    items = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            fields = line.rstrip("\n").split("|")
            tagged = [g for g, flag in zip(genres, fields[5:]) if flag == "1"]
            items.append({"item_id": fields[0], "kind": "movie", "title": fields[1], "body": None,
                          "attrs": {"genres": tagged}, "units": [f"genre:{g}" for g in tagged]})
    return items


def per_user_auc(scores: np.ndarray, X_test, X_exclude=None) -> float:
    """Mean over users with a test item of metrics.auc over their items (minus excluded ones)."""
    values = []
    for u in range(scores.shape[0]):
        pos = X_test.indices[X_test.indptr[u]:X_test.indptr[u + 1]]
        if len(pos) == 0:
            continue
        keep = np.ones(scores.shape[1], dtype=bool)
        if X_exclude is not None:
            keep[X_exclude.indices[X_exclude.indptr[u]:X_exclude.indptr[u + 1]]] = False
        y = np.zeros(scores.shape[1], dtype=bool)
        y[pos] = True
        values.append(auc(y[keep], scores[u, keep]))
    return float(np.mean(values))


def rounded(metrics: dict) -> dict:
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in metrics.items()}

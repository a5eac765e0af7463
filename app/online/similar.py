"""Related items (Totara's "related content"): nearest items by cosine similarity of vectors."""
from __future__ import annotations

import numpy as np


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): (n, d) float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def most_similar(unit_vectors: np.ndarray, index: int, k: int, candidates: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The k items most similar to item `index`, excluding itself, best first.

    unit_vectors : (n, d) rows of unit length (see normalised); candidates : optional boolean
    (n,) mask of items allowed in the answer. Returns (indices (k',), cosine similarities (k',)).
    """
    sims = unit_vectors @ unit_vectors[index]
    sims[index] = -np.inf
    if candidates is not None:
        sims = np.where(candidates, sims, -np.inf)
    allowed = int(np.isfinite(sims).sum())
    k = min(k, allowed)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]

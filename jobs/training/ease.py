"""Fitting EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a closed-form item-item model for
top-N recommendation from binary implicit feedback, and its top-k sparsification for storage. Pure
numpy/scipy. Scoring with it (`ease_scores`) and the per-user blend (`blend_scores`) are serving code:
app.online.engagement."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# How many source items each item keeps (`top_k_neighbours`): chosen among 50, 100, 200 and 500 on
# MovieLens-100k's validation split, by the blend's precision@10, on both all ratings and ratings >= 4
# (bench.topn "ease_neighbours"; docs/benchmarks-log.md, issue 15). At 10,000 items a model's weights take
# 10,000 x k x 8 bytes (int32 index + float32 weight): 16 MB at k = 200, where dense took 400 MB.
EASE_NEIGHBOURS = 200


def fit_ease(X: sp.csr_matrix, l2: float) -> np.ndarray:
    """Item-item weights B minimising ||X - X B||^2 + l2 ||B||^2 subject to diag(B) = 0.

    Parameters
    ----------
    X : (n_users, n_items) sparse binary matrix of positives.
    l2 : ridge penalty added to the diagonal of the Gram matrix X^T X (hundreds on MovieLens-100k).

    Returns
    -------
    B : (n_items, n_items) float32, zero diagonal. B[j, i] is how much having item j raises item i.
    Costs one dense n_items x n_items inverse: O(n_items^3) time, fine up to some 10^4 items.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    G = (X.T @ X).toarray()
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    del G
    P /= -np.diag(P)[None, :]               # B = I - P diag(1/diag(P)), off-diagonal part (in place:
    P[np.diag_indices_from(P)] = 0.0        # at 10^4 items each n x n float64 copy is 800 MB)
    return P.astype(np.float32)


def top_k_neighbours(B: np.ndarray, k: int, block: int = 512) -> sp.csr_matrix:
    """B with each column i cut to its k largest weights B[j, i], j != i: the k source items that
    raise item i most. What the service stores and scores with instead of the dense B.

    Parameters
    ----------
    B : (n_items, n_items) dense weights from `fit_ease` (zero diagonal).
    k : neighbours kept per item; k >= n_items - 1 keeps every off-diagonal weight, so scores equal
        the dense B's (up to float rounding in the sum).
    block : columns handled at a time (bounds the temporary index array to n_items x block).

    Returns
    -------
    (n_items, n_items) float32 CSR with k entries in each column (source rows j, target columns i),
    rows sorted: a user's scores x @ B touch only the rows of their positives.
    """
    B = np.asarray(B)
    n = B.shape[0]
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    k = min(int(k), n - 1)
    if k == 0:                                               # one item: it has no neighbours
        return sp.csr_matrix((n, n), dtype=np.float32)
    rows = np.empty((k, n), dtype=np.int32)
    for start in range(0, n, block):
        cols = np.arange(start, min(start + block, n))
        part = -B[:, cols]                                   # ascending order = largest weight first
        part[cols, np.arange(len(cols))] = np.inf            # the item itself comes last: never kept
        rows[:, cols] = np.argpartition(part, k - 1, axis=0)[:k]
    cols = np.broadcast_to(np.arange(n, dtype=np.int32), (k, n))
    values = B[rows, cols].astype(np.float32)
    out = sp.csr_matrix((values.ravel(), (rows.ravel(), cols.ravel())), shape=(n, n), dtype=np.float32)
    out.sort_indices()
    return out

"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a closed-form item-item model for
top-N recommendation from binary implicit feedback, plus a per-user score blend. Pure numpy/scipy."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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
    B = P / (-np.diag(P))[None, :]          # B = I - P diag(1/diag(P)), off-diagonal part
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32)


def ease_scores(X_user_rows, B: np.ndarray) -> np.ndarray:
    """Scores of every item for some users: their positive rows times B.

    Parameters
    ----------
    X_user_rows : (n_users, n_items) sparse or dense binary rows, or (n_items,) for one user.
    B : (n_items, n_items) from `fit_ease`.

    Returns
    -------
    (n_users, n_items) float32 scores, or (n_items,) for a single 1-d row.
    """
    if sp.issparse(X_user_rows):
        return np.asarray(X_user_rows.astype(np.float32) @ B)
    return np.asarray(X_user_rows, dtype=np.float32) @ B


def standardise(scores: np.ndarray, exclude=None) -> np.ndarray:
    """Per-user z-scores: each row minus its mean, over its standard deviation.

    scores : (n_users, n_items) or (n_items,); exclude : optional boolean mask of the same shape
    marking entries (e.g. training items) left out of the mean and deviation. A constant row maps to 0.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    mask = np.ones_like(s, dtype=bool) if exclude is None else ~np.atleast_2d(np.asarray(exclude, dtype=bool))
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean = np.where(mask, s, 0.0).sum(axis=1, keepdims=True) / n
    var = np.where(mask, (s - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n
    z = (s - mean) / np.where(var > 0, np.sqrt(var), 1.0)
    return z.reshape(np.shape(scores))


def blend_scores(a: np.ndarray, b: np.ndarray, weight: float, exclude=None) -> np.ndarray:
    """(1 - weight) * z(a) + weight * z(b), with z the per-user standardisation above.

    a, b : (n_users, n_items) or (n_items,) scores from two models; weight in [0, 1] (0 gives a's
    ranking, 1 gives b's). With weight < 1 an item's blend rises strictly with its score in `a` while
    `b` is held fixed (one entry's z-score increases with it), and with weight > 0 likewise for `b`.
    """
    return (1.0 - weight) * standardise(a, exclude) + weight * standardise(b, exclude)

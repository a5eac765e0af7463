"""Fitting EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a closed-form item-item model for
top-N recommendation from binary implicit feedback. Pure numpy/scipy. Scoring with it (`ease_scores`)
and the per-user blend (`blend_scores`) are serving code: app.online.topn."""
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

"""Scoring with an engagement (top-N) model: EASE, WARP with the user folded in, and their blend.
Pure numpy/scipy; the fitting half (EASE's inverse, LightFM, the tuner) is jobs.training.engagement_fit.

Scoring a user needs only their positive item indices (`EngagementModel.score`):
  * EASE: scores = x @ B, x the user's 0/1 row. B is stored as each item's top-k source items
    (jobs.training.ease.top_k_neighbours, a CSR matrix: n_items x k weights instead of n_items^2), so
    one user's scores add up only the rows of their positives; models stored before that carry the
    dense (n_items, n_items) array and score the same way.
  * WARP: scores = v_i . u + b_i (the user bias is the same for every item, so it is left out).
    A user's vector is folded in from their positives with the item side fixed: the MAP estimate
    u = argmax sum_{i in positives} log softmax(V u + b)_i - reg ||u||^2, a smooth convex problem in
    d unknowns solved by L-BFGS (`fold_in`); a user with no positives gets u = 0 (item biases only).
    The same code serves users known at training time and new ones, and always reflects their
    current positives. On MovieLens-100k validation (precision@10) it matches the trained vectors
    (0.150 at reg 5 vs 0.148); a scaled mean of the positive item vectors (least-squares scale) gave
    0.143, a ridge map from rows to trained vectors 0.142, an implicit least-squares fit to 0/1 targets 0.125.
    One user (a request: `EngagementModel.score`, `fold_in_one`) is solved by Newton's method instead:
    2-4 steps, at most NEWTON_STEPS, so a request's cost is bounded (scipy's L-BFGS took 10 to 200
    iterations of its Python loop: 0.6 ms CPU per user, up to 9 ms, on MovieLens-100k; Newton 0.34 ms).
  * Blend: (1 - weight) * z(EASE) + weight * z(WARP), z = per-user standardisation over the items
    that are not the user's positives (`blend_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class EngagementModel:
    """What is needed to score any user from their positives.

    B : (n_items, n_items) EASE weights, a CSR matrix of top-k neighbours or (older models) a dense
    array, or None; item_vectors : (n_items, d) and item_biases :
    (n_items,) from WARP or None; foldin_reg : the fold-in's L2 penalty; weight : WARP's share of
    the blend (0 = EASE only, 1 = WARP only).
    """
    B: sp.csr_matrix | np.ndarray | None
    item_vectors: np.ndarray | None
    item_biases: np.ndarray | None
    foldin_reg: float = 5.0
    weight: float = 0.0
    params: dict = field(default_factory=dict)
    user_tokens: dict | None = None   # hybrid: {tokens, shifts, mean}, a user without positives from metadata
    start: tuple | None = None        # `foldin_start` of the item side, when the caller keeps it (a serving model)

    @property
    def n_items(self) -> int:
        return self.B.shape[0] if self.B is not None else self.item_vectors.shape[0]

    def rows(self, positives: list[np.ndarray]) -> sp.csr_matrix:
        """(n_users, n_items) binary CSR from lists of positive item indices."""
        users = np.repeat(np.arange(len(positives)), [len(p) for p in positives])
        items = np.concatenate([np.asarray(p, dtype=np.int64).ravel() for p in positives] + [np.zeros(0, np.int64)])
        return positives_matrix(users, items, len(positives), self.n_items)

    def score_rows(self, X: sp.csr_matrix, user_vectors: np.ndarray | None = None) -> np.ndarray:
        """(n_users, n_items) scores for the users whose positives are the rows of X.

        user_vectors : optional (n_users, d) WARP vectors (e.g. trained ones); else `fold_in`.
        """
        ease = ease_scores(X, self.B) if self.B is not None and self.weight < 1 else None
        warp = None
        if self.item_vectors is not None and self.weight > 0:
            if user_vectors is None:
                user_vectors = fold_in(X, self.item_vectors, self.item_biases, self.foldin_reg)
            warp = warp_scores(user_vectors, self.item_vectors, self.item_biases)
        if warp is None:
            return ease
        if ease is None:
            return warp
        return blend_scores(ease, warp, self.weight, exclude=X.toarray() > 0).astype(np.float32)

    def score(self, positives: np.ndarray, user_vector: np.ndarray | None = None) -> np.ndarray:
        """(n_items,) scores for one user from their positive item indices (positives not masked);
        the user's WARP vector by `fold_in_one` unless given."""
        X = self.rows([positives])
        if user_vector is None and self.item_vectors is not None and self.weight > 0:
            user_vector = fold_in_one(X.indices, self.item_vectors, self.item_biases, self.foldin_reg, self.start)
        uv = None if user_vector is None else np.asarray(user_vector)[None, :]
        return self.score_rows(X, uv)[0]

    def recommend(self, positives: np.ndarray, k: int = 10) -> np.ndarray:
        """The k best item indices for a user, best first, never one of their positives."""
        s = np.asarray(self.score(positives), dtype=np.float64)
        s[np.asarray(positives, dtype=np.int64)] = -np.inf
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k]
        return top[np.argsort(-s[top], kind="stable")]


def positives_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """(n_users, n_items) float32 CSR with 1 at each (user, item) pair (duplicates count once)."""
    X = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (np.asarray(users), np.asarray(items))),
                      shape=(n_users, n_items))
    X.data[:] = 1.0
    return X


def ease_scores(X_user_rows, B: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """Scores of every item for some users: their positive rows times B.

    Parameters
    ----------
    X_user_rows : (n_users, n_items) sparse or dense binary rows, or (n_items,) for one user.
    B : (n_items, n_items) from `jobs.training.ease.fit_ease`: dense, or sparse (its top-k neighbours,
        `jobs.training.ease.top_k_neighbours`; best CSR: the product then reads only the rows of the
        users' positives).

    Returns
    -------
    (n_users, n_items) float32 scores, or (n_items,) for a single 1-d row.
    """
    if sp.issparse(B):
        one = not sp.issparse(X_user_rows) and np.ndim(X_user_rows) == 1
        X = sp.csr_matrix(np.atleast_2d(X_user_rows) if not sp.issparse(X_user_rows) else X_user_rows,
                          dtype=np.float32)
        scores = (X @ B).toarray().astype(np.float32, copy=False)
        return scores[0] if one else scores
    if sp.issparse(X_user_rows):
        return np.asarray(X_user_rows.astype(np.float32) @ B)
    return np.asarray(X_user_rows, dtype=np.float32) @ B


def warp_scores(user_vectors: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray) -> np.ndarray:
    """(n_users, n_items) = U V^T + b_items (user biases omitted: they do not change a ranking)."""
    return np.asarray(user_vectors, dtype=np.float32) @ item_vectors.T + item_biases[None, :]


def fold_in(X: sp.csr_matrix, item_vectors: np.ndarray, item_biases: np.ndarray, reg: float = 5.0,
            chunk: int = 1024) -> np.ndarray:
    """WARP user vectors for rows of positives, item side fixed (see the module docstring).

    Minimises, per row, n_pos * logsumexp(V u + b) - sum_{i in pos} v_i . u + reg ||u||^2 (strictly
    convex), by L-BFGS, one problem per chunk of rows (the objective is separable). About 1 ms for one
    user on MovieLens-100k with single-threaded BLAS (several BLAS threads on busy cores cost far more).
    X : (n_users, n_items) binary CSR; item_vectors : (n_items, d); item_biases : (n_items,).
    Returns (n_users, d) float32.
    """
    from scipy.optimize import minimize  # on first use: see app.online.scoring.engagement_scores

    V = np.asarray(item_vectors, dtype=np.float64)
    b = np.asarray(item_biases, dtype=np.float64)
    X = sp.csr_matrix(X)
    out = np.zeros((X.shape[0], V.shape[1]), dtype=np.float32)
    for start in range(0, X.shape[0], chunk):
        rows = X[start:start + chunk]
        n_pos = np.asarray(rows.sum(axis=1), dtype=np.float64)          # (n, 1)
        pos_sum = np.asarray(rows @ V)                                   # (n, d)

        def objective(x, shape=pos_sum.shape, n_pos=n_pos, pos_sum=pos_sum):
            loss, grad = _foldin_loss(x.reshape(shape), V, b, n_pos, pos_sum, reg)
            return loss, grad.ravel()

        result = minimize(objective, np.zeros(pos_sum.size), jac=True, method="L-BFGS-B",
                          options={"maxiter": 200})
        out[start:start + chunk] = result.x.reshape(pos_sum.shape)
    return out


NEWTON_STEPS = 8   # the most steps `fold_in_one` takes (2-4 on MovieLens-100k from u = 0)


def foldin_start(item_vectors: np.ndarray, item_biases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What every user's fold-in starts from, once per model: at u = 0, p = softmax(b), the mean
    item vector m0 = V^T p (d,) and the covariance C0 = V^T diag(p) V - m0 m0^T (d, d)."""
    V = np.asarray(item_vectors, dtype=np.float64)
    b = np.asarray(item_biases, dtype=np.float64)
    e = np.exp(b - b.max())
    p = e / e.sum()
    m0 = p @ V
    return m0, (V.T * p) @ V - np.outer(m0, m0)


def fold_in_one(positives: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray, reg: float = 5.0,
                start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-10) -> np.ndarray:
    """One user's WARP vector from their positive item indices: the minimiser `fold_in` finds,
    by Newton's method from u = 0 with a backtracking line search.

    The loss n * logsumexp(V u + b) - s . u + reg ||u||^2 (s the sum of the positives' vectors) has
    the gradient n * m - s + 2 reg u and the Hessian n * (V^T diag(p) V - m m^T) + 2 reg I, with
    p = softmax(V u + b) and m = V^T p. At u = 0 both come from `foldin_start` (`start`: the
    model's, computed once); later Hessians are formed in float32 (half the cost of the (d, n_items)
    x (n_items, d) product; the gradient and the loss stay float64, so the minimiser is the same).
    The loop stops when the Newton decrement g . H^-1 g (bounded by |g|^2 / (2 reg), checked
    before a Hessian is formed) falls under `tol` * max(1, n), or after NEWTON_STEPS steps.
    positives : item indices (duplicates count once); item_vectors : (n_items, d);
    item_biases : (n_items,). Returns (d,) float32.
    """
    V = np.asarray(item_vectors, dtype=np.float64)
    b = np.asarray(item_biases, dtype=np.float64)
    pos = np.unique(np.asarray(positives, dtype=np.int64))
    d = V.shape[1]
    u = np.zeros(d)
    if len(pos) == 0:
        return u.astype(np.float32)   # the loss is reg ||u||^2: item biases only
    n = float(len(pos))
    s = V[pos].sum(axis=0)
    m0, C0 = foldin_start(V, b) if start is None else start
    ridge = 2.0 * reg * np.eye(d)
    limit = tol * max(1.0, n)
    V32 = None
    z = b                                          # V u + b at u = 0
    top = z.max()
    f = n * (top + np.log(np.exp(z - top).sum()))
    for step_no in range(NEWTON_STEPS):
        if step_no == 0:
            g, H = n * m0 - s, n * C0 + ridge
        else:
            e = np.exp(z - z.max())
            p = e / e.sum()
            m = p @ V
            g = n * m - s + 2.0 * reg * u
            if g @ g <= limit * 2.0 * reg:     # the decrement is below the limit already
                break
            if V32 is None:
                V32 = V.astype(np.float32)
            W = V32 * np.sqrt(p).astype(np.float32)[:, None]
            H = n * ((W.T @ W).astype(np.float64) - np.outer(m, m)) + ridge
        step = np.linalg.solve(H, g)
        decrement = float(g @ step)
        if decrement <= limit:
            break
        a = 1.0
        while True:   # Armijo: the full step is taken near the minimum
            u_new = u - a * step
            z_new = V @ u_new + b
            top = z_new.max()
            f_new = n * (top + np.log(np.exp(z_new - top).sum())) - s @ u_new + reg * (u_new @ u_new)
            if f_new <= f - 0.25 * a * decrement or a < 1e-3:
                break
            a *= 0.5
        u, z, f = u_new, z_new, f_new
    return u.astype(np.float32)


def _foldin_loss(U, V, b, n_pos, pos_sum, reg):
    """The fold-in loss summed over rows, and its gradient (n, d)."""
    s = U @ V.T + b
    top = s.max(axis=1, keepdims=True)
    e = np.exp(s - top)
    z = e.sum(axis=1, keepdims=True)
    loss = (n_pos * (top + np.log(z))).sum() - (pos_sum * U).sum() + reg * (U * U).sum()
    return loss, n_pos * ((e / z) @ V) - pos_sum + 2.0 * reg * U


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

"""What the job and the service both read from metadata: the categorical tokens of an item's or a
user's attrs (the hybrid modes' features), and how a model turns a learner's tokens into their
prior or a new item's tokens into its vector. Pure numpy."""
from __future__ import annotations

import numpy as np

LIST_ATTRS = ("skills", "topics", "genres", "tags")
MAX_CATEGORY_LENGTH = 64


def metadata_tokens(attrs: dict | None, extra: list[str] = ()) -> list[str]:
    """`key:value` tokens of short categorical attrs (and of each element of list attrs), after the
    `extra` tokens; ground truth of synthetic data (`true_*`) never becomes a feature."""
    tokens = list(extra)
    for key, value in (attrs or {}).items():
        if key.startswith("true_"):
            continue
        if key in LIST_ATTRS and isinstance(value, list):
            tokens.extend(f"{key}:{v}" for v in value if isinstance(v, (str, int)))
        elif isinstance(value, (bool, int)) or (isinstance(value, str) and 0 < len(value) <= MAX_CATEGORY_LENGTH):
            tokens.append(f"{key}:{value}")
    return tokens


def item_tokens(kind: str | None, units: list[str] | None, attrs: dict | None) -> list[str]:
    """An item's metadata tokens: its kind, its direct units, its attrs (as the hybrid modes build them)."""
    return metadata_tokens(attrs, [f"kind:{kind}"] + [f"unit:{u}" for u in units or []])


def fit_metadata_prior(theta: np.ndarray, indicators: np.ndarray, ridge: float = 10.0) -> np.ndarray:
    """Shift of a learner's prior mean per metadata token: ridge regression of the trained learners'
    centred [u, b_u] (`theta`, (n, k)) on their 0/1 token indicators ((n, T)); `ridge` is how many
    learners' worth of evidence a token needs before its shift counts. Returns (T, k)."""
    X = np.asarray(indicators, dtype=np.float64)
    centred = theta - theta.mean(axis=0)
    return np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ centred)


def prior_shift(tokens: list[str], index: dict[str, int], shifts: np.ndarray) -> np.ndarray | None:
    """The sum of the known tokens' shifts; None when none of `tokens` is known."""
    rows = [index[t] for t in dict.fromkeys(tokens) if t in index]
    return shifts[rows].sum(axis=0) if rows else None


def vector_from_features(tokens: list[str], index: dict[str, int], vectors: np.ndarray, biases: np.ndarray
                         ) -> tuple[np.ndarray, float] | None:
    """An item's (vector, bias) from its known tokens' embeddings, as LightFM builds a hybrid item
    (the row of features sums to 1, the item's own id among them; a new item's id embedding is 0).
    None when none of its tokens is known."""
    rows = [index[t] for t in dict.fromkeys(tokens) if t in index]
    if not rows:
        return None
    weight = 1.0 / (len(dict.fromkeys(tokens)) + 1)
    return vectors[rows].sum(axis=0) * weight, float(biases[rows].sum() * weight)

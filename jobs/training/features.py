"""Feature matrices for LightFM's hybrid modes (pure: rows of metadata in, sparse matrices out).

- mf:      identity features only (one per item / user): plain matrix factorisation.
- partial: identity + metadata: item kind, units, skills/topics/genres, difficulty label;
           user categorical attributes (language, country, grade, ...).
- full:    partial + TF-IDF of free text (item title and body; user free-text attributes).

Identity features are kept in the hybrid modes so well-known items keep their own vectors;
metadata carries what is known about new ones. Each row is scaled to sum to 1, as LightFM's
documentation advises, so an item with many tags is not a louder item.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from app.online.metadata import MAX_CATEGORY_LENGTH, item_tokens, metadata_tokens

MODES = ("mf", "partial", "full")


@dataclass
class FeatureSet:
    matrix: sp.csr_matrix | None   # (n_rows, n_features); None in mf mode (LightFM's identity default)
    names: list[str]               # feature names, identity features first


def _normalise_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.diags(1.0 / sums).dot(m).tocsr().astype(np.float32)


def _text(attrs: dict, *parts: str | None) -> str:
    long_strings = [v for k, v in (attrs or {}).items()
                    if isinstance(v, str) and len(v) > MAX_CATEGORY_LENGTH and not k.startswith("true_")]
    return " ".join(p for p in (*parts, *long_strings) if p)


def build_features(ids: list[str], attrs: list[dict], mode: str, extra_tokens: list[list[str]] | None = None,
                   texts: list[str] | None = None, max_text_features: int = 2000) -> FeatureSet:
    """Identity (+ metadata tokens, + TF-IDF of texts in full mode) features for each row.

    ids : row ids (identity feature names); attrs : JSON attrs per row; extra_tokens : more
    categorical tokens per row (e.g. the item's kind and units); texts : free text per row.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n = len(ids)
    if mode == "mf":
        return FeatureSet(None, [f"id:{i}" for i in ids])
    blocks = [sp.identity(n, dtype=np.float32, format="csr")]
    names = [f"id:{i}" for i in ids]

    extra_tokens = extra_tokens or [[] for _ in ids]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, (a, extra) in enumerate(zip(attrs, extra_tokens)):
        for token in dict.fromkeys(metadata_tokens(a, extra)):
            rows.append(r)
            cols.append(vocab.setdefault(token, len(vocab)))
    if vocab:
        blocks.append(sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(vocab))))
        names.extend(vocab)

    if mode == "full" and texts is not None and any(texts):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(max_features=max_text_features, min_df=2, stop_words="english",
                                     sublinear_tf=True, dtype=np.float32)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # every document empty after stop words / min_df
            tfidf = None
        if tfidf is not None and tfidf.shape[1]:
            blocks.append(tfidf.tocsr())
            names.extend(f"text:{w}" for w in vectorizer.get_feature_names_out())
    return FeatureSet(_normalise_rows(sp.hstack(blocks, format="csr")), names)


def item_features(items: list[dict], mode: str) -> FeatureSet:
    """items: dicts with item_id, kind, title, body, attrs, units (list of direct unit ids)."""
    return build_features(
        [i["item_id"] for i in items], [i.get("attrs") or {} for i in items], mode,
        extra_tokens=[item_tokens(i.get("kind"), i.get("units"), None) for i in items],
        texts=[_text(i.get("attrs"), i.get("title"), i.get("body")) for i in items])


def user_features(users: list[dict], mode: str) -> FeatureSet:
    """users: dicts with user_id and attrs."""
    return build_features([u["user_id"] for u in users], [u.get("attrs") or {} for u in users], mode,
                          texts=[_text(u.get("attrs")) for u in users])


def token_columns(features: FeatureSet, n_ids: int) -> list[int]:
    """The columns of a hybrid feature set that are metadata tokens: after the `n_ids` identity
    features, without the TF-IDF text."""
    return [k for k, name in enumerate(features.names) if k >= n_ids and not name.startswith("text:")]


def token_indicators(features: FeatureSet | None, n_ids: int) -> tuple[list[str], np.ndarray] | None:
    """The rows' categorical metadata tokens (no ids, no text) as 0/1 indicators (n_rows, T), with
    their names; None in mf mode or when no row has any."""
    if features is None:
        return None
    cols = token_columns(features, n_ids)
    if not cols:
        return None
    return [features.names[k] for k in cols], (features.matrix[:, cols] > 0).toarray().astype(np.float64)

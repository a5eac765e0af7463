"""Recommendation strategies, one module each, registered by name.

A strategy gets the scored candidates and what the learner has done, and picks n of them. It
returns the chosen candidate positions and, when it had to relax its rules to fill the answer,
the name of that fallback (always reported to the caller).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass
class Scored:
    """Candidates with their scores: p(correct) for practice models, a ranking score otherwise."""
    item_ids: list[str]
    scores: np.ndarray               # (k,)
    vectors: np.ndarray | None       # (k, d) unit-length item vectors for diversity, or None
    probabilities: bool = True       # scores are calibrated probabilities


@dataclass
class LearnerState:
    """Per item, the learner's last interaction: kind, outcome, when; and whether ever solved."""
    last: dict = field(default_factory=dict)     # item_id -> (kind, outcome, occurred_at)
    solved: set = field(default_factory=set)     # items answered correctly at least once
    now: datetime | None = None


@dataclass
class Choice:
    positions: list[int]
    fallback: str | None = None


REGISTRY: dict = {}


def register(name: str):
    def wrap(fn):
        REGISTRY[name] = fn
        return fn
    return wrap


def get(name: str):
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None


def pick_diverse(order: np.ndarray, vectors: np.ndarray | None, n: int, max_similarity: float) -> list[int]:
    """Take candidates in `order`, skipping one too similar (cosine) to one already taken."""
    chosen: list[int] = []
    for pos in order:
        if len(chosen) == n:
            break
        if vectors is not None and chosen and max_similarity < 1.0:
            if float(np.max(vectors[chosen] @ vectors[pos])) > max_similarity:
                continue
        chosen.append(int(pos))
    return chosen


from app.strategies import target, top  # noqa: E402,F401  (registers the strategies)

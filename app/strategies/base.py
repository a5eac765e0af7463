"""What every strategy shares: the scored candidates, the learner's state, the choice, the
registry, and picking without near-duplicates.

A strategy gets the scored candidates and what the learner has done, and picks n of them. It
returns the chosen candidate positions and, when it had to relax its rules to fill the answer,
the name of that fallback (always reported to the caller). Each strategy declares the scores it
needs: calibrated probabilities of success (served by a practice model) or a ranking score (an
engagement model, else a practice model); the request path picks the model from that.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass
class Scored:
    """Candidates with their scores: p(correct) for practice models, a ranking score otherwise.

    Candidates are sorted by item id, so a stable sort by score breaks ties by id.
    """
    item_ids: list[str]
    scores: np.ndarray               # (k,)
    positions: dict                  # item_id -> candidate position
    vectors: np.ndarray | None = None    # (n_model_items, d) unit-length item vectors, or None
    rows: np.ndarray | None = None       # (k,) row of each candidate in `vectors`, -1 if uncovered
    probabilities: bool = True           # scores are calibrated probabilities
    allowed: np.ndarray | None = None    # (k,) hard filter (the request's exclusions); None: all

    def order(self, keys: np.ndarray) -> np.ndarray:
        """Candidate positions by ascending `keys` (stable: ties by id), without disallowed ones."""
        order = np.argsort(keys, kind="stable")
        return order if self.allowed is None else order[self.allowed[order]]

    def first(self, keys: np.ndarray, eligible: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
        """The first `k` of order(keys) that are `eligible` (exactly that prefix, without sorting
        every candidate), and whether there may be more after them."""
        masked = np.where(eligible if self.allowed is None else eligible & self.allowed, keys, np.inf)
        head = smallest_first(masked, k)
        finite = np.isfinite(masked[head])
        return head[finite], bool(finite.all()) and len(head) == k

    def mask(self, item_ids) -> np.ndarray:
        """Boolean (k,) mask of the candidates among `item_ids` (usually a learner's few items)."""
        out = np.zeros(len(self.item_ids), dtype=bool)
        hits = [self.positions[i] for i in item_ids if i in self.positions]
        out[hits] = True
        return out

    def vector(self, pos: int) -> np.ndarray | None:
        if self.vectors is None or self.rows is None or self.rows[pos] < 0:
            return None
        return self.vectors[self.rows[pos]]


@dataclass(frozen=True)
class SkillState:
    """What the learner knows of one skill under the request (app.serving.knowledge), for the strategies
    that declare `knowledge`: its candidates and whether it is mastered or due for review."""
    unit_id: str
    p: float | None                  # the mean p(correct) now over its items (None: no practice model)
    mastered: bool
    overdue_s: float | None          # seconds since it fell due (>= 0: due now); None: not due at any time
    order: tuple = ()                # its place among siblings of ordered units (compared first)
    positions: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))   # its candidates


@dataclass
class LearnerState:
    """Per item, the learner's last interaction: kind, outcome, when; and whether ever solved; and,
    for strategies that ask for it, their knowledge of the skills under the request."""
    last: dict = field(default_factory=dict)     # item_id -> (kind, outcome, occurred_at)
    solved: set = field(default_factory=set)     # items answered correctly at least once
    now: datetime | None = None
    skills: list[SkillState] | None = None


@dataclass
class Choice:
    positions: list[int]
    fallback: str | None = None


PROBABILITY = "probability"   # calibrated p(correct)
RANKING = "ranking"           # any score that orders items, best highest

# The model objectives that can give each kind of score, preferred first: top-N from a practice
# model is better than no model at all.
OBJECTIVES = {PROBABILITY: ("practice",), RANKING: ("engagement", "practice")}


@dataclass(frozen=True)
class Strategy:
    name: str
    needs: str                   # PROBABILITY or RANKING
    choose: Callable[[Scored, LearnerState, int, dict], Choice]
    knowledge: bool = False      # needs LearnerState.skills (the learner's knowledge per skill)

    @property
    def objectives(self) -> tuple[str, ...]:
        return OBJECTIVES[self.needs]

    def __call__(self, scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
        return self.choose(scored, state, n, params)


REGISTRY: dict[str, Strategy] = {}


def register(name: str, needs: str, knowledge: bool = False):
    if needs not in OBJECTIVES:
        raise ValueError(f"a strategy needs one of {sorted(OBJECTIVES)}, not {needs!r}")

    def wrap(fn):
        REGISTRY[name] = Strategy(name, needs, fn, knowledge)
        return fn
    return wrap


def get(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None


def smallest_first(keys: np.ndarray, k: int) -> np.ndarray:
    """np.argsort(keys, kind="stable")[:k], in O(len) instead of a full sort: the k-th smallest
    key bounds the positions that can be in the prefix (ties at it included, in position order)."""
    if k >= len(keys):
        return np.argsort(keys, kind="stable")
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    kth = np.partition(keys, k - 1)[k - 1]
    near = np.flatnonzero(keys <= kth)
    return near[np.argsort(keys[near], kind="stable")[:k]]


def head_size(n: int) -> int:
    """Candidates put in order before picking n (room for near-duplicates skipped on the way);
    a strategy that runs out falls back to ordering them all."""
    return max(4 * n, n + 64)


def pick_in_order(scored: Scored, keys: np.ndarray, eligible: np.ndarray, n: int,
                  max_similarity: float) -> tuple[list[int], np.ndarray | None]:
    """pick_diverse over the eligible candidates by ascending `keys`: first over the head only
    (Scored.first), over all of them when the head runs out. Returns the chosen positions and,
    when fewer than n were found, the full order (for the caller's relaxed rules), else None."""
    head, more = scored.first(keys, eligible, head_size(n))
    chosen = pick_diverse(head, scored, n, max_similarity)
    if len(chosen) == n:
        return chosen, None
    order = scored.order(keys)
    if more:
        chosen = pick_diverse(order[eligible[order]], scored, n, max_similarity)
    return chosen, (None if len(chosen) == n else order)


def pick_diverse(order: np.ndarray, scored: Scored, n: int, max_similarity: float) -> list[int]:
    """Take candidates in `order`, skipping one too similar (cosine) to one already taken."""
    chosen: list[int] = []
    taken: np.ndarray | None = None   # (n, d): the vectors taken so far in its first `k` rows
    k = 0
    for pos in order:
        if len(chosen) == n:
            break
        v = scored.vector(pos) if max_similarity < 1.0 else None
        if v is not None and k and float(np.max(taken[:k] @ v)) > max_similarity:
            continue
        chosen.append(int(pos))
        if v is not None:
            if taken is None:
                taken = np.empty((n, len(v)), dtype=v.dtype)
            taken[k] = v
            k += 1
    return chosen

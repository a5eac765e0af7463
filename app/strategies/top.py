"""`top`: the highest-scoring items the learner has not interacted with yet.

When fewer than n unseen items remain, seen ones fill the answer (best first) and the fallback
`too_few_candidates` is named.
"""
from __future__ import annotations

from app.strategies.base import RANKING, Choice, LearnerState, Scored, pick_in_order, register

DEFAULTS = {"max_similarity": 1.0}


@register("top", needs=RANKING)
def choose(scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
    params = {**DEFAULTS, **(params or {})}
    unseen = ~scored.mask(state.last)
    chosen, order = pick_in_order(scored, -scored.scores, unseen, n, float(params["max_similarity"]))  # best first
    if order is None:
        return Choice(chosen)
    taken = set(chosen)
    rest = [int(p) for p in order if p not in taken]
    chosen += rest[: n - len(chosen)]
    return Choice(chosen, "too_few_candidates")

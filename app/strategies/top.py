"""`top`: the highest-scoring items the learner has not interacted with yet.

When fewer than n unseen items remain, seen ones fill the answer (best first) and the fallback
`too_few_candidates` is named.
"""
from __future__ import annotations

from app.strategies.base import RANKING, Choice, LearnerState, Scored, head_size, pick_diverse, register

DEFAULTS = {"max_similarity": 1.0}


@register("top", needs=RANKING)
def choose(scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
    params = {**DEFAULTS, **(params or {})}
    unseen = ~scored.mask(state.last)
    head, more = scored.first(-scored.scores, unseen, head_size(n))  # the best unseen ones, in order
    chosen = pick_diverse(head, scored, n, float(params["max_similarity"]))
    if len(chosen) == n:
        return Choice(chosen)
    order = scored.order(-scored.scores)  # best first, all of them
    if more:
        chosen = pick_diverse(order[unseen[order]], scored, n, float(params["max_similarity"]))
        if len(chosen) == n:
            return Choice(chosen)
    taken = set(chosen)
    rest = [int(p) for p in order if p not in taken]
    chosen += rest[: n - len(chosen)]
    return Choice(chosen, "too_few_candidates")

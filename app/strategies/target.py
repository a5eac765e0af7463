"""`target`: items whose p(correct) is closest to a target (default 0.5) or inside a band.

Rules: skip items already answered correctly; re-offer an item answered wrongly only after a
cool-down; do not return near-duplicates (item vectors more similar than max_similarity). When
those rules leave fewer than n items, the answer is filled with the nearest of the skipped ones
and the fallback `too_few_candidates` is named.
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np

from app.strategies.base import PROBABILITY, Choice, LearnerState, Scored, pick_in_order, register

DEFAULTS = {"target": 0.5, "band": None, "cooldown_minutes": 30.0, "max_similarity": 0.98}


def distance_to_target(p: np.ndarray, target: float = 0.5, band: tuple | None = None) -> np.ndarray:
    """0 inside the band (then ordered by distance to its middle, in a lower tier), else the gap."""
    if band:
        lo, hi = band
        outside = np.maximum(lo - p, 0) + np.maximum(p - hi, 0)
        inside_order = np.abs(p - (lo + hi) / 2) / 10.0  # keeps in-band items ahead of any outside one
        return np.where(outside > 0, 1.0 + outside, inside_order)
    return np.abs(p - target)


def cooling(state: LearnerState, params: dict) -> list[str]:
    """Items answered wrongly less than `cooldown_minutes` ago."""
    cooldown = timedelta(minutes=float(params["cooldown_minutes"]))
    return [item_id for item_id, (_, outcome, at) in state.last.items()
            if outcome == 0 and state.now is not None and state.now - at < cooldown]


@register("target", needs=PROBABILITY)
def choose(scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
    params = {**DEFAULTS, **(params or {})}
    eligible = ~scored.mask(list(state.solved) + cooling(state, params))
    distance = distance_to_target(scored.scores, float(params["target"]), params.get("band"))
    chosen, order = pick_in_order(scored, distance, eligible, n, float(params["max_similarity"]))  # nearest first
    if order is None:
        return Choice(chosen)
    first = order[eligible[order]]
    # Relax: first allow near-duplicates, then the skipped items, nearest first.
    taken = set(chosen)
    rest = [int(p) for p in first if p not in taken] + [int(p) for p in order[~eligible[order]]]
    chosen += rest[: n - len(chosen)]
    return Choice(chosen, "too_few_candidates")

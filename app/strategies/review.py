"""`review`: items from the skills that are due for review (their forecast p has fallen below their
review threshold: app.serving.knowledge), most overdue first, each at the target difficulty.

Within a skill, target's rules: p nearest the target (default 0.5) or inside a band, an item
answered wrongly cools down, no near-duplicates. An item solved before is fair game: recalling
what was learned is the point of a review. When the due skills hold fewer than n such items, the
answer is filled with their skipped ones and the fallback `too_few_candidates` is named; when no
skill is due, there are no items and the fallback is `nothing_due`.
"""
from __future__ import annotations

import numpy as np

from app.strategies.base import PROBABILITY, Choice, LearnerState, Scored, SkillState, pick_in_order, register
from app.strategies.target import DEFAULTS, cooling, distance_to_target

SPAN = 10.0    # larger than any distance to the target (at most 2 with a band): a skill's rank comes first


def due_skills(skills: list[SkillState] | None) -> list[SkillState]:
    """The skills due now, most overdue first (ties by id)."""
    due = [s for s in skills or [] if s.overdue_s is not None and s.overdue_s >= 0 and len(s.positions)]
    return sorted(due, key=lambda s: (-s.overdue_s, s.unit_id))


def from_skills(scored: Scored, state: LearnerState, n: int, params: dict, skills: list[SkillState],
                skip_solved: bool) -> Choice:
    """n candidates of `skills`, the first skill's first (each nearest the target), then the next
    skill's, ...; a candidate in several skills counts in its first. Cooling items (and solved ones
    when `skip_solved`) are skipped, then used to fill the answer (`too_few_candidates`)."""
    params = {**DEFAULTS, **(params or {})}
    rank = np.full(len(scored.item_ids), np.inf)
    for k, skill in enumerate(skills):
        rank[skill.positions] = np.minimum(rank[skill.positions], k)
    keys = rank * SPAN + distance_to_target(scored.scores, float(params["target"]), params.get("band"))
    in_skills = np.isfinite(keys)
    skipped = cooling(state, params) + (list(state.solved) if skip_solved else [])
    eligible = in_skills & ~scored.mask(skipped)
    chosen, order = pick_in_order(scored, keys, eligible, n, float(params["max_similarity"]))
    if order is None:
        return Choice(chosen)
    # Relax: first allow near-duplicates, then the skipped items of these skills, in the same order.
    taken = set(chosen)
    rest = [int(p) for p in order[eligible[order]] if p not in taken] + \
           [int(p) for p in order[in_skills[order] & ~eligible[order]]]
    chosen += rest[: n - len(chosen)]
    return Choice(chosen, "too_few_candidates")


@register("review", needs=PROBABILITY, knowledge=True)
def choose(scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
    due = due_skills(state.skills)
    if not due:
        return Choice([], "nothing_due")
    return from_skills(scored, state, n, params, due, skip_solved=False)

"""`mastery`: items at the target difficulty from the weakest skill not yet mastered under the
request (app.serving.knowledge: mastered when the 90 % interval's low end reaches the unit's threshold).

Weakest: lowest p (the mean p(correct) over the skill's items). Under a unit whose attrs say it is
ordered (`{"mastery": {"ordered": true}}`), its children come in the hierarchy's order: every skill
under the first child not mastered before any under the next, the weakest first within each.
Within a skill, target's rules (p nearest the target, skip solved items, cool down after a wrong
answer, no near-duplicates); when the skill runs out, the next weakest follows, then the skipped
items (`too_few_candidates`). When every skill is mastered the fallback is `all_mastered` and the
answer serves review items (the `review` strategy) if a skill is due, else no items.
"""
from __future__ import annotations

from app.strategies.base import PROBABILITY, Choice, LearnerState, Scored, register
from app.strategies.review import due_skills, from_skills


@register("mastery", needs=PROBABILITY, knowledge=True)
def choose(scored: Scored, state: LearnerState, n: int, params: dict) -> Choice:
    skills = [s for s in state.skills or [] if len(s.positions)]
    learning = sorted((s for s in skills if not s.mastered),
                      key=lambda s: (s.order, s.p is None, s.p if s.p is not None else 0.0, s.unit_id))
    if learning:
        return from_skills(scored, state, n, params, learning, skip_solved=True)
    if not skills:
        return Choice([])
    due = due_skills(skills)
    if not due:
        return Choice([], "all_mastered")
    served = from_skills(scored, state, n, params, due, skip_solved=False)
    return Choice(served.positions, "+".join(f for f in ("all_mastered", served.fallback) if f))

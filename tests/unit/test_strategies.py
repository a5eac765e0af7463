"""Strategies and experiment assignment, without servers."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from app import strategies
from app.serving.experiments import assign
from app.strategies import LearnerState, Scored

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def scored(ps, vectors=None):
    ids = [f"i{k:03d}" for k in range(len(ps))]
    rows = np.arange(len(ps)) if vectors is not None else None
    return Scored(ids, np.array(ps, dtype=float), {i: k for k, i in enumerate(ids)}, vectors, rows)


def test_target_returns_the_nearest_eligible_items_to_the_target():
    rng = np.random.default_rng(0)
    ps = rng.random(300)
    s = scored(ps)
    state = LearnerState(now=NOW, solved={"i000", "i001", "i002"},
                         last={"i010": ("attempt", 0, NOW - timedelta(minutes=5)),
                               "i011": ("attempt", 0, NOW - timedelta(hours=2))})
    choice = strategies.get("target")(s, state, 10, {"target": 0.7})
    eligible = [k for k in range(300) if s.item_ids[k] not in state.solved and s.item_ids[k] != "i010"]
    expected = sorted(eligible, key=lambda k: abs(ps[k] - 0.7))[:10]
    assert choice.positions == expected and choice.fallback is None


def test_target_prefers_items_inside_a_band():
    s = scored([0.1, 0.45, 0.62, 0.68, 0.9])
    choice = strategies.get("target")(s, LearnerState(now=NOW), 2, {"band": [0.6, 0.7]})
    assert sorted(choice.positions) == [2, 3]


def test_target_skips_near_duplicates_and_relaxes_with_a_named_fallback():
    v = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    s = scored([0.5, 0.5, 0.9], vectors=v)
    choice = strategies.get("target")(s, LearnerState(now=NOW), 2, {})
    assert choice.positions == [0, 2] and choice.fallback is None  # item 1 duplicates item 0
    choice = strategies.get("target")(s, LearnerState(now=NOW, solved={"i000", "i001", "i002"}), 2, {})
    assert len(choice.positions) == 2 and choice.fallback == "too_few_candidates"


def test_excluded_items_are_never_returned_even_when_relaxing():
    s = scored([0.5, 0.4, 0.6])
    s.allowed = np.array([False, True, True])
    choice = strategies.get("target")(s, LearnerState(now=NOW), 3, {})
    assert 0 not in choice.positions and choice.fallback == "too_few_candidates"


def test_top_returns_unseen_items_best_first():
    s = scored([0.1, 0.9, 0.5, 0.8])
    state = LearnerState(now=NOW, last={"i001": ("view", None, NOW)})
    assert strategies.get("top")(s, state, 2, {}).positions == [3, 2]


def test_assignment_is_stable_and_follows_the_weights():
    variants = [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]
    first = [assign("exp", f"u{k}", variants)["name"] for k in range(4000)]
    again = [assign("exp", f"u{k}", variants)["name"] for k in range(4000)]
    assert first == again
    share = Counter(first)["b"] / 4000
    assert abs(share - 0.75) < 0.03
    other = [assign("other-exp", f"u{k}", variants)["name"] for k in range(4000)]
    assert other != first  # experiments split learners independently


def _reference(name, s, state, n, params):
    """The strategies as they were before ordering only a head of the candidates: a full stable
    sort, then the same picking (the answer must not change)."""
    from app.strategies.base import pick_diverse
    from app.strategies.target import DEFAULTS, distance_to_target

    if name == "top":
        unseen = ~s.mask(state.last)
        order = s.order(-s.scores)
        chosen = pick_diverse(order[unseen[order]], s, n, float(params.get("max_similarity", 1.0)))
        if len(chosen) == n:
            return chosen, None
        return chosen + [int(p) for p in order if p not in set(chosen)][: n - len(chosen)], "too_few_candidates"
    p = {**DEFAULTS, **params}
    cooling = [i for i, (_, o, at) in state.last.items() if o == 0 and state.now - at < timedelta(minutes=30)]
    eligible = ~s.mask(list(state.solved) + cooling)
    order = s.order(distance_to_target(s.scores, float(p["target"]), p.get("band")))
    first = order[eligible[order]]
    chosen = pick_diverse(first, s, n, float(p["max_similarity"]))
    if len(chosen) == n:
        return chosen, None
    rest = [int(q) for q in first if q not in set(chosen)] + [int(q) for q in order[~eligible[order]]]
    return chosen + rest[: n - len(chosen)], "too_few_candidates"


def test_ordering_only_the_head_gives_the_answers_of_a_full_sort():
    rng = np.random.default_rng(5)
    for trial in range(300):
        k = int(rng.choice([3, 40, 100, 600, 5000]))
        ps = np.round(rng.random(k), int(rng.choice([1, 2, 6])))  # few distinct values: many ties
        vectors = None
        if trial % 3 == 0:  # near-duplicates to skip: vectors drawn from a few directions
            base = rng.normal(size=(4, 8))
            vectors = base[rng.integers(0, 4, k)] + rng.normal(scale=0.01, size=(k, 8))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        s = scored(ps, vectors)
        ids = s.item_ids
        touched = rng.choice(k, size=min(k, int(rng.integers(0, k + 1))), replace=False)
        state = LearnerState(now=NOW, solved={ids[t] for t in touched[::2]},
                             last={ids[t]: ("attempt", int(rng.integers(0, 2)), NOW - timedelta(minutes=5))
                                   for t in touched})
        if trial % 4 == 1:
            s.allowed = rng.random(k) > 0.3
        n = int(rng.choice([1, 10, 50]))
        for name, params in (("target", {"target": float(rng.random())}), ("target", {"band": [0.3, 0.5]}),
                             ("top", {"max_similarity": 0.9 if vectors is not None else 1.0})):
            if vectors is not None and name == "target":
                params["max_similarity"] = 0.9
            got = strategies.get(name)(s, state, n, params)
            assert (got.positions, got.fallback) == _reference(name, s, state, n, params), (trial, name, params)


def test_smallest_first_is_the_prefix_of_a_stable_sort():
    from app.strategies.base import smallest_first

    rng = np.random.default_rng(1)
    for _ in range(200):
        keys = np.round(rng.random(int(rng.integers(1, 300))), 1)
        keys[rng.random(len(keys)) < 0.1] = np.inf
        k = int(rng.integers(0, len(keys) + 3))
        assert smallest_first(keys, k).tolist() == np.argsort(keys, kind="stable")[:k].tolist()


def test_when_the_head_is_all_near_duplicates_the_rest_is_searched_without_a_fallback():
    """The head (the nearest few) is one question in many copies; diverse ones lie further down:
    the answer is found among all candidates, as a full sort finds it, and no rule was relaxed."""
    rng = np.random.default_rng(2)
    k, d = 400, 8
    directions = rng.normal(size=(k, d))
    directions[:200] = directions[0]                  # the 200 nearest to the target: one question
    vectors = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    ps = np.r_[np.linspace(0.5, 0.55, 200), np.linspace(0.6, 0.95, 200)]
    s = scored(ps, vectors)
    state = LearnerState(now=NOW)
    for name, params in (("target", {"target": 0.5, "max_similarity": 0.9}), ("top", {"max_similarity": 0.9})):
        if name == "top":
            s.scores = 1.0 - np.abs(ps - 0.5)             # best scores on the copies too
        got = strategies.get(name)(s, state, 10, params)
        assert (got.positions, got.fallback) == _reference(name, s, state, 10, params), name
        assert got.fallback is None and len(set(got.positions)) == 10


def skill(unit_id, positions, p=0.5, mastered=False, overdue_s=None, order=()):
    return strategies.SkillState(unit_id, p, mastered, overdue_s, order, np.array(positions, dtype=np.intp))


def test_mastery_and_review_declare_that_they_need_the_learners_knowledge():
    assert strategies.get("mastery").knowledge and strategies.get("review").knowledge
    assert not strategies.get("target").knowledge and not strategies.get("top").knowledge
    assert strategies.get("mastery").needs == strategies.get("review").needs == strategies.PROBABILITY


def test_mastery_takes_the_weakest_unmastered_skill_then_the_next():
    s = scored([0.5, 0.45, 0.9, 0.55, 0.52, 0.5])
    skills = [skill("a", [0, 1], p=0.3, mastered=True), skill("b", [2, 3], p=0.6), skill("c", [4, 5], p=0.4)]
    state = LearnerState(now=NOW, skills=skills, solved={"i005"})
    choice = strategies.get("mastery")(s, state, 3, {})
    assert choice.positions == [4, 3, 2] and choice.fallback is None    # c (solved i005 skipped), then b
    ordered = [skill("a", [0, 1], p=0.3), skill("b", [2, 3], p=0.6, order=(0,)), skill("c", [4, 5], p=0.4, order=(1,))]
    assert strategies.get("mastery")(s, LearnerState(now=NOW, skills=ordered), 1, {}).positions == [0]
    assert strategies.get("mastery")(s, LearnerState(now=NOW, skills=ordered[1:]), 1, {}).positions == [3]


def test_mastery_when_all_is_mastered_and_review_order_by_overdue():
    s = scored([0.5, 0.4, 0.6, 0.5])
    done = [skill("a", [0, 1], mastered=True, overdue_s=-5.0), skill("b", [2, 3], mastered=True)]
    nothing_due = LearnerState(now=NOW, skills=done)
    assert strategies.get("mastery")(s, nothing_due, 2, {}) == strategies.Choice([], "all_mastered")
    due = [skill("a", [0, 1], mastered=True, overdue_s=60.0), skill("b", [2, 3], mastered=True, overdue_s=3600.0)]
    state = LearnerState(now=NOW, skills=due, solved={"i002", "i003"})
    choice = strategies.get("mastery")(s, state, 3, {})
    assert choice.positions == [3, 2, 0] and choice.fallback == "all_mastered"   # b is more overdue; solved is fine
    assert strategies.get("review")(s, state, 3, {}).positions == [3, 2, 0]
    assert strategies.get("review")(s, nothing_due, 2, {}) == strategies.Choice([], "nothing_due")


def test_knowledge_strategies_never_return_excluded_items_even_when_relaxing():
    s = scored([0.5, 0.4, 0.6, 0.5])
    s.allowed = np.array([True, False, True, True])
    for name, skills in (("mastery", [skill("a", [0, 1])]), ("review", [skill("a", [0, 1], overdue_s=1.0)])):
        state = LearnerState(now=NOW, skills=skills, solved={"i000"})
        choice = strategies.get(name)(s, state, 3, {})
        assert 1 not in choice.positions and set(choice.positions) <= {0}, name
        assert choice.fallback == "too_few_candidates", name

"""Strategies and experiment assignment, without servers."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from app import strategies
from app.experiments import assign
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

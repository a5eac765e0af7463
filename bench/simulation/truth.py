"""The known truth: items with a difficulty and a discrimination, learners whose ability per
skill grows as they practise and fades a little between sessions.

p(correct | learner u, item i) = sigmoid(a_i * (theta_u + offset_{u,s(i)} + learned_{u,s(i)} - b_i))
(two-parameter logistic; s(i) is the item's skill, i.e. its section).

Learning: each attempt raises the learner's ability on the item's skill by
rate * 4 p (1 - p), p the true success probability of that attempt: an item at the learner's
level (p = 0.5) teaches the most, one far too easy or far too hard almost nothing. The outcome
does not enter (practice teaches, success or not), so a policy's learning gain depends only on
which items it serves. Forgetting: between sessions the learned part shrinks by a fraction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class Catalogue:
    """n items in `skills` sections: difficulty b (n,), discrimination a (n,), skill (n,) int."""
    difficulty: np.ndarray
    discrimination: np.ndarray
    skill: np.ndarray
    skills: int

    @property
    def size(self) -> int:
        return len(self.difficulty)


def make_catalogue(rng: np.random.Generator, items: int, skills: int, spread: float = 1.5,
                   within: float = 0.7, discrimination_sd: float = 0.3) -> Catalogue:
    """Sections of (nearly) equal size whose mean difficulty rises from -spread to +spread;
    b_i ~ N(section mean, within); a_i ~ lognormal(0, discrimination_sd), clipped to [0.4, 2.5]."""
    if skills < 1 or items < skills:
        raise ValueError(f"need at least one item per skill, got {items} items for {skills} skills")
    skill = np.repeat(np.arange(skills), -(-items // skills))[:items]
    means = np.linspace(-spread, spread, skills) if skills > 1 else np.zeros(1)
    b = rng.normal(means[skill], within)
    a = np.clip(np.exp(rng.normal(0.0, discrimination_sd, items)), 0.4, 2.5)
    return Catalogue(difficulty=b, discrimination=a, skill=skill, skills=skills)


@dataclass
class Learners:
    """Abilities of n learners: general theta (n,), per-skill offset (n, skills) fixed at birth,
    learned (n, skills) grown by practice; solved (n, items) bool: ever answered correctly."""
    theta: np.ndarray
    offset: np.ndarray
    learned: np.ndarray
    solved: np.ndarray

    def copy(self) -> Learners:
        return Learners(self.theta.copy(), self.offset.copy(), self.learned.copy(), self.solved.copy())

    def __len__(self) -> int:
        return len(self.theta)


def make_learners(rng: np.random.Generator, n: int, catalogue: Catalogue, skill_sd: float = 0.5) -> Learners:
    """theta ~ N(0, 1), offsets ~ N(0, skill_sd); nothing learned or solved yet."""
    return Learners(theta=rng.normal(0.0, 1.0, n), offset=rng.normal(0.0, skill_sd, (n, catalogue.skills)),
                    learned=np.zeros((n, catalogue.skills)), solved=np.zeros((n, catalogue.size), dtype=bool))


def probabilities(catalogue: Catalogue, learners: Learners, u: int, items: np.ndarray | None = None) -> np.ndarray:
    """True p(correct) of learner u on `items` (default every item): (len(items),)."""
    idx = np.arange(catalogue.size) if items is None else np.asarray(items)
    s = catalogue.skill[idx]
    ability = learners.theta[u] + learners.offset[u, s] + learners.learned[u, s]
    return sigmoid(catalogue.discrimination[idx] * (ability - catalogue.difficulty[idx]))


def practise(catalogue: Catalogue, learners: Learners, u: int, item: int, p: float, outcome: int,
             rate: float) -> None:
    """After learner u attempted `item` (true probability p, the drawn outcome): learning, and the
    item counts as solved once answered correctly."""
    learners.learned[u, catalogue.skill[item]] += rate * 4.0 * p * (1.0 - p)
    if outcome:
        learners.solved[u, item] = True


def forget(learners: Learners, fraction: float, u: int | None = None) -> None:
    """Between sessions: every learned gain (of learner u, or of all) shrinks by `fraction`."""
    if u is None:
        learners.learned *= 1.0 - fraction
    else:
        learners.learned[u] *= 1.0 - fraction


def ability(learners: Learners, u: int | np.ndarray | None = None) -> np.ndarray | float:
    """True ability: the mean over skills of theta + offset + learned (one learner, or each)."""
    total = learners.theta[:, None] + learners.offset + learners.learned
    mean = total.mean(axis=1)
    return mean if u is None else mean[u]

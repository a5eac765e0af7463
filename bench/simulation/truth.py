"""The known truth: items with a difficulty and a discrimination, learners whose ability per
skill grows as they practise and fades with the time they stay away. Every rule of the truth is
here, used by the simulated learners and by the ceiling policy that knows these rules.

p(correct | learner u, item i) = sigmoid(a_i * (theta_u + offset_{u,s(i)} + learned_{u,s(i)} - b_i))
(two-parameter logistic; s(i) is the item's skill, i.e. its section).

Learning: each attempt raises the learner's ability on the item's skill by
rate * 4 p (1 - p), p the true success probability of that attempt: an item at the learner's
level (p = 0.5) teaches the most, one far too easy or far too hard almost nothing. The outcome
does not enter (practice teaches, success or not), so a policy's learning gain depends only on
which items it serves. Forgetting: the learned part decays towards the learner's base ability
(theta + offset) with a half-life in days of time away (`retained`).

Population (what a learner is drawn from, and the prior of a policy that does not know them):
theta ~ N(0, THETA_SD), offset per skill ~ N(0, SKILL_SD), so the base abilities of one learner's
skills are jointly normal with covariance THETA_SD^2 (all pairs) + SKILL_SD^2 (diagonal).

Time: a learner comes back after a gap drawn from a lognormal distribution (median
GAP_MEDIAN_DAYS, log-sd GAP_LOG_SD: most gaps are a day or two, one in seven is over a week),
clipped to GAP_RANGE_DAYS; within a session an attempt takes a minute.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THETA_SD = 1.0
SKILL_SD = 0.5
GAP_MEDIAN_DAYS = 2.0
GAP_LOG_SD = 1.2
GAP_RANGE_DAYS = (2.0 / 24.0, 30.0)   # two hours to a month
ATTEMPT_DAYS = 1.0 / (24 * 60)        # a minute per attempt


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


def prior_covariance(skills: int) -> np.ndarray:
    """(skills, skills) covariance of a new learner's base ability per skill (theta + offset)."""
    return THETA_SD ** 2 * np.ones((skills, skills)) + SKILL_SD ** 2 * np.eye(skills)


def make_learners(rng: np.random.Generator, n: int, catalogue: Catalogue) -> Learners:
    """theta ~ N(0, THETA_SD), offsets ~ N(0, SKILL_SD); nothing learned or solved yet."""
    return Learners(theta=rng.normal(0.0, THETA_SD, n), offset=rng.normal(0.0, SKILL_SD, (n, catalogue.skills)),
                    learned=np.zeros((n, catalogue.skills)), solved=np.zeros((n, catalogue.size), dtype=bool))


def probabilities(catalogue: Catalogue, learners: Learners, u: int, items: np.ndarray | None = None) -> np.ndarray:
    """True p(correct) of learner u on `items` (default every item): (len(items),)."""
    idx = np.arange(catalogue.size) if items is None else np.asarray(items)
    s = catalogue.skill[idx]
    ability = learners.theta[u] + learners.offset[u, s] + learners.learned[u, s]
    return sigmoid(catalogue.discrimination[idx] * (ability - catalogue.difficulty[idx]))


def gain(p: np.ndarray | float, rate: float) -> np.ndarray | float:
    """Ability gained on the skill by an attempt whose true success probability is p."""
    return rate * 4.0 * p * (1.0 - p)


def retained(days: np.ndarray | float, half_life_days: float) -> np.ndarray | float:
    """The share of the learned ability left after `days` away (1 with no forgetting: half-life inf)."""
    return 0.5 ** (np.asarray(days, dtype=np.float64) / half_life_days)


def practise(catalogue: Catalogue, learners: Learners, u: int, item: int, p: float, outcome: int,
             rate: float) -> None:
    """After learner u attempted `item` (true probability p, the drawn outcome): learning, and the
    item counts as solved once answered correctly."""
    learners.learned[u, catalogue.skill[item]] += gain(p, rate)
    if outcome:
        learners.solved[u, item] = True


def forget(learners: Learners, days: float, half_life_days: float, u: int | None = None) -> None:
    """After `days` away: every learned gain (of learner u, or of all) decays towards zero, i.e. the
    ability towards the base (theta + offset)."""
    if u is None:
        learners.learned *= retained(days, half_life_days)
    else:
        learners.learned[u] *= retained(days, half_life_days)


def away_days(rng: np.random.Generator, size, median_days: float = GAP_MEDIAN_DAYS) -> np.ndarray:
    """Days between the end of a learner's session and the start of their next one."""
    days = median_days * np.exp(rng.normal(0.0, GAP_LOG_SD, size))
    return np.clip(days, *GAP_RANGE_DAYS)


def ability(learners: Learners, u: int | np.ndarray | None = None) -> np.ndarray | float:
    """True ability: the mean over skills of theta + offset + learned (one learner, or each)."""
    total = learners.theta[:, None] + learners.offset + learners.learned
    mean = total.mean(axis=1)
    return mean if u is None else mean[u]

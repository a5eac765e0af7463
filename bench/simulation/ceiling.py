"""The realistic ceiling: a policy that knows every item's true parameters and the truth's rules
but not the learner, so it judges the service against what is achievable from the answers alone.

Its belief about one learner (bench.simulation.truth's notation):
  base ability per skill (theta + offset) ~ N(mean, cov), started from the population prior
  (truth.prior_covariance: the skills of one learner are correlated through theta), and
  learned (skills,): the expected ability the learner has gained by practice, kept apart.
  ability_s = base_s + learned_s.
After an answer on item i of skill s: the marginal of ability_s is updated exactly on a
Gauss-Hermite grid (the 2PL likelihood of the outcome) and its new mean and variance carried to
every skill by the Gaussian's covariance (assumed density filtering: the best Gaussian after each
answer). Then the truth's learning rule moves it: learned_s += E[gain(p)] under that posterior,
p the attempt's true probability. Between sessions the truth's forgetting rule decays `learned`
by the days away. It serves the eligible item whose posterior predictive p (the mean of the 2PL
over the belief) is nearest the target. Pure numpy.
"""
from __future__ import annotations

import numpy as np

from bench.simulation.policies import Policy
from bench.simulation.truth import Catalogue, gain, prior_covariance, retained, sigmoid

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(31)   # for N(0, 1): sum w f(x) = E f(x)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


class Belief:
    """A Gaussian over one learner's base ability per skill and their expected learned gain.

    mean (skills,), cov (skills, skills), learned (skills,)."""

    def __init__(self, skills: int):
        self.mean = np.zeros(skills)
        self.cov = prior_covariance(skills)
        self.learned = np.zeros(skills)

    def ability(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the current ability per skill: (skills,), (skills,)."""
        return self.mean + self.learned, np.diag(self.cov).copy()

    def predict(self, catalogue: Catalogue) -> np.ndarray:
        """Posterior predictive p(correct) of every item: (items,)."""
        m, v = self.ability()
        s = catalogue.skill
        z = m[s, None] + np.sqrt(v[s, None]) * NODES[None, :]            # (items, nodes)
        p = sigmoid(catalogue.discrimination[:, None] * (z - catalogue.difficulty[:, None]))
        return p @ WEIGHTS

    def update(self, catalogue: Catalogue, item: int, outcome: int, rate: float) -> None:
        """The learner answered `item`: condition on the outcome, then learn as the truth does."""
        s, a, b = catalogue.skill[item], catalogue.discrimination[item], catalogue.difficulty[item]
        m, v = self.mean[s] + self.learned[s], self.cov[s, s]
        z = m + np.sqrt(v) * NODES
        p = sigmoid(a * (z - b))
        w = WEIGHTS * (p if outcome else 1.0 - p)
        w = w / w.sum()
        m_post = float(w @ z)
        v_post = float(w @ (z - m_post) ** 2)
        column = self.cov[:, s].copy()
        self.mean = self.mean + column * (m_post - m) / v
        self.cov = self.cov - np.outer(column, column) * (v - v_post) / v ** 2
        self.learned[s] += float(w @ gain(p, rate))   # E[gain] under the posterior of this attempt's p

    def elapse(self, days: float, half_life_days: float) -> None:
        self.learned = self.learned * retained(days, half_life_days)


class CeilingPolicy(Policy):
    """The eligible item whose posterior predictive p is nearest the target."""

    def __init__(self, catalogue: Catalogue, target: float, rate: float, half_life_days: float):
        self.catalogue, self.target = catalogue, target
        self.rate, self.half_life_days = rate, half_life_days
        self.belief = Belief(catalogue.skills)

    def choose(self, p_true: np.ndarray, eligible: np.ndarray) -> int:
        p = self.belief.predict(self.catalogue)             # never looks at p_true
        item = int(np.argmin(np.where(eligible, np.abs(p - self.target), np.inf)))
        self.predicted = float(p[item])
        return item

    def observe(self, item: int, outcome: int) -> None:
        self.belief.update(self.catalogue, item, outcome, self.rate)

    def elapse(self, days: float) -> None:
        self.belief.elapse(days, self.half_life_days)

"""The demo's learners: a true ability per subject (correlated across subjects), how active each
is, which subjects they favour, when they join, and their grade, country and level."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.demo.catalogue import N_SUBJECTS, SUBJECTS
from jobs.demo.config import ROOT_UNIT, WINDOW_DAYS

COUNTRIES = ("US", "IN", "GB", "NG", "BR", "DE", "CA", "AU", "KE", "PH")
COUNTRY_WEIGHTS = (0.30, 0.18, 0.10, 0.08, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04)


@dataclass
class Learners:
    ids: np.ndarray
    ability: np.ndarray         # (learners, subjects): theta
    activity: np.ndarray        # relative activity weight (heavy tailed)
    subject_pref: np.ndarray    # (learners, subjects) probabilities, favouring strong subjects
    start_day: np.ndarray       # first active day within the window
    attrs: list
    level: np.ndarray | None = None   # the level each learner studies (all 0 with one level)


def build_learners(rng: np.random.Generator, n: int, grade_effect: float = 0.0, levels: int = 1) -> Learners:
    general = rng.normal(0, 1, (n, 1))
    specific = rng.normal(0, 1, (n, N_SUBJECTS))
    ability = np.round(np.sqrt(0.5) * general + np.sqrt(0.5) * specific, 4)
    activity = rng.lognormal(0.0, 1.0, n)                 # a few learners do most of the work
    taste = ability + rng.normal(0, 0.5, (n, N_SUBJECTS))   # prefer strong subjects, noisily
    pref = np.exp(taste - taste.max(axis=1, keepdims=True))
    pref /= pref.sum(axis=1, keepdims=True)
    start_day = rng.uniform(0, 0.6 * WINDOW_DAYS, n)      # later learners join during the window
    grade = rng.integers(9, 13, n)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    if grade_effect:    # after every draw, so the other arrays stay those of grade_effect 0
        ability = np.round(ability + grade_effect * (grade - 10.5)[:, None], 4)
    width = max(4, len(str(n)))
    ids = np.array([f"{ROOT_UNIT}.u{i:0{width}d}" for i in range(1, n + 1)])
    subject_ids = [f"{ROOT_UNIT}.{code}" for code, _, _ in SUBJECTS]
    attrs = [{"true_ability": dict(zip(subject_ids, row)), "grade": g, "country": COUNTRIES[c]}
             for row, g, c in zip(ability.tolist(), grade.tolist(), country.tolist())]
    # After every other draw, so one level gives the classic demo's learners.
    level = rng.integers(0, levels, n) if levels > 1 else np.zeros(n, dtype=np.int64)
    if levels > 1:
        for a, lv in zip(attrs, level.tolist()):
            a["level"] = lv + 1
    return Learners(ids, ability, activity, pref, start_day, attrs, level)

"""The whole generated data set, built from one seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.demo.catalogue import Catalogue, build_catalogue
from jobs.demo.config import DemoConfig
from jobs.demo.events import Events, build_attempts, build_engagements
from jobs.demo.learners import Learners, build_learners


@dataclass
class DemoData:
    config: DemoConfig
    catalogue: Catalogue
    learners: Learners
    attempts: Events
    engagements: Events


def build(config: DemoConfig) -> DemoData:
    """Generate the whole data set in memory; the same config always gives identical arrays."""
    config.validate()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)]
    catalogue = build_catalogue(streams[0], config.levels)
    learners = build_learners(streams[1], config.learners, config.grade_effect, config.levels)
    attempts = build_attempts(streams[2], catalogue, learners, config.attempts)
    engagements = build_engagements(streams[3], catalogue, learners, config.engagements)
    return DemoData(config, catalogue, learners, attempts, engagements)


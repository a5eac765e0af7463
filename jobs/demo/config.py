"""The demo's fixed anchors (the root unit, the reference time) and its size, DemoConfig."""
from __future__ import annotations

from dataclasses import dataclass

from app.config import ConfigError

ROOT_UNIT = "demo"
GENERATOR_VERSION = 1
# Fixed so the same seed gives the same rows on any day; events fall in the WINDOW_DAYS before it.
REFERENCE_TIME = "2025-01-06T00:00:00"  # UTC
WINDOW_DAYS = 90
MAX_LEVELS = 20


class DemoError(ConfigError):
    """The demo cannot be generated as asked (bad config, or another demo is already loaded).

    A ConfigError, so the CLI prints it as one line."""


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    learners: int = 2000
    attempts: int = 200_000
    engagements: int = 50_000
    grade_effect: float = 0.0     # logits of ability per school grade (0: metadata says nothing)
    levels: int = 1               # courses per subject (a learner studies one level); 1: the classic demo

    def validate(self) -> None:
        if self.seed < 0:
            raise DemoError(f"the demo seed must be 0 or more, got {self.seed}")
        if self.learners < 1 or self.attempts < 1 or self.engagements < 0:
            raise DemoError("the demo needs at least 1 learner and 1 attempt, and 0 or more engagements")
        if not 1 <= self.levels <= MAX_LEVELS:
            raise DemoError(f"the demo has 1 to {MAX_LEVELS} levels per subject, got {self.levels}")
        if not -3.0 <= self.grade_effect <= 3.0:
            raise DemoError(f"the grade effect must be between -3 and 3 logits per grade, got {self.grade_effect}")

    def as_attrs(self) -> dict:
        return {"version": GENERATOR_VERSION, "seed": self.seed, "learners": self.learners,
                "attempts": self.attempts, "engagements": self.engagements,
                "reference_time": REFERENCE_TIME + "Z"} | (
            {"grade_effect": self.grade_effect} if self.grade_effect else {}) | (
            {"levels": self.levels} if self.levels > 1 else {})

"""Recommendation strategies, one module each (target, top, mastery, review), registered by name in
app.strategies.base; importing this package registers them all."""
from app.strategies import mastery, review, target, top
from app.strategies.base import (
                                 OBJECTIVES,
                                 PROBABILITY,
                                 RANKING,
                                 REGISTRY,
                                 Choice,
                                 LearnerState,
                                 Scored,
                                 SkillState,
                                 Strategy,
                                 get,
                                 pick_diverse,
                                 register,
)

__all__ = ["OBJECTIVES", "PROBABILITY", "RANKING", "REGISTRY", "Choice", "LearnerState", "Scored", "SkillState",
           "Strategy", "get", "mastery", "pick_diverse", "register", "review", "target", "top"]

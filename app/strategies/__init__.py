"""Recommendation strategies, one module each (target, top), registered by name in
app.strategies.base; importing this package registers them all."""
from app.strategies import target, top
from app.strategies.base import (
                                 OBJECTIVES,
                                 PROBABILITY,
                                 RANKING,
                                 REGISTRY,
                                 Choice,
                                 LearnerState,
                                 Scored,
                                 Strategy,
                                 get,
                                 pick_diverse,
                                 register,
)

__all__ = ["OBJECTIVES", "PROBABILITY", "RANKING", "REGISTRY", "Choice", "LearnerState", "Scored", "Strategy",
           "get", "pick_diverse", "register", "target", "top"]

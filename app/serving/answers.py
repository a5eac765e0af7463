"""What the request path answers, as typed values: the API, Totara's endpoints and the dashboard
read these fields; only `as_json` turns them into the documented JSON (where the fallbacks are one
string joined by "+"), so nothing parses an answer back."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelRef:
    """Which stored model answered."""
    model_id: int
    unit_id: str
    objective: str
    mode: str
    tag: str

    @classmethod
    def of(cls, model) -> ModelRef | None:
        return None if model is None else cls(model.model_id, model.unit_id, model.objective, model.mode, model.tag)

    def as_json(self) -> dict:
        return {"model_id": self.model_id, "unit_id": self.unit_id, "objective": self.objective,
                "mode": self.mode, "tag": self.tag}


def _model_json(model: ModelRef | None) -> dict | None:
    return None if model is None else model.as_json()


def _fallback_json(fallbacks: list[str]) -> str | None:
    return "+".join(fallbacks) if fallbacks else None


@dataclass
class Recommendation:
    """POST /v1/recommendations' answer. `scores` holds p(correct) when `probabilities`, else a
    ranking score; `items` and `scores` are in the order chosen."""
    request_id: str
    user_id: str
    items: list[str]
    scores: list[float]
    probabilities: bool
    model: ModelRef | None
    strategy: str
    experiment: str | None
    variant: str | None
    fallbacks: list[str] = field(default_factory=list)
    history_rows: int = 0
    candidates: int = 0
    explored: bool = False

    @property
    def fallback(self) -> str | None:
        """The fallbacks as the API and the log name them: joined by "+", None when there was none."""
        return _fallback_json(self.fallbacks)

    def as_json(self) -> dict:
        key = "p" if self.probabilities else "score"
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "items": [{"item_id": i, key: round(s, 6)} for i, s in zip(self.items, self.scores)],
            "model": _model_json(self.model),
            "strategy": self.strategy,
            "experiment": self.experiment,
            "variant": self.variant,
            "fallback": self.fallback,
            "history_rows": self.history_rows,
            "candidates": self.candidates,
            "explored": self.explored,
        }

    def log_row(self, tenant: str, units: list[str]) -> dict:
        """The row of `recommendation_log` (app.serving.recommendation_log) for this answer."""
        return {"tenant": tenant, "request_id": self.request_id, "user_id": self.user_id, "units": list(units),
                "experiment": self.experiment, "variant": self.variant, "strategy": self.strategy,
                "model_id": self.model.model_id if self.model else None, "fallback": self.fallback,
                "history_rows": self.history_rows, "item_ids": list(self.items), "scores": list(self.scores)}


@dataclass
class Prediction:
    """POST /v1/predictions' answer: p(correct) of each asked item, in the order asked."""
    user_id: str
    items: list[str]
    p: list[float]
    model: ModelRef | None
    fallbacks: list[str] = field(default_factory=list)
    history_rows: int = 0

    def as_json(self) -> dict:
        return {"user_id": self.user_id,
                "items": [{"item_id": i, "p": round(v, 6)} for i, v in zip(self.items, self.p)],
                "model": _model_json(self.model),
                "fallback": _fallback_json(self.fallbacks),
                "history_rows": self.history_rows}

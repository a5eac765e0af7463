"""Request and response models of the HTTP API. The same classes validate request bodies,
the JSONL import lines, and generate /openapi.json, so the document cannot drift from the code."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
                      field_validator, model_validator)

MAX_BATCH = 1000       # events per POST /v1/interactions, and users/items/units per batch upsert
MAX_LIST = 10000       # children or items listed in one unit
MAX_ID_LENGTH = 256
MAX_TEXT = 100_000


def _id_from_number(value: Any) -> Any:
    # Platform backends often use integer ids; they are identifiers, never numbers, here.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Identifier = Annotated[
    str,
    BeforeValidator(_id_from_number),
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f]+$"),
    Field(description="An identifier: 1-256 characters, no control characters; integers are accepted as text."),
]
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                 Field(description="Lower-case word: letters, digits, underscore; up to 32 characters.")]
Attrs = Annotated[dict[str, Any], Field(description="Free metadata (JSON object): topics, labels, ...")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# ---- users ------------------------------------------------------------------------------
class UserFields(Strict):
    attrs: Attrs = Field(default_factory=dict)


class User(UserFields):
    user_id: Identifier


class UserBatch(Strict):
    users: list[User] = Field(min_length=1, max_length=MAX_BATCH)


class UserOut(BaseModel):
    user_id: str
    attrs: dict[str, Any]
    interactions: int = Field(description="Interactions recorded for this user.")


# ---- items ------------------------------------------------------------------------------
class ItemFields(Strict):
    kind: Kind = "question"
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    body: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = Field(
        default=None, description="Free text (description, content) used by the full hybrid mode.")
    attrs: Attrs = Field(default_factory=dict)
    active: bool = True
    units: list[Identifier] | None = Field(
        default=None, max_length=1000,
        description="If given, the units this item belongs to (replaces its memberships).")


class Item(ItemFields):
    item_id: Identifier


class ItemBatch(Strict):
    items: list[Item] = Field(min_length=1, max_length=MAX_BATCH)


class ItemOut(BaseModel):
    item_id: str
    kind: str
    title: str | None
    body: str | None
    attrs: dict[str, Any]
    active: bool
    units: list[str]


# ---- units ------------------------------------------------------------------------------
class UnitFields(Strict):
    name: Annotated[str, StringConstraints(max_length=1000)] | None = None
    kind: Kind = "unit"
    attrs: Attrs = Field(default_factory=dict)
    children: list[Identifier] | None = Field(
        default=None, max_length=MAX_LIST,
        description="If given, the child units (replaces the current children). The hierarchy must stay acyclic.")
    items: list[Identifier] | None = Field(
        default=None, max_length=MAX_LIST,
        description="If given, the items directly in this unit (replaces the current list).")


class Unit(UnitFields):
    unit_id: Identifier


class UnitBatch(Strict):
    units: list[Unit] = Field(min_length=1, max_length=MAX_BATCH)


class UnitOut(BaseModel):
    unit_id: str
    name: str | None
    kind: str
    attrs: dict[str, Any]
    parents: list[str]
    children: list[str]
    items: list[str] = Field(description="Items directly in this unit.")
    items_under: int = Field(description="Active items under this unit through the whole hierarchy.")


class UpsertResult(BaseModel):
    upserted: int


# ---- interactions -----------------------------------------------------------------------
class Interaction(Strict):
    event_id: Identifier | None = Field(
        default=None,
        description="Idempotency key: a retry with the same event_id is stored once. "
                    "Without one the server makes one, and retries are not deduplicated.")
    user_id: Identifier
    item_id: Identifier
    kind: Kind = Field(default="attempt", description="attempt, view, like, complete, rating, ...")
    outcome: Literal[0, 1] | None = Field(
        default=None, description="1 correct / positive, 0 wrong / leisurely. Required for attempts.")
    value: float | None = Field(default=None, description="Rating or strength (Totara: 0 leisurely, 1 positive).")
    duration_ms: int | None = Field(default=None, ge=0, le=2_147_483_647)
    response: dict[str, Any] | None = None
    occurred_at: datetime | None = Field(
        default=None, description="ISO 8601; without a zone it is UTC. Defaults to the time received.")

    @field_validator("outcome", mode="before")
    @classmethod
    def _bool_outcome(cls, v: Any) -> Any:
        return int(v) if isinstance(v, bool) else v

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v

    @model_validator(mode="after")
    def _attempt_has_outcome(self) -> "Interaction":
        if self.kind == "attempt" and self.outcome is None:
            raise ValueError("an attempt needs an outcome (1 correct, 0 wrong)")
        return self


class InteractionBatch(Strict):
    interactions: list[Interaction] = Field(min_length=1, max_length=MAX_BATCH)


class EventResult(BaseModel):
    event_id: str
    status: Literal["created", "duplicate"]


class IngestResult(BaseModel):
    created: int
    duplicates: int
    events: list[EventResult]


# ---- health and errors ------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    postgres: Literal["ok", "down"]
    redis: Literal["ok", "down"]
    migrations_pending: int | None = None


class ProblemDetail(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (content type application/problem+json)."""
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemDetail] | None = None

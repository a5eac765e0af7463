"""The input records: users, items, units and interactions as the service accepts them, and the
one rule for an identifier. The HTTP API (app.api.schemas), the JSONL importer and the catalogue
and ingest services validate with these same classes, so a record means the same thing on every
way in. No Flask here: jobs and benches import this module without the web stack."""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.errors import InputError

MAX_LIST = 10000       # children or items listed in one unit
MAX_ID_LENGTH = 256
MAX_TEXT = 100_000
REAL_MAX = 3.4e38      # the range of a Postgres real (interactions.value)
REAL_TINY = 1e-38


def _id_from_number(value: Any) -> Any:
    # Platform backends often use integer ids; they are identifiers, never numbers, here. JSON
    # Schema counts 5.0 as the integer 5, so the document's {"type": "integer"} admits it too.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _integral(value: Any) -> Any:
    # JSON Schema counts 23.0 as the integer 23, so a documented "integer" admits it (strict
    # models would refuse any float).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def WholeNumber(minimum: int, maximum: int) -> Any:
    """An integer in [minimum, maximum]; 23.0 counts. (The bounds go before the validator, or
    pydantic writes them into the document as `ge` / `le` instead of minimum / maximum.)"""
    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(_integral)]

_ID_PATTERN = r"^[^\x00-\x1f]+$"
ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": _ID_PATTERN}  # as text
Identifier = Annotated[
    str,
    BeforeValidator(_id_from_number),
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=_ID_PATTERN),
    # Documented as what is accepted, integers included (pydantic alone would document only the string).
    WithJsonSchema({
        "anyOf": [ID_SCHEMA, {"type": "integer"}],
        "description": "An identifier: 1-256 characters, no control characters; integers are accepted as text.",
    }, mode="validation"),
]
_IDENTIFIER = TypeAdapter(Identifier)


def id_problem(value: str) -> str | None:
    """What is wrong with `value` as an identifier, or None when it is one (the one id rule)."""
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError as exc:
        return exc.errors(include_url=False)[0]["msg"]
    return None


def identifier(field: str, value: str) -> str:
    """An id taken from a path or query string, checked like an id in a body (a NUL character
    or a 10,000-character id is bad input, never a database error)."""
    message = id_problem(value)
    if message is not None:
        raise InputError(f"{field}: {message}", [{"field": field, "message": message}])
    return value


Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                 Field(description="Lower-case word: letters, digits, underscore; up to 32 characters.")]

# Postgres stores no NUL character in text or jsonb, and UTF-8 has no unpaired surrogates (JSON's
# "\ud800" escape makes one); jsonb has no NaN or Infinity (Python's JSON parser accepts them).
# Refused here as bad input, never left for the database to fail on.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


UNSTORABLE_TEXT = "text must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters"


def text_problem(value: str) -> str | None:
    """What makes `value` unstorable as Postgres text, or None when it can be stored."""
    return UNSTORABLE_TEXT if _UNSTORABLE.search(value) else None


def _storable_text(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError(UNSTORABLE_TEXT)
    return value


def _storable_json(value: Any) -> Any:
    """Every string (keys too) storable and every number finite, however deep (walked without recursion)."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            _storable_text(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(node, dict):
            for key in node:
                _storable_text(key)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return value


def Text(max_length: int) -> Any:
    """Free text of at most `max_length` characters, storable in Postgres. (No `pattern` in the
    document: joined with maxLength it becomes a regex that fuzzers take seconds to compile.)"""
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(_storable_text)]


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
Attrs = Annotated[JsonObject, Field(description="Free metadata (JSON object): topics, labels, ... "
                                                "No NUL characters, no NaN or Infinity.")]


class Strict(BaseModel):
    # Unknown fields are refused, and values are taken only as the JSON types the document gives
    # them: no "10" for 10, no 0 for false (pydantic's default lax mode would convert both).
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


# ---- users ------------------------------------------------------------------------------
class UserFields(Strict):
    attrs: Attrs = Field(default_factory=dict)


class User(UserFields):
    user_id: Identifier






# ---- items ------------------------------------------------------------------------------
class ItemFields(Strict):
    kind: Kind = "question"
    title: Text(1000) | None = None
    body: Text(MAX_TEXT) | None = Field(
        default=None, description="Free text (description, content) used by the full hybrid mode.")
    attrs: Attrs = Field(default_factory=dict)
    active: bool = True
    units: list[Identifier] | None = Field(
        default=None, max_length=1000,
        description="If given, the units this item belongs to (replaces its memberships).")


class Item(ItemFields):
    item_id: Identifier






# ---- units ------------------------------------------------------------------------------
class UnitFields(Strict):
    name: Text(1000) | None = None
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








# ---- interactions -----------------------------------------------------------------------
def _outcome_from_bool(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


# 0 or 1; true and false are accepted too, and documented as such.
Outcome = Annotated[Literal[0, 1], BeforeValidator(_outcome_from_bool, json_schema_input_type=Literal[0, 1] | bool)]


class Interaction(Strict):
    # The attempt rule of _attempt_has_outcome, in the document: kind attempt (the default) needs an outcome.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"kind": {"const": "attempt"}}},
        "then": {"required": ["outcome"], "properties": {"outcome": {"not": {"type": "null"}}}}})

    event_id: Identifier | None = Field(
        default=None,
        description="Idempotency key: a retry with the same event_id is stored once. "
                    "Without one the server makes one, and retries are not deduplicated.")
    user_id: Identifier
    item_id: Identifier
    kind: Kind = Field(default="attempt", description="attempt, view, like, complete, rating, ...")
    outcome: Outcome | None = Field(
        default=None, description="1 correct / positive, 0 wrong / leisurely (true / false too). "
                                  "Required for attempts.")
    # Stored as a 4-byte real: larger magnitudes overflow it (and Postgres refuses them).
    value: float | None = Field(default=None, json_schema_extra={"minimum": -REAL_MAX, "maximum": REAL_MAX},
                                description="Rating or strength (Totara: 0 leisurely, 1 positive).")
    duration_ms: WholeNumber(0, 2_147_483_647) | None = None
    response: JsonObject | None = None
    # Not strict: JSON has no datetime type, the ISO text is parsed into one.
    occurred_at: datetime | None = Field(
        default=None, strict=False, description="ISO 8601; without a zone it is UTC. Defaults to the time received.")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_text(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, (str, datetime)):
            raise ValueError("occurred_at must be ISO 8601 text, e.g. 2024-05-01T12:00:00Z")
        return v

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        if v is not None and abs(v) > REAL_MAX:
            raise ValueError(f"value must be between {-REAL_MAX:g} and {REAL_MAX:g}")
        if v is not None and abs(v) < REAL_TINY:
            return 0.0  # below what a real holds; Postgres would refuse it as an underflow, not round it
        return v

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        if v is not None:
            # 0001-01-01T00:00:00+01:00 is stored, but as year 0 in UTC it could never be read back.
            try:
                v.astimezone(UTC)
            except OverflowError:
                raise ValueError("occurred_at must fall within the years 1 to 9999 in UTC") from None
        return v

    @model_validator(mode="after")
    def _attempt_has_outcome(self) -> Interaction:
        if self.kind == "attempt" and self.outcome is None:
            raise ValueError("an attempt needs an outcome (1 correct, 0 wrong)")
        return self

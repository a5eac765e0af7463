"""Domain errors raised by business code (no Flask here); app.api.errors maps them to HTTP."""
from __future__ import annotations


class InputError(ValueError):
    """The caller sent something unusable. `errors` lists {field, message} details."""

    status = 422

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class UnknownIds(InputError):
    """The request refers to users, items or units that do not exist."""

    def __init__(self, field: str, ids: list[str]):
        shown = ", ".join(repr(i) for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        kind = field.removesuffix("_id").removesuffix("s")
        super().__init__(f"unknown {field}: {shown}; create the {kind}s first",
                         [{"field": field, "message": f"unknown id {i!r}"} for i in ids[:100]])
        self.ids = ids


class NotFound(LookupError):
    status = 404

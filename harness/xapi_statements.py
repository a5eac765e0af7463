"""Native interactions written out as xAPI statements, as a platform's log store would send them
(bench.xapi_equivalence: the demo through `adaptrec import --format xapi` must give what the native
import gave). Pure: a row in, a statement out.

The rules, each the inverse of docs/XAPI.md's default mapping:
- actor: an account on the platform, its name the user id (the default actor rule's first choice);
- object: an Activity whose IRI is the item id under the platform's site (`activity_iri`); the
  item ids of the demo are not IRIs, so the platform maps the IRIs to its items (xapi_activities);
- verb by kind: attempt `answered` (result.success = the outcome), view `experienced`, complete
  `completed` (result.completion = the outcome: a `completed` with result.success would be an
  attempt), like `like` (activitystrea.ms); a view's or like's outcome as result.success;
- value as result.score.scaled, duration_ms as result.duration, occurred_at as the timestamp (UTC,
  to the microsecond, as Postgres keeps it);
- the statement id a UUID 5 of the event id (an xAPI id must be a UUID; a platform re-sending the
  event sends the same id).
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

ADL = "http://adlnet.gov/expapi/verbs/"
VERBS = {"attempt": ADL + "answered", "view": ADL + "experienced", "complete": ADL + "completed",
         "like": "http://activitystrea.ms/schema/1.0/like"}
ACTIVITY_TYPES = {"attempt": "http://adlnet.gov/expapi/activities/cmi.interaction",
                  "view": "http://adlnet.gov/expapi/activities/media",
                  "complete": "http://adlnet.gov/expapi/activities/lesson",
                  "like": "http://adlnet.gov/expapi/activities/media"}
SITE = "https://lms.demo.adaptrec.example"
# The namespace of the statement ids derived from event ids (uuid5 of the event id).
NAMESPACE = uuid.UUID("0e7f4c5a-3d1b-4e8f-9a61-5c2d7b8e9f10")


def activity_iri(item_id: str, site: str = SITE) -> str:
    """The IRI the platform names item `item_id` by (every character outside unreserved ones escaped)."""
    return f"{site}/item/{quote(item_id, safe='')}"


def statement_id(event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, event_id))


def iso_duration(ms: int) -> str:
    """Milliseconds as an ISO 8601 duration in seconds, exact: 41532 -> PT41.532S."""
    if ms < 0:
        raise ValueError(f"a duration must be 0 ms or more, got {ms}")
    return f"PT{ms // 1000}.{ms % 1000:03d}S"


def iso_time(at: datetime) -> str:
    """A time as an xAPI timestamp in UTC to the microsecond (a time without a zone is UTC)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def as_statement(event: dict, site: str = SITE) -> dict:
    """The statement of one interaction: `event` has event_id, user_id, item_id, kind, outcome,
    value, duration_ms, occurred_at (a datetime) and optionally response ({"response": text}).
    ValueError for what the default verbs cannot say (another kind, an attempt without outcome)."""
    kind, outcome = event["kind"], event.get("outcome")
    if kind not in VERBS:
        raise ValueError(f"no default xAPI verb records the kind {kind!r}; known: {', '.join(VERBS)}")
    result: dict = {}
    if kind == "attempt":
        if outcome is None:
            raise ValueError(f"event {event['event_id']}: an attempt needs an outcome")
        result["success"] = bool(outcome)
    elif outcome is not None:
        result["completion" if kind == "complete" else "success"] = bool(outcome)
    if event.get("value") is not None:
        result["score"] = {"scaled": float(event["value"])}
    if event.get("duration_ms") is not None:
        result["duration"] = iso_duration(int(event["duration_ms"]))
    if event.get("response") is not None:
        result["response"] = str(event["response"]["response"])
    statement = {
        "id": statement_id(event["event_id"]),
        "actor": {"objectType": "Agent", "account": {"homePage": site, "name": event["user_id"]}},
        "verb": {"id": VERBS[kind], "display": {"en-US": VERBS[kind].rsplit("/", 1)[1]}},
        "object": {"objectType": "Activity", "id": activity_iri(event["item_id"], site),
                   "definition": {"type": ACTIVITY_TYPES[kind]}},
        "timestamp": iso_time(event["occurred_at"]),
    }
    if result:
        statement["result"] = result
    return statement

"""harness.xapi_statements: native interactions written as statements that the xAPI mapping takes
back to the same interaction (the round trip bench.xapi_equivalence relies on)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.xapi import mapping
from app.xapi.statements import validate_statement
from harness.xapi_statements import activity_iri, as_statement, iso_duration, iso_time, statement_id

AT = datetime(2024, 11, 25, 16, 56, 21, 435123, tzinfo=UTC)


def event(**changes) -> dict:
    base = {"event_id": "demo:7:a:000042", "user_id": "demo.u0001", "item_id": "demo.math.1.1.q3", "kind": "attempt",
            "outcome": 1, "value": None, "duration_ms": 41532, "occurred_at": AT}
    return {**base, **changes}


def back(ev: dict) -> tuple:
    """The interaction the default mapping records for the statement of `ev` (activity IRI as item)."""
    s = validate_statement(as_statement(ev))
    d = mapping.draft(s, s["id"], mapping.Rules(), datetime(2030, 1, 1, tzinfo=UTC))
    assert d.reason is None, d.detail
    return d.learner, d.activity.iri, d.kind, d.outcome, d.value, d.duration_ms, d.occurred_at


@pytest.mark.parametrize("changes", [
    {}, {"outcome": 0}, {"kind": "view", "outcome": None, "value": 1.0, "duration_ms": 300000},
    {"kind": "complete", "outcome": 1, "value": 1.0}, {"kind": "complete", "outcome": 0, "value": 1.0},
    {"kind": "like", "outcome": 1, "value": 1.0, "duration_ms": None},
    {"kind": "view", "outcome": None, "value": None, "duration_ms": None},
])
def test_each_demo_kind_maps_back_to_the_same_interaction(changes):
    ev = event(**changes)
    assert back(ev) == (ev["user_id"], activity_iri(ev["item_id"]), ev["kind"], ev["outcome"], ev["value"],
                        ev["duration_ms"], ev["occurred_at"])


def test_the_statement_id_is_a_stable_uuid_of_the_event_id():
    assert as_statement(event())["id"] == statement_id("demo:7:a:000042") == as_statement(event(outcome=0))["id"]
    assert statement_id("demo:7:a:000043") != statement_id("demo:7:a:000042")


def test_times_are_utc_to_the_microsecond_and_durations_exact():
    assert iso_time(AT) == "2024-11-25T16:56:21.435123Z"
    assert iso_time(AT.astimezone(timezone(timedelta(hours=-5)))) == "2024-11-25T16:56:21.435123Z"
    assert iso_time(datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000000Z"
    assert (iso_duration(41532), iso_duration(0), iso_duration(7)) == ("PT41.532S", "PT0.000S", "PT0.007S")
    with pytest.raises(ValueError):
        iso_duration(-1)


def test_an_item_id_with_reserved_characters_gives_a_valid_iri():
    iri = activity_iri("unit/7 q#1?x")
    assert iri.endswith("/item/unit%2F7%20q%231%3Fx")
    assert back(event(item_id="unit/7 q#1?x"))[1] == iri


def test_what_the_default_verbs_cannot_say_is_refused():
    with pytest.raises(ValueError, match="rating"):
        as_statement(event(kind="rating"))
    with pytest.raises(ValueError, match="needs an outcome"):
        as_statement(event(outcome=None))

"""xAPI's pure rules (app/xapi): what a valid statement is, and how one maps to an interaction
under a tenant's rules. No database: the activity -> item lookup is the ingest's (tests/service/test_xapi.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.xapi import mapping
from app.xapi.statements import (
    StatementError,
    check_version_header,
    digest,
    duration_ms,
    validate_batch,
    validate_statement,
)

ADL = "http://adlnet.gov/expapi/verbs/"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SID = "3f1c2a5e-8d2b-4f6a-9c1e-7b5d2e0a4c11"


def statement(**changes) -> dict:
    body = {"id": SID, "actor": {"account": {"homePage": "https://lms.example", "name": "ann"}},
            "verb": {"id": ADL + "answered"}, "object": {"id": "https://lms.example/q/1"},
            "result": {"success": True, "score": {"scaled": 0.5}}, "timestamp": "2026-12-01T10:00:00+01:00"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def rule_of(value) -> str:
    with pytest.raises(StatementError) as caught:
        validate_statement(value)
    return caught.value.rule


def test_a_minimal_statement_is_valid_and_returned_unchanged():
    s = {"actor": {"mbox": "mailto:a@b.org"}, "verb": {"id": ADL + "experienced"}, "object": {"id": "urn:x:1"}}
    assert validate_statement(s) is s


@pytest.mark.parametrize("value, rule", [
    ([], "json-object"),
    (statement(extra=1), "no-unknown-properties"),
    (statement(id="abc"), "uuid"),
    (statement(actor=None), "required"),
    (statement(actor={"mbox": "mailto:a@b.org", "mbox_sha1sum": "a" * 40}), "agent-ifi"),
    (statement(actor={"objectType": "Group"}), "agent-ifi"),
    (statement(actor={"objectType": "Agent", "member": []}), "no-unknown-properties"),
    (statement(actor={"mbox": "a@b.org"}), "mbox"),
    (statement(actor={"account": {"homePage": "https://x.org", "name": ""}}), "account"),
    (statement(verb={"id": "answered"}), "iri"),
    (statement(verb={"id": "https://x.org/v with space"}), "iri"),
    (statement(object={"objectType": "Activity", "id": "https://x.org/1", "definition": {"type": "q"}}), "iri"),
    (statement(object={"id": "https://x.org/1", "definition": {"interactionType": "essay"}}), "interaction-type"),
    (statement(object={"objectType": "SubStatement", "actor": {"mbox": "mailto:a@b.org"},
                       "verb": {"id": ADL + "x"}, "object": {"objectType": "SubStatement"}}), "object-type"),
    (statement(result={"success": 1}), "boolean"),
    (statement(result={"score": {"scaled": -1.01}}), "score-scaled"),
    (statement(result={"score": {"min": 5, "max": 5}}), "score-range"),
    (statement(result={"score": {"scaled": float("nan")}}), "number"),
    (statement(result={"duration": "P"}), "duration"),
    (statement(result={"duration": "PT"}), "duration"),
    (statement(timestamp="2026-12-01"), "timestamp"),
    (statement(context={"registration": "x"}), "uuid"),
    (statement(context={"contextActivities": {"parent": [{"id": "nope"}]}}), "iri"),
    (statement(context={"contextActivities": {"sibling": []}}), "no-unknown-properties"),
    (statement(context={"team": {"mbox": "mailto:a@b.org"}}), "context-team"),
    (statement(extensions={}), "no-unknown-properties"),
    (statement(result={"extensions": {"not-an-iri": 1}}), "iri"),
    (statement(version="1.1.0"), "version"),
])
def test_each_rule_names_itself(value, rule):
    assert rule_of(value) == rule


def test_valid_variants_pass():
    for s in (statement(result={"score": {"raw": 5, "min": 0, "max": 10}, "duration": "PT1H2M3.5S",
                                "completion": True}),
              statement(actor={"objectType": "Group", "member": [{"mbox": "mailto:a@b.org"}]}),
              statement(object={"objectType": "StatementRef", "id": SID}, verb={"id": ADL + "voided"}),
              statement(context={"contextActivities": {"parent": {"id": "https://x.org/c"}}, "platform": "Moodle",
                                 "language": "en-GB", "registration": SID}),
              statement(timestamp="2026-12-01T10:00Z"), statement(timestamp="2026-12-01T10:00:00.123456789+0530"),
              statement(version="2.0.0")):
        validate_statement(s)


def test_a_batch_names_the_index_and_refuses_a_repeated_id():
    with pytest.raises(StatementError) as caught:
        validate_batch([statement(), statement(id=None, verb={"id": "x"})])
    assert caught.value.index == 1 and str(caught.value).startswith("statement 1: verb.id:")
    with pytest.raises(StatementError) as caught:
        validate_batch([statement(), statement(id=SID.upper())])
    assert caught.value.rule == "unique-ids" and caught.value.index == 1
    with pytest.raises(StatementError) as single:
        validate_batch(statement(verb=None))
    assert single.value.index is None and str(single.value).startswith("the statement: ")


@pytest.mark.parametrize("header, answered", [("1.0.3", "1.0.3"), ("1.0", "1.0.3"), ("1.0.1", "1.0.3"),
                                              (" 2.0.0 ", "2.0.0")])
def test_versions_spoken(header, answered):
    assert check_version_header(header) == answered


@pytest.mark.parametrize("header", [None, "", "0.9", "1.1.0", "2.0", "2.0.1", "1.0.x"])
def test_versions_refused_say_what_to_send(header):
    with pytest.raises(ValueError, match=r"2\.0\.0"):
        check_version_header(header)


def test_durations_in_milliseconds():
    assert duration_ms("PT1M30S") == 90_000 and duration_ms("PT0.25S") == 250
    assert duration_ms("P1DT1H") == 90_000_000 and duration_ms("P1Y") is None   # beyond an int32


def test_the_digest_ignores_what_an_lrs_sets():
    s = statement()
    assert digest(s) == digest({**s, "stored": "2026-12-02T00:00:00Z", "version": "1.0.3", "id": "other"})
    assert digest(s) != digest({**s, "result": {"success": False}})


# ---- mapping ---------------------------------------------------------------------------
def draft(s: dict, rules: mapping.Rules | None = None) -> mapping.Draft:
    return mapping.draft(validate_statement(s), SID, rules or mapping.Rules(), NOW)


def test_an_answer_is_an_attempt_with_outcome_value_and_time():
    d = draft(statement())
    assert (d.learner, d.kind, d.outcome, d.value, d.reason) == ("ann", "attempt", 1, 0.5, None)
    assert d.occurred_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC) and d.activity.item_id == "https://lms.example/q/1"
    assert draft(statement(timestamp=None)).occurred_at == NOW


@pytest.mark.parametrize("verb, result, expected", [
    ("passed", None, ("attempt", 1)), ("failed", None, ("attempt", 0)), ("passed", {"success": False}, ("attempt", 0)),
    ("completed", None, ("complete", None)), ("completed", {"success": True}, ("attempt", 1)),
    ("completed", {"completion": True}, ("complete", 1)), ("completed", {"completion": False}, ("complete", 0)),
    ("completed", {"success": False, "completion": True}, ("attempt", 0)),
    ("experienced", {"completion": True}, ("view", None)),
    ("experienced", None, ("view", None)), ("launched", {"success": True}, ("view", 1)),
])
def test_default_verbs(verb, result, expected):
    d = draft(statement(verb={"id": ADL + verb}, result=result))
    assert (d.kind, d.outcome) == expected and d.reason is None


@pytest.mark.parametrize("changes, reason", [
    ({"verb": {"id": "https://x.org/verbs/pondered"}}, "unknown_verb"),
    ({"result": None}, "no_success"),
    ({"object": {"objectType": "Agent", "mbox": "mailto:b@x.org"}}, "not_an_activity"),
    ({"actor": {"objectType": "Group", "member": [{"mbox": "mailto:b@x.org"}]}}, "actor_not_an_agent"),
    ({"verb": {"id": ADL + "voided"}, "object": {"objectType": "StatementRef", "id": SID}}, "voided"),
])
def test_unmappable_statements_say_why(changes, reason):
    d = draft(statement(**changes))
    assert d.reason == reason and d.detail and d.learner


def test_the_actor_rule_picks_the_identifier_in_order():
    actor = {"mbox": "mailto:ann@x.org"}
    assert draft(statement(actor=actor)).learner == "ann@x.org"
    only_account = mapping.rules_from_settings({"xapi": {"actor": ["account"]}})
    d = draft(statement(actor=actor), only_account)
    assert d.reason == "no_user_id" and d.learner == "ann@x.org"   # still keyed, by the default order
    assert draft(statement(actor={"openid": "https://id.x.org/7"})).learner == "https://id.x.org/7"


def test_tenant_rules_are_checked_and_merged_over_the_defaults():
    rules = mapping.rules_from_settings({"xapi": {"create_items": False, "verbs": {
        "https://x.org/read": {"kind": "view"}, ADL + "launched": None,
        "https://x.org/quiz": {"kind": "attempt", "otherwise": "view"}}}})
    assert not rules.create_items and rules.verbs["https://x.org/read"] == mapping.VerbRule("view")
    assert ADL + "launched" not in rules.verbs and ADL + "answered" in rules.verbs
    for bad, named in [({"actor": ["email"]}, "actor"), ({"create_items": "yes"}, "create_items"),
                       ({"verbs": {"v": {"kind": "Attempt"}}}, "kind"), ({"verbs": {"v": {"outcome": 2}}}, "verbs"),
                       ({"colour": 1}, "colour")]:
        with pytest.raises(ValueError, match=named):
            mapping.rules_from_settings({"xapi": bad})


def test_new_activities_become_items_in_their_parent_units_under_the_groupings():
    parent = {"id": "https://x.org/quiz/1", "definition": {"name": {"fr": "Quiz", "en-GB": "Quiz one"},
                                                            "type": "http://adlnet.gov/expapi/activities/assessment"}}
    context = {"contextActivities": {"parent": [parent], "grouping": [{"id": "https://x.org/course/1"}]}}
    long_iri = "https://x.org/q/" + "a" * 300
    drafts = [draft(statement(context=context, object={"id": "https://x.org/q/1", "definition": {
                  "name": {"en-US": "One"}, "type": "http://adlnet.gov/expapi/activities/cmi.interaction"}})),
              draft(statement(object={"id": long_iri}))]
    new = mapping.new_catalogue(drafts, {"https://x.org/q/1", long_iri})
    assert new.items["https://x.org/q/1"].kind == "question" and new.items["https://x.org/q/1"].name == "One"
    assert new.items[long_iri].item_id.startswith("xapi:") and len(new.items[long_iri].item_id) == 45
    quiz = new.units["https://x.org/quiz/1"]
    assert (quiz.name, quiz.kind) == ("Quiz one", "assessment")
    assert new.unit_items == [("https://x.org/quiz/1", "https://x.org/q/1")]
    assert new.unit_children == [("https://x.org/course/1", "https://x.org/quiz/1")]


def test_the_workers_activity_map_forgets_after_its_ttl_and_when_sprayed(monkeypatch):
    from app.catalogue import xapi_ingest

    clock = [100.0]
    monkeypatch.setattr(xapi_ingest.time, "monotonic", lambda: clock[0])
    cache = xapi_ingest.ActivityMap(ttl_s=30, max_entries=3)
    cache.put("a", {"https://x.org/1": "i1", "https://x.org/2": "i2"})
    assert cache.get("a", ["https://x.org/1", "https://x.org/3"]) == {"https://x.org/1": "i1"}
    assert cache.get("b", ["https://x.org/1"]) == {}          # per tenant
    clock[0] += 31
    assert cache.get("a", ["https://x.org/1"]) == {}          # expired
    cache.put("a", {"https://x.org/3": "i3", "https://x.org/4": "i4"})   # past max_entries: the old ones go
    assert cache.get("a", ["https://x.org/3", "https://x.org/4"]) == {"https://x.org/3": "i3", "https://x.org/4": "i4"}
    assert len(cache._items) == 2

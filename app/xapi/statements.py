"""What a valid xAPI statement is: the essentials of the specification's rules (xAPI 1.0.3 and
IEEE 9274.1.1, "2.0.0"), checked on the parsed JSON. A statement that breaks one raises
`StatementError` naming the rule, the property (`actor.mbox`) and, in a batch, the statement's
index; an LRS rejects the whole batch then, and so does adaptrec.

Checked: the top-level properties (unknown ones refused), `id` a UUID, the actor an Agent or Group
with exactly one inverse functional identifier (mbox "mailto:", mbox_sha1sum, openid, account
{homePage, name}) or an anonymous Group with members, `verb.id` an IRI, the object (an Activity
with an IRI id and an optional definition, an Agent/Group, a StatementRef or a SubStatement),
`result` (success/completion booleans, score.scaled in [-1, 1], raw within [min, max], duration ISO
8601), `context` (registration UUID, contextActivities, revision/platform only for an Activity),
`timestamp` ISO 8601, `version` 1.0.x or 2.0.x, language maps, extensions keyed by IRIs.
Not checked: attachments' content (only their description is), signed statements' signatures.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The versions of the X-Experience-API-Version header accepted, and what the answers carry.
VERSIONS = ("1.0.3", "2.0.0")
_VERSION_HEADER = re.compile(r"^(?:1\.0(?:\.\d{1,3})?|2\.0\.0)$")

STATEMENT_KEYS = {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority",
                  "version", "attachments", "objectType"}
SUBSTATEMENT_KEYS = {"actor", "verb", "object", "result", "context", "timestamp", "attachments", "objectType"}
AGENT_KEYS = {"objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"}
GROUP_KEYS = AGENT_KEYS | {"member"}
IFI_KEYS = ("mbox", "mbox_sha1sum", "openid", "account")
DEFINITION_KEYS = {"name", "description", "type", "moreInfo", "extensions", "interactionType",
                   "correctResponsesPattern", "choices", "scale", "source", "target", "steps"}
INTERACTION_TYPES = {"true-false", "choice", "fill-in", "long-fill-in", "matching", "performance", "sequencing",
                     "likert", "numeric", "other"}
RESULT_KEYS = {"score", "success", "completion", "response", "duration", "extensions"}
SCORE_KEYS = {"scaled", "raw", "min", "max"}
CONTEXT_KEYS = {"registration", "instructor", "team", "contextActivities", "revision", "platform", "language",
                "statement", "extensions", "contextAgents", "contextGroups"}
CONTEXT_ACTIVITY_KEYS = ("parent", "grouping", "category", "other")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# An absolute IRI: a scheme, a colon, then no whitespace or characters RFC 3987 excludes.
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20\x7f<>\"{}|\\^`\ud800-\udfff]+$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?$")
_DURATION = re.compile(r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                       r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
MAX_TEXT = 100_000


@dataclass
class StatementError(ValueError):
    """A statement breaks `rule` at `where` (a property path such as `actor.mbox`)."""

    rule: str
    where: str
    message: str
    index: int | None = None   # the statement's place in the list sent, when a list was sent

    def __str__(self) -> str:
        at = f"statement {self.index}" if self.index is not None else "the statement"
        return f"{at}: {self.where}: {self.message} (rule: {self.rule})"


def check_version_header(value: str | None) -> str:
    """The version adaptrec answers in for a request's X-Experience-API-Version; ValueError with
    what to send when it is missing or not one adaptrec speaks."""
    if value is None or not value.strip():
        raise ValueError("send the header X-Experience-API-Version (1.0.3 or 2.0.0): every xAPI request carries it")
    value = value.strip()
    if not _VERSION_HEADER.match(value):
        raise ValueError(f"X-Experience-API-Version {value[:40]!r} is not supported; this LRS accepts 1.0.x "
                         f"(answered as 1.0.3) and 2.0.0")
    return "2.0.0" if value.startswith("2.") else "1.0.3"


# ---- small checks ------------------------------------------------------------------------
def _fail(rule: str, where: str, message: str):
    raise StatementError(rule, where, message)


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _fail("json-object", where, f"must be a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _only(value: dict, allowed: set[str], where: str, what: str) -> None:
    if value.keys() <= allowed:   # the common case, without building a list
        return
    unknown = sorted(k for k in value if k not in allowed)
    _fail("no-unknown-properties", f"{where}.{unknown[0]}" if where else unknown[0],
          f"{what} has no property {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _string(value: Any, where: str, max_length: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        _fail("string", where, f"must be a string, got {_kind(value)}")
    if len(value) > max_length:
        _fail("string", where, f"must be at most {max_length} characters")
    return value


def _iri(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IRI.match(value) or len(value) > 4096:
        _fail("iri", where, f"must be an absolute IRI (a scheme such as https: and no spaces), got {value!r:.100}")
    return value


def _uuid(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _UUID.match(value):
        _fail("uuid", where, f"must be a UUID such as 3f1c2a5e-8d2b-4f6a-9c1e-7b5d2e0a4c11, got {value!r:.100}")
    return value.lower()


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _fail("boolean", where, f"must be true or false, got {value!r:.50}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail("number", where, f"must be a finite number, got {value!r:.50}")
    return value


def _language_map(value: Any, where: str) -> None:
    _object(value, where)
    for tag, text in value.items():
        if not _LANGUAGE_TAG.match(tag):
            _fail("language-map", f"{where}.{tag}", f"{tag!r} is not a language tag (RFC 5646, e.g. en-US)")
        _string(text, f"{where}.{tag}")


def _extensions(value: Any, where: str) -> None:
    _object(value, where)
    for key in value:
        _iri(key, f"{where}[{key!r:.60}]")
    _storable(value, where)


def _storable(value: Any, where: str) -> None:
    """Every string a string (of bounded length), every number finite (walked without recursion)."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            _string(node, where)
        elif isinstance(node, float) and not math.isfinite(node):
            _fail("number", where, "numbers must be finite")
        elif isinstance(node, dict):
            for key in node:
                _string(key, where)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def parse_timestamp(value: Any, where: str = "timestamp") -> datetime:
    """An ISO 8601 date and time (RFC 3339 profile); without a zone it is UTC."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        _fail("timestamp", where, f"must be an ISO 8601 time such as 2026-12-06T10:00:00Z, got {value!r:.60}")
    if value.endswith(("-00:00", "-0000")):
        _fail("timestamp", where, "the offset -00:00 is not allowed; use Z or +00:00")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        _fail("timestamp", where, f"is not a valid time ({exc})")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        _fail("timestamp", where, "must fall within the years 1 to 9999 in UTC")


def duration_ms(value: str) -> int | None:
    """An ISO 8601 duration (already checked) in milliseconds; None beyond what an int32 holds.
    Years and months count as 365 and 30 days."""
    match = _DURATION.match(value)
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in match.groups())
    ms = round(((((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60 + mi) * 60 + s) * 1000)
    return ms if ms <= 2_147_483_647 else None


# ---- the parts of a statement -------------------------------------------------------------
def _agent(value: Any, where: str, *, group_allowed: bool = True) -> None:
    """An Agent, or (when allowed) a Group: identified by exactly one IFI; an anonymous Group by its members."""
    _object(value, where)
    object_type = value.get("objectType", "Agent")
    if object_type == "Group" and group_allowed:
        _only(value, GROUP_KEYS, where, "a Group")
    elif object_type == "Agent":
        _only(value, AGENT_KEYS, where, "an Agent")
    else:
        allowed = "Agent or Group" if group_allowed else "Agent"
        _fail("agent", f"{where}.objectType", f"must be {allowed}, got {object_type!r:.40}")
    if "name" in value:
        _string(value["name"], f"{where}.name", 1000)
    ifis = [k for k in IFI_KEYS if k in value]
    if object_type == "Group" and not ifis:
        members = value.get("member")
        if not isinstance(members, list) or not members:
            _fail("agent-ifi", where, "an anonymous Group (no mbox, mbox_sha1sum, openid or account) must list "
                                      "its members in 'member'")
    elif len(ifis) != 1:
        found = f"found {len(ifis)}" + (f" ({', '.join(ifis)})" if ifis else "")
        _fail("agent-ifi", where, f"an {'Agent' if object_type == 'Agent' else 'identified Group'} has exactly one "
                                  f"inverse functional identifier: mbox, mbox_sha1sum, openid or account; {found}")
    if "mbox" in value:
        mbox = value["mbox"]
        if not isinstance(mbox, str) or not mbox.startswith("mailto:") or "@" not in mbox or " " in mbox:
            _fail("mbox", f"{where}.mbox", f"must be a 'mailto:' IRI such as mailto:ann@example.org, got {mbox!r:.80}")
    if "mbox_sha1sum" in value and (not isinstance(value["mbox_sha1sum"], str)
                                    or not _SHA1.match(value["mbox_sha1sum"])):
        _fail("mbox_sha1sum", f"{where}.mbox_sha1sum", "must be the SHA-1 of a mailto IRI, 40 hexadecimal digits")
    if "openid" in value:
        _iri(value["openid"], f"{where}.openid")
    if "account" in value:
        account = _object(value["account"], f"{where}.account")
        _only(account, {"homePage", "name"}, f"{where}.account", "an account")
        if "homePage" not in account or "name" not in account:
            _fail("account", f"{where}.account", "an account needs both homePage (an IRL) and name")
        _iri(account["homePage"], f"{where}.account.homePage")
        _string(account["name"], f"{where}.account.name", 1000)
        if not account["name"]:
            _fail("account", f"{where}.account.name", "must not be empty")
    if "member" in value:
        if object_type != "Group":
            _fail("agent", f"{where}.member", "only a Group has members")
        if not isinstance(value["member"], list):
            _fail("agent", f"{where}.member", "must be a list of Agents")
        for k, member in enumerate(value["member"]):
            _agent(member, f"{where}.member[{k}]", group_allowed=False)


def _verb(value: Any, where: str = "verb") -> None:
    _object(value, where)
    _only(value, {"id", "display"}, where, "a verb")
    if "id" not in value:
        _fail("verb-id", f"{where}.id", "a verb needs an id (an IRI such as http://adlnet.gov/expapi/verbs/answered)")
    _iri(value["id"], f"{where}.id")
    if "display" in value:
        _language_map(value["display"], f"{where}.display")


def _activity(value: Any, where: str) -> None:
    _object(value, where)
    _only(value, {"objectType", "id", "definition"}, where, "an Activity")
    if value.get("objectType", "Activity") != "Activity":
        _fail("activity", f"{where}.objectType", f"must be Activity, got {value.get('objectType')!r:.40}")
    if "id" not in value:
        _fail("activity-id", f"{where}.id", "an Activity needs an id (an IRI)")
    _iri(value["id"], f"{where}.id")
    if "definition" in value:
        definition = _object(value["definition"], f"{where}.definition")
        _only(definition, DEFINITION_KEYS, f"{where}.definition", "an Activity definition")
        for key in ("name", "description"):
            if key in definition:
                _language_map(definition[key], f"{where}.definition.{key}")
        for key in ("type", "moreInfo"):
            if key in definition:
                _iri(definition[key], f"{where}.definition.{key}")
        if "extensions" in definition:
            _extensions(definition["extensions"], f"{where}.definition.extensions")
        if "interactionType" in definition and definition["interactionType"] not in INTERACTION_TYPES:
            _fail("interaction-type", f"{where}.definition.interactionType",
                  f"must be one of {', '.join(sorted(INTERACTION_TYPES))}")
        if "correctResponsesPattern" in definition:
            pattern = definition["correctResponsesPattern"]
            if not isinstance(pattern, list) or not all(isinstance(p, str) for p in pattern):
                _fail("interaction", f"{where}.definition.correctResponsesPattern", "must be a list of strings")
        for key in ("choices", "scale", "source", "target", "steps"):
            if key in definition:
                if not isinstance(definition[key], list):
                    _fail("interaction", f"{where}.definition.{key}", "must be a list of interaction components")
                for k, component in enumerate(definition[key]):
                    _object(component, f"{where}.definition.{key}[{k}]")
                    _only(component, {"id", "description"}, f"{where}.definition.{key}[{k}]",
                          "an interaction component")
                    _string(component.get("id"), f"{where}.definition.{key}[{k}].id", 1000)
                    if "description" in component:
                        _language_map(component["description"], f"{where}.definition.{key}[{k}].description")


def _statement_ref(value: Any, where: str) -> None:
    _object(value, where)
    _only(value, {"objectType", "id"}, where, "a StatementRef")
    _uuid(value.get("id"), f"{where}.id")


def _object_of(value: Any, where: str, *, sub_allowed: bool) -> None:
    _object(value, where)
    object_type = value.get("objectType", "Activity")
    if object_type == "Activity":
        _activity(value, where)
    elif object_type in ("Agent", "Group"):
        _agent(value, where)
    elif object_type == "StatementRef":
        _statement_ref(value, where)
    elif object_type == "SubStatement" and sub_allowed:
        _only(value, SUBSTATEMENT_KEYS, where, "a SubStatement")
        _body(value, where, sub=True)
    else:
        kinds = "Activity, Agent, Group, StatementRef" + (" or SubStatement" if sub_allowed else "")
        _fail("object-type", f"{where}.objectType", f"must be one of {kinds}, got {object_type!r:.40}")


def _result(value: Any, where: str) -> None:
    _object(value, where)
    _only(value, RESULT_KEYS, where, "a result")
    for key in ("success", "completion"):
        if key in value:
            _boolean(value[key], f"{where}.{key}")
    if "response" in value:
        _string(value["response"], f"{where}.response")
    if "duration" in value and (not isinstance(value["duration"], str) or not _DURATION.match(value["duration"])):
        _fail("duration", f"{where}.duration", f"must be an ISO 8601 duration such as PT1M30S, "
                                               f"got {value['duration']!r:.40}")
    if "extensions" in value:
        _extensions(value["extensions"], f"{where}.extensions")
    if "score" in value:
        score = _object(value["score"], f"{where}.score")
        _only(score, SCORE_KEYS, f"{where}.score", "a score")
        for key in SCORE_KEYS & set(score):
            _number(score[key], f"{where}.score.{key}")
        if "scaled" in score and not -1 <= score["scaled"] <= 1:
            _fail("score-scaled", f"{where}.score.scaled", f"must be between -1 and 1, got {score['scaled']}")
        low, high = score.get("min"), score.get("max")
        if low is not None and high is not None and not low < high:
            _fail("score-range", f"{where}.score", f"min ({low}) must be less than max ({high})")
        raw = score.get("raw")
        if raw is not None and ((low is not None and raw < low) or (high is not None and raw > high)):
            _fail("score-range", f"{where}.score.raw", f"raw ({raw}) must lie between min and max")


def _context(value: Any, where: str, object_is_activity: bool) -> None:
    _object(value, where)
    _only(value, CONTEXT_KEYS, where, "a context")
    if "registration" in value:
        _uuid(value["registration"], f"{where}.registration")
    if "instructor" in value:
        _agent(value["instructor"], f"{where}.instructor")
    if "team" in value:
        _agent(value["team"], f"{where}.team")
        if value["team"].get("objectType") != "Group":
            _fail("context-team", f"{where}.team", "the team must be a Group")
    for key in ("revision", "platform"):
        if key in value:
            _string(value[key], f"{where}.{key}", 1000)
            if not object_is_activity:
                _fail("context-revision-platform", f"{where}.{key}",
                      f"{key} is only allowed when the statement's object is an Activity")
    if "language" in value and (not isinstance(value["language"], str) or not _LANGUAGE_TAG.match(value["language"])):
        _fail("language-tag", f"{where}.language", "must be a language tag (RFC 5646, e.g. en-US)")
    if "statement" in value:
        _statement_ref(value["statement"], f"{where}.statement")
    if "extensions" in value:
        _extensions(value["extensions"], f"{where}.extensions")
    if "contextActivities" in value:
        activities = _object(value["contextActivities"], f"{where}.contextActivities")
        _only(activities, set(CONTEXT_ACTIVITY_KEYS), f"{where}.contextActivities", "contextActivities")
        for key, listed in activities.items():
            for k, activity in enumerate(listed if isinstance(listed, list) else [listed]):
                _activity(activity, f"{where}.contextActivities.{key}[{k}]")
    for key in ("contextAgents", "contextGroups"):   # 2.0.0
        if key in value:
            if not isinstance(value[key], list):
                _fail("context-agents", f"{where}.{key}", "must be a list")
            for k, entry in enumerate(value[key]):
                _object(entry, f"{where}.{key}[{k}]")
                who = "agent" if key == "contextAgents" else "group"
                if who not in entry:
                    _fail("context-agents", f"{where}.{key}[{k}]", f"needs {who!r}")
                _agent(entry[who], f"{where}.{key}[{k}].{who}")
                _storable(entry, f"{where}.{key}[{k}]")


def _body(value: dict, where: str, sub: bool) -> None:
    """actor, verb, object, result, context, timestamp: shared by a statement and a SubStatement."""
    prefix = f"{where}." if where else ""
    for key in ("actor", "verb", "object"):
        if key not in value:
            _fail("required", f"{prefix}{key}", f"a {'SubStatement' if sub else 'statement'} needs {key!r}")
    _agent(value["actor"], f"{prefix}actor")
    _verb(value["verb"], f"{prefix}verb")
    _object_of(value["object"], f"{prefix}object", sub_allowed=not sub)
    if "result" in value:
        _result(value["result"], f"{prefix}result")
    if "context" in value:
        _context(value["context"], f"{prefix}context", value["object"].get("objectType", "Activity") == "Activity")
    if "timestamp" in value:
        parse_timestamp(value["timestamp"], f"{prefix}timestamp")
    if "attachments" in value:
        attachments = value["attachments"]
        if not isinstance(attachments, list):
            _fail("attachments", f"{prefix}attachments", "must be a list")
        for k, attachment in enumerate(attachments):
            at = f"{prefix}attachments[{k}]"
            _object(attachment, at)
            _only(attachment, {"usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"},
                  at, "an attachment")
            for key in ("usageType", "display", "contentType", "length", "sha2"):
                if key not in attachment:
                    _fail("attachments", f"{at}.{key}", f"an attachment needs {key!r}")
            _iri(attachment["usageType"], f"{at}.usageType")
            _language_map(attachment["display"], f"{at}.display")


def validate_statement(value: Any) -> dict:
    """The statement, unchanged, when it is valid; else StatementError."""
    statement = _object(value, "(statement)")
    _only(statement, STATEMENT_KEYS, "", "a statement")
    if statement.get("objectType", "Statement") != "Statement":
        _fail("no-unknown-properties", "objectType", "a statement's objectType, if given, is Statement")
    if "id" in statement:
        _uuid(statement["id"], "id")
    _body(statement, "", sub=False)
    if "stored" in statement:
        parse_timestamp(statement["stored"], "stored")
    if "authority" in statement:
        _agent(statement["authority"], "authority")
    if "version" in statement:
        version = statement["version"]
        if not isinstance(version, str) or not re.match(r"^(?:1\.0(?:\.\d+)?|2\.0(?:\.\d+)?)$", version):
            _fail("version", "version", f"must be 1.0.x or 2.0.x, got {version!r:.20}")
    return statement


def validate_batch(data: Any) -> list[dict]:
    """One statement or a list of them -> the list; StatementError (with the index when a list was
    sent) on the first invalid one, or on two statements with the same id."""
    listed = isinstance(data, list)
    statements = data if listed else [data]
    seen: dict[str, int] = {}
    for index, statement in enumerate(statements):
        try:
            validate_statement(statement)
        except StatementError as exc:
            exc.index = index if listed else None
            raise
        if "id" in statement:
            key = statement["id"].lower()
            if key in seen:
                raise StatementError("unique-ids", "id", f"the same id as statement {seen[key]}: a batch may not "
                                                         f"hold one statement twice", index)
            seen[key] = index
    return statements


# What Postgres cannot hold in text or jsonb (valid in a JSON string, so valid in a statement).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with NUL and unpaired surrogate characters (in strings and keys, however deep) replaced
    by U+FFFD, so Postgres can keep it: a statement's text is kept as near as it can be."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def digest(statement: dict) -> str:
    """What makes two statements with one id "the same" (a resend, not a conflict): the statement
    as canonical JSON without the properties an LRS sets (id, stored, authority, version)."""
    kept = {k: v for k, v in statement.items() if k not in ("id", "stored", "authority", "version")}
    # ASCII JSON (non-ASCII as \\u escapes): the C encoder's fast path, and unpaired surrogates encode too
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

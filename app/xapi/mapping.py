"""How a valid xAPI statement becomes an adaptrec interaction under a tenant's rules, or why it
cannot ("unmappable", kept with the reason). Pure: the activity -> item lookup, which needs the
database, is the caller's (app.catalogue.xapi_ingest); this module says which activity, what item
it would be created as, and everything else.

A tenant's rules live in `tenants.settings.xapi` (docs/XAPI.md):

    {"actor": ["account", "mbox", "mbox_sha1sum", "openid"],   # which identifier names the user, in order
     "create_items": true,                                     # unknown activities become items
     "verbs": {"https://example.org/verbs/read": {"kind": "view"},      # added to the defaults
               "http://adlnet.gov/expapi/verbs/launched": null}}        # a default removed
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from app.xapi.statements import duration_ms, parse_timestamp, storable

ADL = "http://adlnet.gov/expapi/verbs/"
W3ID = "https://w3id.org/xapi/adl/verbs/"
ACTOR_IDENTIFIERS = ("account", "mbox", "mbox_sha1sum", "openid")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_ID = 256


@dataclass(frozen=True)
class VerbRule:
    """What a verb records: `kind`; for an attempt the outcome is result.success, else `outcome`
    (passed 1, failed 0); with neither, `otherwise` is the kind recorded instead (none: unmappable).
    Another kind's outcome is result.success when given; a `complete`'s, else result.completion."""

    kind: str
    outcome: int | None = None
    otherwise: str | None = None


def _adl(*names: str) -> list[str]:
    return [prefix + name for name in names for prefix in (ADL, W3ID)]


DEFAULT_VERBS: dict[str, VerbRule] = {
    **dict.fromkeys(_adl("answered", "attempted", "responded"), VerbRule("attempt")),
    **dict.fromkeys(_adl("passed", "mastered"), VerbRule("attempt", outcome=1)),
    **dict.fromkeys(_adl("failed"), VerbRule("attempt", outcome=0)),
    **dict.fromkeys(_adl("completed"), VerbRule("attempt", otherwise="complete")),
    **dict.fromkeys(_adl("experienced", "launched", "interacted", "progressed"), VerbRule("view")),
    "http://id.tincanapi.com/verb/viewed": VerbRule("view"),
    "http://activitystrea.ms/schema/1.0/access": VerbRule("view"),
    "https://w3id.org/xapi/video/verbs/played": VerbRule("view"),
    "https://w3id.org/xapi/video/verbs/watched": VerbRule("view"),
    "http://activitystrea.ms/schema/1.0/like": VerbRule("like"),
    "https://w3id.org/xapi/acrossx/verbs/liked": VerbRule("like"),
}

# Activity types (definition.type) -> the kind of an item created on first sight.
ACTIVITY_KINDS = {
    "http://adlnet.gov/expapi/activities/question": "question",
    "http://adlnet.gov/expapi/activities/cmi.interaction": "question",
    "http://adlnet.gov/expapi/activities/interaction": "question",
    "http://adlnet.gov/expapi/activities/assessment": "assessment",
    "http://adlnet.gov/expapi/activities/lesson": "lesson",
    "http://adlnet.gov/expapi/activities/module": "module",
    "http://adlnet.gov/expapi/activities/course": "course",
    "http://adlnet.gov/expapi/activities/media": "media",
    "http://adlnet.gov/expapi/activities/simulation": "simulation",
    "http://adlnet.gov/expapi/activities/link": "link",
    "http://activitystrea.ms/schema/1.0/article": "article",
    "https://w3id.org/xapi/video/activity-type/video": "video",
    "http://id.tincanapi.com/activitytype/resource": "resource",
}
DEFAULT_ITEM_KIND = "activity"


@dataclass(frozen=True)
class Rules:
    """A tenant's xAPI rules (from tenants.settings.xapi, over the defaults)."""

    actor: tuple[str, ...] = ACTOR_IDENTIFIERS
    create_items: bool = True
    verbs: dict[str, VerbRule] = field(default_factory=lambda: dict(DEFAULT_VERBS))


def rules_from_settings(settings: dict | None) -> Rules:
    """The rules of a tenant whose settings are `settings`; ValueError naming the setting that is wrong."""
    raw = (settings or {}).get("xapi") or {}
    if not isinstance(raw, dict):
        raise ValueError("settings.xapi must be a JSON object")
    unknown = set(raw) - {"actor", "create_items", "verbs"}
    if unknown:
        raise ValueError(f"settings.xapi has no setting {sorted(unknown)[0]!r}; known: actor, create_items, verbs")
    actor = raw.get("actor", list(ACTOR_IDENTIFIERS))
    if (not isinstance(actor, list) or not actor or any(a not in ACTOR_IDENTIFIERS for a in actor)
            or len(set(actor)) != len(actor)):
        raise ValueError(f"settings.xapi.actor must list some of {', '.join(ACTOR_IDENTIFIERS)} in the order to "
                         f"try them, got {actor!r}")
    create = raw.get("create_items", True)
    if not isinstance(create, bool):
        raise ValueError("settings.xapi.create_items must be true or false")
    verbs = dict(DEFAULT_VERBS)
    given = raw.get("verbs", {})
    if not isinstance(given, dict):
        raise ValueError("settings.xapi.verbs must be an object: verb IRI -> {kind, outcome?, otherwise?} or null")
    for verb, rule in given.items():
        if rule is None:
            verbs.pop(verb, None)
            continue
        where = f"settings.xapi.verbs[{verb!r}]"
        if not isinstance(rule, dict) or set(rule) - {"kind", "outcome", "otherwise"} or "kind" not in rule:
            raise ValueError(f"{where} must be {{\"kind\": ..., \"outcome\": 0|1 (optional), \"otherwise\": kind "
                             f"(optional)}} or null")
        for key in ("kind", "otherwise"):
            if rule.get(key) is not None and not (isinstance(rule[key], str) and _KIND.match(rule[key])):
                raise ValueError(f"{where}.{key} must be a lower-case word such as attempt or view")
        if rule.get("outcome") not in (None, 0, 1) or isinstance(rule.get("outcome"), bool):
            raise ValueError(f"{where}.outcome must be 0 or 1")
        verbs[verb] = VerbRule(rule["kind"], rule.get("outcome"), rule.get("otherwise"))
    return Rules(tuple(actor), create, verbs)


# ---- the parts ------------------------------------------------------------------------------
def actor_identifier(actor: dict, order: tuple[str, ...]) -> str | None:
    """The user id the first identifier of `order` the actor has gives: account -> its name, mbox
    -> the address without mailto:, mbox_sha1sum and openid as they are."""
    for name in order:
        if name not in actor:
            continue
        value = actor[name]
        if name == "account":
            return value["name"]
        if name == "mbox":
            return value.removeprefix("mailto:")
        return value
    return None


def learner_key(actor: dict, rules: Rules) -> str:
    """Who a statement is about, for keying it (always some text, also for a statement that names no
    user): the tenant's user id, else the default order's, else the group's members hashed."""
    found = actor_identifier(actor, rules.actor) or actor_identifier(actor, ACTOR_IDENTIFIERS)
    if found:
        return storable(found)[:MAX_ID]
    members = sorted(str(actor_identifier(m, ACTOR_IDENTIFIERS)) for m in actor.get("member", []))
    return "group:" + hashlib.sha1("\n".join(members).encode()).hexdigest()


def id_for_iri(iri: str) -> str:
    """The item or unit id an activity gets when created on first sight: its IRI, or when that is
    longer than an id may be, `xapi:` and the IRI's SHA-1."""
    return iri if len(iri) <= MAX_ID else "xapi:" + hashlib.sha1(iri.encode()).hexdigest()


def display_name(language_map: dict | None) -> str | None:
    """The English name of a language map (en-US, en-GB, en, ...), else its first."""
    if not language_map:
        return None
    for tag in ("en-US", "en-GB", "en"):
        if tag in language_map:
            return language_map[tag][:1000]
    english = [v for k, v in language_map.items() if k.lower().startswith("en")]
    return (english or list(language_map.values()))[0][:1000]


@dataclass(frozen=True)
class Activity:
    """An activity as an item or unit created on first sight would be."""

    iri: str
    kind: str
    name: str | None
    type: str | None

    @property
    def item_id(self) -> str:
        return id_for_iri(self.iri)

    def attrs(self) -> dict:
        return {"xapi": {"activity_id": self.iri, **({"type": self.type} if self.type else {})}}


def activity_of(value: dict) -> Activity:
    definition = value.get("definition") or {}
    kind_of = definition.get("type")
    return Activity(value["id"], ACTIVITY_KINDS.get(kind_of, DEFAULT_ITEM_KIND) if kind_of else DEFAULT_ITEM_KIND,
                    storable(display_name(definition.get("name"))), kind_of)


def context_activities(context: dict | None, key: str) -> list[Activity]:
    """The context's `parent` or `grouping` activities (a single one, as 1.0 allowed, as a list of one)."""
    listed = ((context or {}).get("contextActivities") or {}).get(key) or []
    return [activity_of(a) for a in (listed if isinstance(listed, list) else [listed])]


# ---- a statement ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Draft:
    """A statement ready to become an interaction once its activity is an item (`reason` None), or
    why it cannot (`reason` a code, `detail` in words)."""

    statement_id: str
    learner: str               # the user id, or the key a statement without one is kept under
    verb: str
    activity: Activity | None  # the object, when it is an Activity
    context: dict | None = None   # the statement's context: its parent and grouping activities become units
    kind: str | None = None
    outcome: int | None = None
    value: float | None = None
    duration_ms: int | None = None
    response: dict | None = None
    occurred_at: datetime | None = None
    reason: str | None = None
    detail: str | None = None

    def unmappable(self, reason: str, detail: str) -> Draft:
        return Draft(self.statement_id, self.learner, self.verb, self.activity, reason=reason, detail=detail)


# The reasons a valid statement is kept unmapped (bounded: a metric's label).
REASONS = ("unknown_verb", "no_success", "not_an_activity", "actor_not_an_agent", "no_user_id", "bad_user_id",
           "unknown_activity", "voided")


_CONTROL = re.compile(r"[\x00-\x1f\ud800-\udfff]")


def draft(statement: dict, statement_id: str, rules: Rules, received: datetime) -> Draft:
    """What `statement` (valid, its id `statement_id`) records under `rules`."""
    actor, verb = statement["actor"], statement["verb"]["id"]
    target = statement["object"]
    is_activity = target.get("objectType", "Activity") == "Activity"
    activity = activity_of(target) if is_activity else None
    user = actor_identifier(actor, rules.actor)

    def unmappable(reason: str, detail: str) -> Draft:
        return Draft(statement_id, learner_key(actor, rules), verb, activity, reason=reason, detail=detail)

    if verb.endswith("/voided") and target.get("objectType") == "StatementRef":
        return unmappable("voided", f"voids statement {target['id']}: voiding is not applied to interactions "
                                    f"already recorded")
    if actor.get("objectType") == "Group":
        return unmappable("actor_not_an_agent", "the actor is a Group: an interaction belongs to one learner")
    if user is None:
        return unmappable("no_user_id", f"the actor has none of the identifiers the tenant maps to a user "
                                        f"({', '.join(rules.actor)})")
    if not 1 <= len(user) <= MAX_ID or _CONTROL.search(user):
        return unmappable("bad_user_id", "the actor's identifier is not usable as a user id (1-256 characters "
                                         "without control characters or unpaired surrogates)")
    if not is_activity:
        return unmappable("not_an_activity", f"the object is a {target.get('objectType')}, not an Activity: "
                                             f"there is no item to record")
    rule = rules.verbs.get(verb)
    if rule is None:
        return unmappable("unknown_verb", f"no rule for the verb {verb}; add one to the tenant's settings.xapi.verbs")
    result = statement.get("result") or {}
    success = result.get("success")
    kind, outcome = rule.kind, None
    if kind == "attempt":
        outcome = int(success) if success is not None else rule.outcome
        if outcome is None:
            if rule.otherwise is None:
                return unmappable("no_success", f"the verb {verb} records an attempt, which needs "
                                                f"result.success (true or false)")
            kind = rule.otherwise
    elif success is not None:
        outcome = int(success)
    if kind == "complete" and outcome is None and result.get("completion") is not None:
        # a completion without success (an attempt's mark) says whether it completed: a native
        # `complete` event's outcome; false then counts as no positive engagement
        outcome = int(result["completion"])
    score = (result.get("score") or {}).get("scaled")
    when = statement.get("timestamp") or statement.get("stored")
    return Draft(
        statement_id, user, verb, activity,
        context=statement.get("context"),
        kind=kind, outcome=outcome, value=float(score) if score is not None else None,
        duration_ms=duration_ms(result["duration"]) if "duration" in result else None,
        response={"response": storable(result["response"])} if "response" in result else None,
        occurred_at=parse_timestamp(when) if when else received)


@dataclass(frozen=True)
class Catalogue:
    """What creating the activities of some drafts on first sight adds: items, units (parents and
    groupings), unit -> item links and grouping -> parent edges."""

    items: dict[str, Activity]
    units: dict[str, Activity]
    unit_items: list[tuple[str, str]]
    unit_children: list[tuple[str, str]]


def new_catalogue(drafts: list[Draft], new_iris: set[str]) -> Catalogue:
    """Items for the activities in `new_iris` (the first draft naming one gives its definition), in
    their statements' parent units (or grouping units when there is no parent), each parent under
    the groupings."""
    items: dict[str, Activity] = {}
    units: dict[str, Activity] = {}
    links: dict[tuple[str, str], None] = {}
    edges: dict[tuple[str, str], None] = {}
    for d in drafts:
        if d.activity is None or d.activity.iri not in new_iris or d.activity.iri in items:
            continue
        items[d.activity.iri] = d.activity
        parents, groupings = context_activities(d.context, "parent"), context_activities(d.context, "grouping")
        for unit in (*parents, *groupings):
            units.setdefault(unit.iri, unit)
        for unit in (parents or groupings):
            links[(unit.item_id, d.activity.item_id)] = None
        for group in groupings:
            for parent in parents:
                if group.iri != parent.iri:
                    edges[(group.item_id, parent.item_id)] = None
    return Catalogue(items, units, list(links), list(edges))

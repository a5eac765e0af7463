"""The JSON Schema of an xAPI statement as /openapi.json documents it: the rules of
app.xapi.statements that JSON Schema can state (required properties, no unknown ones, IRIs, UUIDs,
mailto: and SHA-1 identifiers, exactly one identifier per Agent, score.scaled in [-1, 1]). The
validator remains the judge: rules JSON Schema cannot state (raw within [min, max], revision and
platform only for an Activity, unique ids in a batch) are in the 400's description."""
from __future__ import annotations

from app.xapi.statements import MAX_TEXT  # the validator's limit on free text (language maps, responses)

IRI = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-\[\]_a-z~\u00a0-\ud7ff\ue000-\uffff]+$",
       "maxLength": 4096,
       "description": "An absolute IRI"}
UUID = {"type": "string", "pattern": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
LANGUAGE_MAP = {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$"},
                "additionalProperties": {"type": "string", "maxLength": MAX_TEXT}}
EXTENSIONS = {"type": "object", "propertyNames": IRI}
TIME = {"type": "string", "format": "date-time",
        "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?$"}
NAME = {"type": "string", "maxLength": 1000}

_IFIS = {
    "mbox": {"type": "string", "pattern": r"^mailto:[^\s@]+@[^\s]+$"},
    "mbox_sha1sum": {"type": "string", "pattern": "^[0-9a-fA-F]{40}$"},
    "openid": IRI,
    "account": {"type": "object", "required": ["homePage", "name"], "additionalProperties": False,
                "properties": {"homePage": IRI, "name": {**NAME, "minLength": 1}}},
}
_ONE_IFI = {"oneOf": [{"required": [k]} for k in _IFIS]}
AGENT = {"type": "object", "additionalProperties": False, **_ONE_IFI,
         "properties": {"objectType": {"const": "Agent"}, "name": NAME, **_IFIS}}
GROUP = {"type": "object", "additionalProperties": False, "required": ["objectType"],
         "properties": {"objectType": {"const": "Group"}, "name": NAME, **_IFIS,
                        "member": {"type": "array", "minItems": 1, "items": AGENT}},
         "anyOf": [_ONE_IFI, {"required": ["member"],
                              "not": {"anyOf": [{"required": [k]} for k in _IFIS]}}]}
ACTOR = {"oneOf": [AGENT, GROUP], "description": "An Agent or Group with exactly one inverse functional identifier "
                                                 "(mbox, mbox_sha1sum, openid, account), or an anonymous Group "
                                                 "listing its members"}
VERB = {"type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": IRI, "display": LANGUAGE_MAP}}
ACTIVITY = {"type": "object", "required": ["id"], "additionalProperties": False,
            "properties": {"objectType": {"const": "Activity"}, "id": IRI,
                           "definition": {"type": "object", "additionalProperties": False,
                                          "properties": {"name": LANGUAGE_MAP, "description": LANGUAGE_MAP,
                                                         "type": IRI, "moreInfo": IRI, "extensions": EXTENSIONS}}}}
STATEMENT_REF = {"type": "object", "required": ["objectType", "id"], "additionalProperties": False,
                 "properties": {"objectType": {"const": "StatementRef"}, "id": UUID}}
SCORE = {"type": "object", "additionalProperties": False,
         "properties": {"scaled": {"type": "number", "minimum": -1, "maximum": 1}}}
RESULT = {"type": "object", "additionalProperties": False,
          "properties": {"success": {"type": "boolean"}, "completion": {"type": "boolean"}, "score": SCORE,
                         "response": {"type": "string", "maxLength": MAX_TEXT},
                         "duration": {"type": "string", "pattern": r"^PT\d{1,6}S$"}}}
CONTEXT = {"type": "object", "additionalProperties": False,
           "properties": {"registration": UUID, "language": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
                          "contextActivities": {
                              "type": "object", "additionalProperties": False,
                              "properties": {k: {"type": "array", "items": ACTIVITY}
                                             for k in ("parent", "grouping", "category", "other")}}}}
STATEMENT = {
    "type": "object", "required": ["actor", "verb", "object"], "additionalProperties": False,
    "description": "An xAPI statement (xAPI 1.0.3 / 2.0.0). Valid as the specification requires, or the whole "
                   "request is refused with 400 naming the rule and the statement's index.",
    "properties": {
        "id": {**UUID, "description": "The statement id, also the interaction's event_id: a resend is stored once"},
        "actor": ACTOR, "verb": VERB,
        "object": {"oneOf": [ACTIVITY, STATEMENT_REF]},
        "result": RESULT, "context": CONTEXT, "timestamp": TIME,
        "version": {"type": "string", "enum": ["1.0.0", "1.0.3", "2.0.0"]},
    },
}
STATEMENTS = {"oneOf": [STATEMENT, {"type": "array", "items": STATEMENT, "maxItems": 1000}],
              "description": "One statement, or a list of them"}

# PUT: the statementId query parameter is the id; a body that gives one too must give the same (a rule
# JSON Schema cannot state across the query and the body: the 400's description says it).
PUT_STATEMENT = {**STATEMENT, "description": STATEMENT["description"] + " Its id is the statementId parameter; a "
                                                                       "body that gives one must give the same."}

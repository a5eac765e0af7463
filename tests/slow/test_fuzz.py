"""Schemathesis fuzzes every operation of /openapi.json against the app (real Postgres and Redis),
with every check it has: no answer is a 5xx; every answer has a documented status, content type,
headers and body; schema-valid requests are accepted (or refused only for a documented reason) and
invalid ones refused; auth is enforced; unsupported methods get 405. Then the stateful phase chains
operations through the links schemathesis infers from the document (PUT /v1/items/{item_id} ->
GET /v1/items/{item_id} -> ...) and checks every answer of every sequence the same way.

Bounded and deterministic: EXAMPLES generated requests per operation (positive and negative), plus
the coverage phase's fixed boundary cases, plus SEQUENCES call sequences of at most STEPS calls; a
fixed seed, derandomized Hypothesis, no example database on disk.
"""
from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.api.factory import create_app
from app.api.spec import ENDPOINTS
from app.config import Settings
from tests.conftest import TEST_API_KEY
from tests.database import empty_database
from tests.seed import seed

pytestmark = pytest.mark.slow  # fuzzes every operation (thousands of requests)

EXAMPLES = 25
SEQUENCES = 40
STEPS = 6
SEED = 20240611
AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}  # the test key has every scope

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    "headers": AUTH,
    # The xAPI endpoints document HTTP Basic, as a learning record store's are called (the key as the password).
    # A schema-valid statement can still break a rule JSON Schema cannot state (no id twice in a list, a PUT
    # body's id the statementId, ...): the xAPI specification answers those 400, which the operations document.
    "operations": [{"include-tag": "xapi", "auth": {"basic": {"username": "fuzz", "password": TEST_API_KEY}},
                    "checks": {"positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]}}}],
    "generation": {"max-examples": EXAMPLES, "database": "none", "deterministic": True},
    # Every check schemathesis has is on; these settings only say which statuses the contract allows.
    "checks": {
        # A schema-valid request may still name ids that do not exist (a unit's items, an interaction's
        # item): JSON Schema cannot say "must exist". Each operation documents those 422s, and
        # refused_only_for_documented_rules below holds every such 422 to what its operation documents.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]},
        # A body over the size limit is refused with 413 (documented), which counts as a rejection too.
        "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413",
                                                          "415", "422", "428", "429", "5xx"]},
        # DELETE /v1/items/{item_id} deactivates and keeps the item readable (active: false), by design
        # and as documented: a read after it answering 200 is the contract, not a use after free.
        "use_after_free": {"enabled": False},
    },
})

# The document is read from GET /openapi.json at import so that pytest collects one test per
# operation. Serving it touches neither Postgres nor Redis, so this app needs no servers; every
# request of the fuzz goes to the `app` fixture's app instead. (schemathesis.pytest.from_fixture
# would load it from the fixture, but fails on pytest 9.2: Function has no `_nodeid`.)
_DOC_APP = create_app(Settings(database_url="postgresql://document-only.invalid/adaptrec",
                               redis_url="redis://document-only.invalid:6379/0", api_keys=(TEST_API_KEY,)))
schema = schemathesis.openapi.from_wsgi("/openapi.json", _DOC_APP, config=CONFIG)


# A small catalogue, so reads of known ids are exercised too (tests.seed.seed puts it in).
CATALOGUE = {
    "items": [{"item_id": f"q{i}", "title": f"Question {i}"} for i in range(1, 7)],
    "units": [{"unit_id": "math", "name": "Mathematics", "kind": "subject", "children": ["algebra", "geometry"]},
              {"unit_id": "algebra", "kind": "chapter", "items": ["q1", "q2", "q3"]},
              {"unit_id": "geometry", "kind": "chapter", "items": ["q4", "q5", "q6"]}],
    "users": [{"user_id": u, "attrs": {"grade": 9}} for u in ("u1", "u2", "u3")],
    "interactions": [{"event_id": f"e-{u}-{q}", "user_id": u, "item_id": f"q{q}", "outcome": (q + len(u)) % 2}
                     for u in ("u1", "u2") for q in range(1, 7)],
    "experiments": {"exp1": {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "strategy": "top"}]}},
}


@pytest.fixture
def seeded_app(app, client, auth):
    """The app over the seeded catalogue."""
    seed(client, auth, **CATALOGUE)
    return app


def reset(conn, db_schema, redis_url: str, prefix: str) -> None:
    """Empty the tables (what the `conn` fixture does after a test) and this run's Redis keys."""
    import redis

    empty_database(conn, db_schema)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


_RULES = {(ep.method.upper(), ep.path): ep.unprocessable for ep in ENDPOINTS}
# Documented on every operation with a body (the only place text comes from): text Postgres cannot
# store, a NUL or an unpaired surrogate.
_UNSTORABLE = "text must not contain NUL"


def refused_only_for_documented_rules(ctx, response, case):
    """A schema-valid request answered 422 names, in `errors`, only fields whose 422 rule the
    operation documents (ids that must exist, ...): any other 422 means the document and the
    validating models disagree."""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return None
    rules = _RULES[(case.method.upper(), case.path)]
    errors = response.json().get("errors") or []
    undocumented = sorted(e["field"] for e in errors if re.split(r"[.\[]", e["field"])[0] not in rules
                          and not e["message"].startswith(_UNSTORABLE))
    assert errors and not undocumented, (f"schema-valid request refused for a reason {case.method} {case.path} "
                                         f"does not document: {response.text}")
    return True


CHECKS = [refused_only_for_documented_rules]


@schema.parametrize()
# The seeded app is shared by the examples of one operation on purpose: they build on its rows.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented(case, seeded_app):
    case.call_and_validate(app=seeded_app, additional_checks=CHECKS)


def test_call_sequences_answer_as_documented(seeded_app, client, auth, conn, db_schema, redis_url, redis_prefix):
    class Sequences(schema.as_state_machine()):
        def setup(self):
            # Every sequence starts from the same rows and an empty cache: the links a sequence
            # follows come from its answers, and answers shaped by earlier sequences made
            # Hypothesis's draws differ between cases with the same choices (FlakyStrategyDefinition).
            reset(conn, db_schema, redis_url, redis_prefix)
            seed(client, auth, **CATALOGUE)

        def call(self, case, **kwargs):
            return case.call(app=seeded_app, **kwargs)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            super().validate_response(response, case, additional_checks=CHECKS, **kwargs)

    Sequences.run(settings=settings(max_examples=SEQUENCES, stateful_step_count=STEPS, derandomize=True,
                                    database=None, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                           HealthCheck.data_too_large]))


# Generated ids almost never name a seeded row, so each read of an existing resource is also
# checked once, explicitly: (method, path, path parameters, query, body).
KNOWN = [
    ("GET", "/v1/users/{user_id}", {"user_id": "u1"}, None, None),
    ("GET", "/v1/items/{item_id}", {"item_id": "q1"}, None, None),
    ("GET", "/v1/units/{unit_id}", {"unit_id": "math"}, None, None),
    ("GET", "/v1/experiments/{name}", {"name": "exp1"}, None, None),
    ("GET", "/v1/experiments", None, None, None),
    ("GET", "/v1/users/{user_id}/recommendations", {"user_id": "u1"}, {"n": 3}, None),
    ("GET", "/v1/users/{user_id}/knowledge", {"user_id": "u1"}, None, None),
    ("GET", "/v1/users/{user_id}/knowledge", {"user_id": "u1"}, {"units": "math"}, None),
    ("GET", "/v1/items/{item_id}/similar", {"item_id": "q1"}, None, None),
    ("GET", "/v1/trending", None, {"units": "algebra,geometry"}, None),
    ("POST", "/v1/recommendations", None, None, {"user_id": "u1", "units": ["math"], "experiment": "exp1"}),
    ("POST", "/v1/predictions", None, None, {"user_id": "u2", "units": ["algebra"], "item_ids": ["q1", "q2"]}),
    ("PUT", "/v1/units/{unit_id}", {"unit_id": "algebra"}, None, {"items": ["q1", "q2"]}),
    ("DELETE", "/v1/items/{item_id}", {"item_id": "q3"}, None, None),
    ("POST", "/v1/experiments/{name}/stop", {"name": "exp1"}, None, None),
]


@pytest.mark.parametrize("method, path, path_parameters, query, body", KNOWN, ids=[f"{m} {p}" for m, p, *_ in KNOWN])
def test_existing_resources_answer_as_documented(seeded_app, method, path, path_parameters, query, body):
    operation = schema[path][method]
    kwargs = {} if body is None else {"body": body, "media_type": "application/json"}
    case = operation.Case(path_parameters=path_parameters, query=query, headers=AUTH, **kwargs)
    response = case.call_and_validate(app=seeded_app)
    assert response.status_code == 200, response.text


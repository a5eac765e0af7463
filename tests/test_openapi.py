"""/openapi.json is generated from the same models that validate requests, and covers every route."""
from __future__ import annotations

import re

from app.api.models import Interaction, InteractionBatch, UnitFields


def flask_routes(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method.lower(), path))
    return found


def test_every_route_is_documented_and_every_documented_path_exists(app, client):
    doc = client.get("/openapi.json").json
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == flask_routes(app)


def test_request_schemas_are_the_validating_models(client):
    doc = client.get("/openapi.json").json
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/v1/interactions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"oneOf": [{"$ref": "#/components/schemas/Interaction"},
                              {"$ref": "#/components/schemas/InteractionBatch"}]}
    assert set(schemas["Interaction"]["properties"]) == set(Interaction.model_fields)
    assert schemas["InteractionBatch"]["properties"]["interactions"]["maxItems"] == \
        InteractionBatch.model_fields["interactions"].metadata[1].max_length
    unit_body = doc["paths"]["/v1/units/{unit_id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert unit_body == {"$ref": "#/components/schemas/UnitFields"}
    assert set(schemas["UnitFields"]["properties"]) == set(UnitFields.model_fields)
    assert schemas["UnitFields"]["additionalProperties"] is False


def test_protected_operations_declare_bearer_auth_and_health_is_open(client):
    doc = client.get("/openapi.json").json
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert doc["paths"]["/v1/interactions"]["post"]["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_ref_resolves(client):
    doc = client.get("/openapi.json").json
    text = str(doc)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in doc["components"]["schemas"], name

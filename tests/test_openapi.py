"""/openapi.json is generated from the same models that validate requests, and covers every route."""
from __future__ import annotations

import re

from app.api.schemas import InteractionBatch
from app.records import Interaction, UnitFields


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


def test_ids_are_documented_as_accepted_integers_included(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    user_id = schemas["User"]["properties"]["user_id"]
    assert {"type": "integer"} in user_id["anyOf"]
    text = next(s for s in user_id["anyOf"] if s["type"] == "string")
    assert (text["minLength"], text["maxLength"]) == (1, 256) and text["pattern"] == r"^[^\x00-\x1f]+$"


def test_path_ids_are_documented_like_body_ids(client):
    doc = client.get("/openapi.json").json
    for path, method in [("/v1/users/{user_id}", "get"), ("/v1/items/{item_id}", "put"),
                         ("/v1/users/{user_id}/recommendations", "get"), ("/v1/items/{item_id}/similar", "get")]:
        (param,) = [p for p in doc["paths"][path][method]["parameters"] if p["in"] == "path"]
        assert param["schema"]["maxLength"] == 256 and param["schema"]["pattern"] == r"^[^\x00-\x1f]+$", path


def test_units_query_is_documented_as_a_comma_separated_list(client):
    params = client.get("/openapi.json").json["paths"]["/v1/trending"]["get"]["parameters"]
    (units,) = [p for p in params if p["name"] == "units"]
    assert (units["style"], units["explode"]) == ("form", False)
    assert units["schema"]["type"] == "array" and units["schema"]["minItems"] == 1
    assert units["schema"]["maxItems"] == 100 and "," in units["schema"]["items"]["pattern"]


def test_lenient_inputs_are_documented(client):
    props = client.get("/openapi.json").json["components"]["schemas"]["Interaction"]["properties"]
    assert {"type": "boolean"} in props["outcome"]["anyOf"]
    assert props["value"]["maximum"] == 3.4e38

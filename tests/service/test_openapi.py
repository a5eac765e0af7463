"""/openapi.json is generated from the same models that validate requests, and covers every route."""
from __future__ import annotations

import re

from app.api.schemas import InteractionBatch
from app.catalogue.records import Interaction, UnitFields


def flask_routes(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("dashboard."):
            continue   # the dashboard's HTML pages are not the API (tests/service/test_dashboard_access.py)
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


def test_every_operation_documents_what_the_http_server_answers_itself(client):
    doc = client.get("/openapi.json").json
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status in ("400", "414", "431"):
                answer = op["responses"][status]
                assert "application/problem+json" in answer["content"], (method, path, status)
    assert "4094 bytes" in doc["paths"]["/v1/trending"]["get"]["responses"]["414"]["description"]
    assert "414" in doc["info"]["description"] and "431" in doc["info"]["description"]


def test_every_operation_that_can_answer_422_documents_why(client):
    doc = client.get("/openapi.json").json
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            takes_input = "requestBody" in op or op.get("parameters")
            assert ("422" in op["responses"]) == bool(takes_input), (method, path)
    ops = doc["paths"]
    for path, method, field in [("/v1/interactions", "post", "item_id"), ("/v1/units", "post", "children"),
                                ("/v1/units/{unit_id}", "put", "items"), ("/v1/items", "post", "units"),
                                ("/v1/recommendations", "post", "units"), ("/v1/trending", "get", "units"),
                                ("/v1/experiments/{name}", "put", "variants")]:
        text = ops[path][method]["responses"]["422"]["description"]
        assert f"`{field}`" in text and "must" in text, (method, path, text)


def test_the_attempt_rule_is_in_the_schema(client):
    interaction = client.get("/openapi.json").json["components"]["schemas"]["Interaction"]
    assert interaction["if"] == {"properties": {"kind": {"const": "attempt"}}}
    assert interaction["then"]["required"] == ["outcome"]


def test_similar_items_of_a_deactivated_item_are_explained(client):
    op = client.get("/openapi.json").json["paths"]["/v1/items/{item_id}/similar"]["get"]
    assert "deactivated" in op["description"] and "200" in op["description"]

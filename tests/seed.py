"""The one way tests put a small catalogue in through the API, as a client would."""
from __future__ import annotations


def seed(client, headers: dict, *, items=("i1", "i2", "i3"), units=None, users=(), interactions=(),
         experiments=None) -> None:
    """Post rows through the API in the order they depend on each other: items, units (by default
    one unit 'root' holding every item), users, interactions, then experiments ({name: body}).
    Items may be given as ids or as whole bodies. Every answer is checked, so a seed that fails
    stops the test here, with the API's own words, rather than in an assertion further on."""
    items = [{"item_id": item} if isinstance(item, str) else item for item in items]
    if units is None:
        units = [{"unit_id": "root", "items": [item["item_id"] for item in items]}]
    calls = [("POST", "/v1/items", {"items": items}), ("POST", "/v1/units", {"units": list(units)}),
             ("POST", "/v1/users", {"users": list(users)}),
             ("POST", "/v1/interactions", {"interactions": list(interactions)})]
    calls = [call for call in calls if next(iter(call[2].values()))]
    calls += [("PUT", f"/v1/experiments/{name}", body) for name, body in (experiments or {}).items()]
    for method, path, body in calls:
        answer = client.open(path, method=method, json=body, headers=headers)
        assert answer.status_code in (200, 201), (method, path, answer.status_code, answer.json)

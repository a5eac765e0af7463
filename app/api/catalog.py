"""Catalogue endpoints: users, items and units (with their children and items)."""
from __future__ import annotations

from flask import Blueprint, request

from app.api.context import current_tenant, get_conn, services
from app.api.schemas import ItemBatch, ItemOut, Problem, UnitBatch, UnitOut, UpsertResult, UserBatch, UserOut
from app.api.spec import documented, parse_body
from app.catalogue import catalog
from app.catalogue.records import ID_SCHEMA, Item, ItemFields, Unit, UnitFields, User, UserFields, identifier

bp = Blueprint("catalog", __name__)

_ERRORS = {401: Problem, 404: Problem, 422: Problem}
_ITEM_RULES = {"units": "every unit an item names must exist"}
_UNIT_RULES = {"children": "every child must be an existing unit (or one of the same batch), not the unit itself, "
                           "and the hierarchy must stay acyclic",
               "items": "every item named must exist"}


@bp.after_request
def _seen_at_once(response):
    """After a write through this worker (committed by now), its next request reads the catalogue
    version again instead of waiting up to a second (app.catalogue.candidates.VERSION_TTL_S)."""
    if request.method != "GET" and response.status_code < 400:
        services().candidates.forget_version(current_tenant())
    return response


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


# ---- users ------------------------------------------------------------------------------
@bp.put("/v1/users/<user_id>")
@documented("put", "/v1/users/{user_id}", "Create or update a user", tag="catalog", body=UserFields,
            responses={200: UserOut, **_ERRORS}, params=[_path_param("user_id")])
def put_user(user_id: str):
    user_id = identifier("user_id", user_id)
    fields = parse_body(UserFields)
    conn = get_conn()
    with conn:
        catalog.upsert_users(conn, current_tenant(), [User(user_id=user_id, **fields.model_dump())])
        return catalog.get_user(conn, current_tenant(), user_id)


@bp.post("/v1/users")
@documented("post", "/v1/users", "Create or update a batch of users", tag="catalog", body=UserBatch,
            responses={200: UpsertResult, **_ERRORS})
def post_users():
    batch = parse_body(UserBatch)
    conn = get_conn()
    with conn:
        return {"upserted": catalog.upsert_users(conn, current_tenant(), batch.users)}


@bp.get("/v1/users/<user_id>")
@documented("get", "/v1/users/{user_id}", "Read a user", tag="catalog", responses={200: UserOut, **_ERRORS},
            params=[_path_param("user_id")])
def get_user(user_id: str):
    return catalog.get_user(get_conn(), current_tenant(), identifier("user_id", user_id))


# ---- items ------------------------------------------------------------------------------
@bp.put("/v1/items/<item_id>")
@documented("put", "/v1/items/{item_id}", "Create or update an item", tag="catalog", body=ItemFields,
            responses={200: ItemOut, **_ERRORS}, params=[_path_param("item_id")],
            unprocessable=_ITEM_RULES)
def put_item(item_id: str):
    item_id = identifier("item_id", item_id)
    fields = parse_body(ItemFields)
    conn = get_conn()
    with conn:
        catalog.upsert_items(conn, current_tenant(), [Item(item_id=item_id, **fields.model_dump())])
        return catalog.get_item(conn, current_tenant(), item_id)


@bp.post("/v1/items")
@documented("post", "/v1/items", "Create or update a batch of items", tag="catalog", body=ItemBatch,
            responses={200: UpsertResult, **_ERRORS}, unprocessable=_ITEM_RULES)
def post_items():
    batch = parse_body(ItemBatch)
    conn = get_conn()
    with conn:
        return {"upserted": catalog.upsert_items(conn, current_tenant(), batch.items)}


@bp.get("/v1/items/<item_id>")
@documented("get", "/v1/items/{item_id}", "Read an item", tag="catalog", responses={200: ItemOut, **_ERRORS},
            params=[_path_param("item_id")])
def get_item(item_id: str):
    return catalog.get_item(get_conn(), current_tenant(), identifier("item_id", item_id))


@bp.delete("/v1/items/<item_id>")
@documented("delete", "/v1/items/{item_id}", "Deactivate an item: never recommended again, history kept",
            tag="catalog", responses={200: ItemOut, **_ERRORS}, params=[_path_param("item_id")],
            description="The item stays readable (GET answers it with `active: false`) and its interactions stay; "
                        "PUT it with `active: true` to bring it back.")
def deactivate_item(item_id: str):
    item_id = identifier("item_id", item_id)
    conn = get_conn()
    with conn:
        catalog.deactivate_item(conn, current_tenant(), item_id)
        return catalog.get_item(conn, current_tenant(), item_id)


# ---- units ------------------------------------------------------------------------------
@bp.put("/v1/units/<unit_id>")
@documented("put", "/v1/units/{unit_id}", "Create or update a unit with its children and items",
            tag="catalog", body=UnitFields, responses={200: UnitOut, **_ERRORS}, params=[_path_param("unit_id")],
            unprocessable=_UNIT_RULES)
def put_unit(unit_id: str):
    unit_id = identifier("unit_id", unit_id)
    fields = parse_body(UnitFields)
    conn = get_conn()
    with conn:
        catalog.upsert_units(conn, current_tenant(), [Unit(unit_id=unit_id, **fields.model_dump())])
        return catalog.get_unit(conn, current_tenant(), unit_id)


@bp.post("/v1/units")
@documented("post", "/v1/units", "Create or update a batch of units (children may name units of the same batch)",
            tag="catalog", body=UnitBatch, responses={200: UpsertResult, **_ERRORS}, unprocessable=_UNIT_RULES)
def post_units():
    batch = parse_body(UnitBatch)
    conn = get_conn()
    with conn:
        return {"upserted": catalog.upsert_units(conn, current_tenant(), batch.units)}


@bp.get("/v1/units/<unit_id>")
@documented("get", "/v1/units/{unit_id}", "Read a unit: parents, children, items, items under it",
            tag="catalog", responses={200: UnitOut, **_ERRORS}, params=[_path_param("unit_id")])
def get_unit(unit_id: str):
    return catalog.get_unit(get_conn(), current_tenant(), identifier("unit_id", unit_id))

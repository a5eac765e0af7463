"""What Totara's endpoints answer, shared by the routes (app/api/totara.py) and the files Totara
13-14 sites upload instead (jobs/export_totara.py), so that the two cannot drift apart.

An item's Totara type is its component, the start of its id (`engage_article12`); the Totara
import files every item under that kind too (jobs/importers/totara.py). A tenant whose items have
no Totara component at all cannot be answered: /user-items would find no candidates for any type
and answer every user with an empty success, so it is refused (NoTotaraComponent) and named by
/health-check instead. The caller owns the transaction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import NotFound, UnknownIds
from app.infra import queries as q
from app.serving import related
from app.totara.protocol import COMPONENT_UNIT, ITEM_TYPES, join_item_id, split_item_id

if TYPE_CHECKING:
    from app.serving.context import RequestContext

# /similar-items looks at this many nearest items (of every type) to find n of the item's own type.
NEAREST_MAX = 2000


class NoTotaraComponent(Exception):
    """The tenant has items but none of a Totara component: nothing Totara asks for can be answered."""
    status = 409


def no_component_message(tenant: str, items: int, examples: list[str]) -> str:
    """What is wrong with a tenant whose `items` items have no Totara component, and what to do."""
    shown = ", ".join(repr(i) for i in examples[:3])
    return (f"tenant {tenant}: none of its {items} items has a Totara component ({', '.join(ITEM_TYPES)}): "
            f"their ids ({shown}, ...) do not start with one and item_data gave none, so /user-items cannot answer "
            "for any item type; import an export whose item ids are Totara's (engage_article12) or whose "
            "item_data has the component columns")


def component_problem(conn, tenant: str) -> str | None:
    """None when the tenant has an item of a Totara component (or no item at all); else what is wrong."""
    row = q.fetch_one(conn, "totara_components", tenant=tenant, components=list(ITEM_TYPES))
    if not row or row["items"] == 0 or row["component_items"] > 0:
        return None
    return no_component_message(tenant, row["items"], row["without"] or [])


def of_component(ranked, component: str) -> list[tuple[str, float]]:
    """The (item id, score) pairs whose id is Totara's and of `component`, in the given order."""
    out = []
    for item_id, score in ranked:
        try:
            kind, _ = split_item_id(item_id)
        except ValueError:
            continue  # not a Totara-named item: Totara could not read its id
        if kind == component:
            out.append((item_id, float(score)))
    return out


def user_items(ctx: RequestContext, user_id: str, component: str, n: int) -> list[tuple[str, float]]:
    """GET /user-items: the user's top n items of `component`, best first. A tenant without an item
    of that component answers an empty list; one without any Totara component raises NoTotaraComponent."""
    try:
        ranked = related.user_top_items(ctx, user_id, [COMPONENT_UNIT + component], n)
    except UnknownIds:   # no unit for this component: the tenant has no item of it
        problem = component_problem(ctx.conn, ctx.tenant)
        if problem:
            raise NoTotaraComponent(problem) from None
        return []
    return of_component(ranked, component)[:n]


def similar_items(ctx: RequestContext, item_id: str, n: int) -> list[tuple[str, float]]:
    """GET /similar-items: the n items of the item's own component nearest to it, best first. An
    unknown engage_articleN is looked up as engage_microlearningN, as Totara's service does.
    ValueError for an id that is not Totara's, NotFound for an unknown item."""
    component, number = split_item_id(item_id)
    names = [item_id] + ([join_item_id("engage_microlearning", number)] if component == "engage_article" else [])
    for name in names:
        try:
            answer = related.similar_items(ctx, name, min(4 * n + 20, NEAREST_MAX))
        except NotFound:
            continue
        component = split_item_id(name)[0]
        ranked = [(i["item_id"], i["similarity"]) for i in answer["items"] if i["item_id"] not in names]
        return of_component(ranked, component)[:n]
    raise NotFound(f"no item {item_id} in tenant {ctx.tenant}")

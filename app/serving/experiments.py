"""A/B experiments: variants with weights, each naming a strategy, its parameters and optionally
a model tag. A learner's variant comes from a stable hash of (experiment, user), so it never
changes while the variants stay the same."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from app import strategies
from app.errors import InputError, NotFound
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection


def assign(experiment: str, user_id: str, variants: list[dict]) -> dict:
    """The variant of `user_id`: a point in [0, 1) from SHA-256 of (experiment, user), mapped
    onto the variants' cumulative weights."""
    digest = hashlib.sha256(f"{experiment}\x00{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    total = sum(float(v["weight"]) for v in variants)
    edge = 0.0
    for v in variants:
        edge += float(v["weight"]) / total
        if point < edge:
            return v
    return variants[-1]


def save(conn: Connection, tenant: str, name: str, description: str | None, variants: list[dict]) -> dict:
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise InputError("variant names must be unique within an experiment",
                         [{"field": "variants", "message": "duplicate variant name"}])
    unknown = sorted({v["strategy"] for v in variants} - set(strategies.REGISTRY))
    if unknown:  # refused here, not later on every recommendation routed to the variant
        raise InputError(f"unknown strategy {unknown[0]!r}; choose one of {', '.join(sorted(strategies.REGISTRY))}",
                         [{"field": "variants", "message": f"unknown strategy {s!r}"} for s in unknown])
    return q.fetch_one(conn, "upsert_experiment", tenant=tenant, experiment=name, description=description,
                       variants=json.dumps(variants))


def get(conn: Connection, tenant: str, name: str) -> dict:
    row = q.fetch_one(conn, "get_experiment", tenant=tenant, experiment=name)
    if row is None:
        raise NotFound(f"no experiment {name!r}")
    return row


def stop(conn: Connection, tenant: str, name: str) -> dict:
    row = q.fetch_one(conn, "stop_experiment", tenant=tenant, experiment=name)
    if row is None:
        raise NotFound(f"no experiment {name!r}")
    return row


def list_all(conn: Connection, tenant: str) -> list[dict]:
    return q.fetch_all(conn, "list_experiments", tenant=tenant)

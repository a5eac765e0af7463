"""What both objectives read besides their interactions: the hybrid modes' item and user features."""
from __future__ import annotations

from app.infra import queries as q
from jobs.training import features


def hybrid_features(conn, tenant: str, items: list[dict], user_ids: list[str],
                    mode: str) -> tuple[features.FeatureSet | None, features.FeatureSet | None]:
    """(item features, user features) of a unit's items and learners in `mode`; (None, None) in mf."""
    if mode == "mf":
        return None, None
    attrs = {r["user_id"]: r["attrs"] for r in q.fetch_all(conn, "users_attrs", tenant=tenant, user_ids=user_ids)}
    conn.rollback()
    return (features.item_features(items, mode),
            features.user_features([{"user_id": u, "attrs": attrs.get(u, {})} for u in user_ids], mode))

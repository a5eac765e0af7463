"""The engagement objective's training step for one unit: read its users' positive engagements,
train the top-N model (jobs.training.engagement), store it, and activate it if sane."""
from __future__ import annotations

import time

import numpy as np

from app.infra import queries as q
from app.model import store as modelstore
from app.model.artifact import UNCALIBRATED, Blend, Embedding, ModelArtifact, UserTokens
from jobs.training.activation import activate_if_sane
from jobs.training.engagement import EngagementData, train_engagement
from jobs.training.job import JobState, TrainConfig, UnitOutcome, UnitResult
from jobs.training.unit_data import hybrid_features

OBJECTIVE = "engagement"
MIN_POSITIVES = 10


def load_engagement_data(conn, tenant: str, unit_id: str, mode: str) -> EngagementData:
    items = q.fetch_all(conn, "unit_items_for_training", tenant=tenant, unit_id=unit_id)
    item_ids = [i["item_id"] for i in items]
    rows = q.fetch_all(conn, "positive_engagements_on_items", tenant=tenant, item_ids=item_ids, min_value=0)
    conn.rollback()
    item_pos = {item_id: i for i, item_id in enumerate(item_ids)}
    user_col = np.array([r["user_id"] for r in rows], dtype=object)
    user_ids, users = np.unique(user_col, return_inverse=True) if rows else (np.array([]), np.array([], int))
    data = EngagementData([str(u) for u in user_ids], item_ids, users.astype(np.int32),
                          np.array([item_pos[r["item_id"]] for r in rows], dtype=np.int32))
    data.item_features, data.user_features = hybrid_features(conn, tenant, items, data.user_ids, mode)
    return data


def train_unit(conn, unit_id: str, mode: str, config: TrainConfig, state: JobState | None = None) -> UnitResult:
    """Train, store and (if sane) activate the unit's engagement model (`state` unused: top-N
    models are not compared with their ancestors)."""
    started = time.perf_counter()
    data = load_engagement_data(conn, config.tenant, unit_id, mode)
    if len(data.users) < MIN_POSITIVES:
        return UnitResult(UnitOutcome(unit_id, OBJECTIVE, "skipped", reason="too few positive engagements"))
    result = train_engagement(data, seed=config.seed, threads=config.unit_threads, neighbours=config.ease_neighbours)
    counts = {"users": len(data.user_ids), "items": len(data.item_ids), "positives": len(data.users)}
    m = result.model
    item_weights = m.B if m.B is not None and m.weight < 1 else None   # EASE (top-k CSR) when the blend uses it
    tokens = m.user_tokens
    artifact = ModelArtifact(
        Embedding(data.item_ids, m.item_vectors, m.item_biases, result.prior_mean, result.prior_cov),
        UNCALIBRATED, blend=Blend(m.weight, m.foldin_reg, item_weights),   # scores rank; not probabilities
        user_tokens=UserTokens(tokens["tokens"], tokens["shifts"], tokens["mean"]) if tokens else None)
    with conn:
        model_id = modelstore.save_model(conn, config.tenant, artifact, modelstore.ModelMeta(
            unit_id, OBJECTIVE, mode, config.tag,
            hyperparams={**result.params, "search": result.search, "seed": config.seed},
            metrics=result.metrics, data_counts=counts, training_seconds=result.seconds))
    outcome = activate_if_sane(conn, UnitOutcome(unit_id, OBJECTIVE, "stored", model_id, result.metrics), config)
    outcome.seconds = time.perf_counter() - started
    return UnitResult(outcome, artifact, counts=counts)

"""Stored models through a real Postgres: EASE's item weights in the top-k (sparse) layout and in
the dense layout of models stored before it (issue 15), each loaded and scored as saved."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from app.model import store as modelstore
from app.model.artifact import UNCALIBRATED, Blend, Embedding, ModelArtifact
from app.online.scoring import ServingModel, engagement_scores
from app.serving.model_cache import ModelCache
from jobs.training.ease import EASE_NEIGHBOURS, top_k_neighbours
from jobs.training.job import TrainConfig

MAX_ROW_BYTES = 50_000_000


def engagement_embedding(n: int, d: int = 4, seed: int = 0) -> Embedding:
    rng = np.random.default_rng(seed)
    return Embedding([f"item-{i:05d}" for i in range(n)], rng.normal(size=(n, d)).astype(np.float32),
                     rng.normal(size=n).astype(np.float32), np.zeros(d + 1, dtype=np.float32),
                     np.eye(d + 1, dtype=np.float32))


def engagement_model(embedding: Embedding, item_weights) -> ModelArtifact:
    return ModelArtifact(embedding, UNCALIBRATED, blend=Blend(0.4, 5.0, item_weights))


def ease_like(n: int, seed: int = 0) -> np.ndarray:
    """(n, n) float32 weights with a zero diagonal, as jobs.training.ease.fit_ease returns."""
    B = np.random.default_rng(seed).normal(size=(n, n)).astype(np.float32)
    np.fill_diagonal(B, 0.0)
    return B


def save(conn, embedding: Embedding, item_weights) -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO units (unit_id, name) VALUES ('u', 'Unit') ON CONFLICT DO NOTHING")
    model_id = modelstore.save_model(conn, "default", engagement_model(embedding, item_weights),
                                     modelstore.ModelMeta("u", "engagement", "mf"))
    conn.commit()
    return model_id


def stored_bytes(conn, model_id: int) -> tuple[int, int]:
    """(bytes of item_weights, bytes of every array and text of the model_arrays row), uncompressed."""
    with conn.cursor() as cur:
        cur.execute("""SELECT octet_length(item_weights),
                              octet_length(item_weights) + octet_length(item_vectors) + octet_length(item_biases)
                              + octet_length(prior_mean) + octet_length(prior_cov)
                              + octet_length(array_to_string(item_ids, ',')) + octet_length(extra::text)
                       FROM model_arrays WHERE model_id = %s""", (model_id,))
        row = cur.fetchone()
    conn.rollback()
    return row


def scores(model: ServingModel, positives) -> np.ndarray:
    return engagement_scores(model, np.asarray(positives), np.arange(len(model.item_ids)))


def test_top_k_weights_round_trip_through_postgres_and_score_as_saved(conn):
    embedding = engagement_embedding(40)
    weights = top_k_neighbours(ease_like(40), 7)
    model_id = save(conn, embedding, weights)
    loaded = modelstore.load_model(conn, "default", model_id)
    loaded_weights = loaded.artifact.blend.item_weights
    assert sp.isspmatrix_csr(loaded_weights) and loaded_weights.dtype == np.float32
    assert (loaded_weights != weights).nnz == 0 and loaded_weights.nnz == 40 * 7
    assert stored_bytes(conn, model_id)[0] == len(modelstore.pack_item_weights(weights)) < 4 * 40 * 40
    in_memory = modelstore.StoredModel(model_id, "u", "engagement", "mf", "default",
                                       engagement_model(embedding, weights))
    np.testing.assert_array_equal(scores(ServingModel.from_stored(loaded), [1, 5, 9]),
                                  scores(ServingModel.from_stored(in_memory), [1, 5, 9]))


def test_a_model_stored_dense_before_top_k_still_loads_and_scores_identically(conn):
    embedding, B = engagement_embedding(30, seed=1), ease_like(30, seed=1)
    model_id = save(conn, embedding, B)
    # the bytes are what every model stored before issue 15 holds: n_items^2 float32, nothing else
    with conn.cursor() as cur:
        cur.execute("SELECT item_weights FROM model_arrays WHERE model_id = %s", (model_id,))
        assert bytes(cur.fetchone()[0]) == modelstore.pack(B)
    conn.rollback()
    loaded = modelstore.load_model(conn, "default", model_id)
    loaded_weights = loaded.artifact.blend.item_weights
    assert isinstance(loaded_weights, np.ndarray) and loaded_weights.shape == (30, 30)
    np.testing.assert_array_equal(loaded_weights, B)
    in_memory = modelstore.StoredModel(model_id, "u", "engagement", "mf", "default", engagement_model(embedding, B))
    for positives in ([0], [2, 3, 17], []):
        np.testing.assert_array_equal(scores(ServingModel.from_stored(loaded), positives),
                                      scores(ServingModel.from_stored(in_memory), positives))


def test_item_weights_of_the_wrong_size_or_shape_are_refused():
    weights = top_k_neighbours(ease_like(10), 3)
    packed = modelstore.pack_item_weights(weights)
    assert modelstore.unpack_item_weights(packed, 10).nnz == 30
    with pytest.raises(ValueError):
        modelstore.unpack_item_weights(packed, 11)               # another model's item count
    with pytest.raises(ValueError):
        modelstore.unpack_item_weights(packed[:-4], 10)          # cut short
    with pytest.raises(ValueError):
        modelstore.unpack_item_weights(modelstore.pack(ease_like(10))[:-4], 10)
    with pytest.raises(ValueError, match="item_weights"):
        engagement_model(engagement_embedding(9), weights)


def top_k_shaped(n: int, k: int, seed: int = 0) -> sp.csr_matrix:
    """(n, n) float32 CSR with k entries in each column, as top_k_neighbours leaves EASE's weights,
    built directly: the dense matrix top_k_neighbours would cut them from is 400 MB at 10,000 items."""
    rng = np.random.default_rng(seed)
    rows = np.argsort(rng.random((k + 1, n)), axis=0)[:k].astype(np.int32)   # k distinct rows per column
    cols = np.broadcast_to(np.arange(n, dtype=np.int32), (k, n))
    return sp.csr_matrix((rng.normal(size=k * n).astype(np.float32), (rows.ravel(), cols.ravel())), shape=(n, n))


def test_the_default_top_k_weights_of_10000_items_pack_into_16_mb():
    n, k = 10_000, TrainConfig().ease_neighbours
    assert k == EASE_NEIGHBOURS
    packed = modelstore.pack_item_weights(top_k_shaped(n, k))
    assert len(packed) == 8 + 12 + 4 * (n + 1) + 8 * n * k            # marker, shape, indptr, k (index, weight)
    assert len(packed) <= 16_100_000                                  # dense: 400 MB


@pytest.mark.slow  # stores and reads back a 16 MB row (several seconds on a busy machine)
def test_a_model_row_of_10000_items_with_the_default_top_k_stays_under_50_mb(conn):
    n, k = 10_000, TrainConfig().ease_neighbours
    model_id = save(conn, engagement_embedding(n, d=48), top_k_shaped(n, k))
    weights_bytes, row_bytes = stored_bytes(conn, model_id)
    assert weights_bytes == 8 + 12 + 4 * (n + 1) + 8 * n * k
    assert row_bytes <= MAX_ROW_BYTES, f"{row_bytes / 1e6:.1f} MB"
    loaded = modelstore.load_model(conn, "default", model_id).artifact.blend.item_weights
    assert loaded.shape == (n, n) and loaded.nnz == n * k


def test_the_nearest_model_of_each_unit_is_found_in_one_query_as_one_by_one(conn):
    # root > a > a1, root > b > b1 (b1 also under a1: two paths), c alone, and a cycle x <-> y
    with conn.cursor() as cur:
        cur.execute("INSERT INTO units (unit_id, name) VALUES ('root', 'r'), ('a', 'a'), ('a1', 'a1'), ('b', 'b'), "
                    "('b1', 'b1'), ('c', 'c'), ('x', 'x'), ('y', 'y')")
        cur.execute("INSERT INTO unit_children (parent, child) VALUES ('root', 'a'), ('a', 'a1'), ('root', 'b'), "
                    "('b', 'b1'), ('a1', 'b1'), ('x', 'y'), ('y', 'x')")
    ids = {}
    for unit in ("root", "a1", "b", "x"):
        ids[unit] = modelstore.save_model(conn, "default", engagement_model(engagement_embedding(5), ease_like(5)),
                                          modelstore.ModelMeta(unit, "engagement", "mf"))
        modelstore.activate(conn, "default", ids[unit])
    conn.commit()
    units = ["root", "a", "a1", "b", "b1", "c", "x", "y"]
    one_by_one = {u: ModelCache().nearest(conn, "default", [u], "engagement") for u in units}
    each = ModelCache().nearest_each(conn, "default", units, "engagement")
    assert {u: m.model_id if m else None for u, m in each.items()} \
        == {u: m.model_id if m else None for u, m in one_by_one.items()} \
        == {"root": ids["root"], "a": ids["root"], "a1": ids["a1"], "b": ids["b"], "b1": ids["a1"],
            "c": None, "x": ids["x"], "y": ids["x"]}     # b1: parents a1 and b tie at depth 1, the unit id decides
    assert ModelCache().nearest_each(conn, "default", units, "practice") == dict.fromkeys(units)

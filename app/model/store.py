"""Stored models: one `models` row of metadata (ModelMeta) and one `model_arrays` row holding the
model's parts (a ModelArtifact, app.model.artifact: which parts, their JSON, the format versions) as
packed float32 arrays and two JSON columns, so loading a model for serving is a single read.

EASE's item-item weights (`item_weights`, engagement models) are stored in one of two layouts, told
apart by the bytes themselves (`pack_item_weights` / `unpack_item_weights`), so no migration and no
flag elsewhere is needed:
  * sparse (since issue 15): the 8-byte marker `SPARSE_MARKER`, then little-endian int32 n_rows,
    n_cols, nnz, then a CSR matrix's indptr (n_rows + 1 int32), indices (nnz int32) and data (nnz
    float32): each item's top-k source items, about n_items x k x 8 bytes;
  * dense (older models): n_items^2 float32, row-major, nothing else. Its first 4 bytes are B[0, 0],
    which `fit_ease` sets to 0.0, so a dense row never begins with the marker (whose first 4 bytes
    are not a float32 zero), and its length is exactly 4 n_items^2.

Activation is atomic: in one transaction the previous active model of the same (unit,
objective, tag) is retired and the new one activated; a partial unique index guarantees
readers never see two, and a reader that started before sees the old one whole.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.infra import queries as q
from app.model.artifact import Embedding, FormatError, ModelArtifact

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

_F32 = np.dtype("<f4")


def json_safe(value):
    """JSON cannot carry NaN or infinity (an AUC over one class is NaN): store them as null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def pack(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=_F32).tobytes()


def unpack(raw, shape: tuple) -> np.ndarray:
    return np.frombuffer(bytes(raw), dtype=_F32).reshape(shape)


SPARSE_MARKER = b"EASECSR1"
_I32 = np.dtype("<i4")


def pack_item_weights(weights) -> bytes:
    """EASE weights as stored: a scipy sparse matrix in the sparse layout (see the module
    docstring), a dense array as the older dense layout (kept for tests of old rows)."""
    if not hasattr(weights, "tocsr"):
        return pack(weights)
    csr = weights.tocsr()
    header = np.array([csr.shape[0], csr.shape[1], csr.nnz], dtype=_I32)
    return b"".join([SPARSE_MARKER, header.tobytes(), np.ascontiguousarray(csr.indptr, dtype=_I32).tobytes(),
                     np.ascontiguousarray(csr.indices, dtype=_I32).tobytes(), pack(csr.data)])


def unpack_item_weights(raw, n_items: int):
    """(n_items, n_items) EASE weights from either stored layout: a float32 CSR matrix from the
    sparse one, a read-only float32 array from the dense one. Raises ValueError on anything else."""
    if bytes(raw[:len(SPARSE_MARKER)]) == SPARSE_MARKER:
        import scipy.sparse as sp  # only engagement models need it (about 40 MB in a worker)

        raw = bytearray(raw)        # writable arrays: scipy may sort or sum a matrix's entries in place
        start = len(SPARSE_MARKER)
        n_rows, n_cols, nnz = (int(v) for v in np.frombuffer(raw, dtype=_I32, count=3, offset=start))
        if (n_rows, n_cols) != (n_items, n_items) or len(raw) != start + 4 * (3 + n_rows + 1 + 2 * nnz):
            raise ValueError(f"sparse item weights of shape ({n_rows}, {n_cols}) and {nnz} entries in {len(raw)} "
                             f"bytes do not fit a model of {n_items} items")
        start += 12
        indptr = np.frombuffer(raw, dtype=_I32, count=n_rows + 1, offset=start)
        indices = np.frombuffer(raw, dtype=_I32, count=nnz, offset=start + 4 * (n_rows + 1))
        data = np.frombuffer(raw, dtype=_F32, count=nnz, offset=start + 4 * (n_rows + 1 + nnz))
        weights = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
        weights.check_format(full_check=True)   # indices in range, indptr increasing: once per load
        return weights
    if len(raw) == 4 * n_items * n_items:
        return unpack(raw, (n_items, n_items))
    raise ValueError(f"item weights of {len(raw)} bytes are neither the sparse layout nor dense "
                     f"({n_items} items)")


@dataclass(frozen=True)
class ModelMeta:
    """The `models` row of a model: whose it is (unit, objective, mode, tag) and the job's record of
    its training. hyperparams, metrics and data_counts are reports (JSON as given, NaN stored as null)."""
    unit_id: str
    objective: str               # practice | engagement
    mode: str
    tag: str = "default"
    hyperparams: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data_counts: dict = field(default_factory=dict)
    training_seconds: float = 0.0


@dataclass(frozen=True)
class StoredModel:
    """A model as loaded: its id and `models` row's identity, its parts, its metrics."""
    model_id: int
    unit_id: str
    objective: str
    mode: str
    tag: str
    artifact: ModelArtifact
    metrics: dict = field(default_factory=dict)
    trained_at: object = None

    @property
    def identity(self) -> str:
        return model_identity(self.model_id, self.trained_at)


def model_identity(model_id: int, trained_at) -> str:
    """The model's id and training time: unique even when a database reset or restored gives an
    id again (what names its state kept outside Postgres, e.g. app.serving.item_learning's)."""
    return str(model_id) if trained_at is None else f"{model_id}@{trained_at.timestamp():.6f}"


OBJECTIVES = ("practice", "engagement")


def save_model(conn: Connection, tenant: str, artifact: ModelArtifact, meta: ModelMeta) -> int:
    """Store a complete model with status 'ready' (not serving yet); returns its model_id. An
    engagement model has a Blend, a practice model none (EASE's weights are stored in the sparse
    layout when a scipy matrix, in the older dense one when an array)."""
    if meta.objective not in OBJECTIVES:
        raise ValueError(f"objective {meta.objective!r}: give one of {', '.join(OBJECTIVES)}")
    if (meta.objective == "engagement") != (artifact.blend is not None):
        raise ValueError(f"a {meta.objective} model " + ("needs its Blend (ModelArtifact.blend)"
                                                          if artifact.blend is None else "has no Blend"))
    e = artifact.embedding
    weights = None if artifact.blend is None else artifact.blend.item_weights
    row = q.fetch_one(conn, "insert_model", tenant=tenant, unit_id=meta.unit_id, tag=meta.tag,
                      objective=meta.objective, mode=meta.mode, hyperparams=json.dumps(json_safe(meta.hyperparams)),
                      metrics=json.dumps(json_safe(meta.metrics)), data_counts=json.dumps(json_safe(meta.data_counts)),
                      training_seconds=meta.training_seconds)
    model_id = row["model_id"]
    q.execute(conn, "insert_model_arrays", model_id=model_id, dim=e.dim, item_ids=list(e.item_ids),
              item_vectors=pack(e.item_vectors), item_biases=pack(e.item_biases), prior_mean=pack(e.prior_mean),
              prior_cov=pack(e.prior_cov), calibration=json.dumps(json_safe(artifact.calibration.to_json())),
              extra=json.dumps(json_safe(artifact.extra_json())),
              item_weights=pack_item_weights(weights) if weights is not None else None)
    return model_id


def activate(conn: Connection, tenant: str, model_id: int) -> None:
    """Make `model_id` the active model of its (unit, objective, tag), retiring the previous one."""
    q.execute(conn, "retire_active_model_like", model_id=model_id)
    if not q.fetch_one(conn, "activate_model", tenant=tenant, model_id=model_id):
        raise LookupError(f"model {model_id} does not exist or is not ready")


def active_model_summary(conn: Connection, tenant: str, unit_id: str, objective: str,
                         tag: str = "default") -> dict | None:
    return q.fetch_one(conn, "active_model_summary", tenant=tenant, unit_id=unit_id, objective=objective, tag=tag)


def load_model(conn: Connection, tenant: str, model_id: int) -> StoredModel:
    """The model with its parts, from a row of any format up to FORMAT_VERSION (FormatError,
    naming the model, for a newer one)."""
    row = q.fetch_one(conn, "load_model", tenant=tenant, model_id=model_id)
    if row is None:
        raise LookupError(f"no model {model_id}")
    n, dim = len(row["item_ids"]), row["dim"]
    embedding = Embedding(list(row["item_ids"]), unpack(row["item_vectors"], (n, dim)),
                          unpack(row["item_biases"], (n,)), unpack(row["prior_mean"], (dim + 1,)),
                          unpack(row["prior_cov"], (dim + 1, dim + 1)))
    weights = unpack_item_weights(row["item_weights"], n) if row["item_weights"] is not None else None
    try:
        artifact = ModelArtifact.from_json(embedding, row["calibration"], row["extra"] or {}, row["objective"],
                                           weights)
    except FormatError as exc:
        raise FormatError(f"model {model_id} of unit {row['unit_id']!r} ({row['objective']}): {exc}") from exc
    return StoredModel(row["model_id"], row["unit_id"], row["objective"], row["mode"], row["tag"], artifact,
                       row["metrics"], row["trained_at"])


def load_active(conn: Connection, tenant: str, unit_id: str, objective: str,
                tag: str = "default") -> StoredModel | None:
    summary = active_model_summary(conn, tenant, unit_id, objective, tag)
    return load_model(conn, tenant, summary["model_id"]) if summary else None


def mark_failed(conn: Connection, model_id: int, reason: str) -> None:
    q.execute(conn, "fail_model", model_id=model_id, reason=reason)


def prune(conn: Connection, tenant: str, unit_id: str, objective: str, tag: str, keep: int) -> int:
    """Delete all but the newest `keep` non-active versions; returns how many were deleted."""
    return q.execute(conn, "prune_models", tenant=tenant, unit_id=unit_id, objective=objective, tag=tag, keep=keep)


def list_models(conn: Connection, tenant: str, include_retired: bool = False) -> list[dict]:
    return q.fetch_all(conn, "list_models", tenant=tenant, include_retired=include_retired)

"""The nightly job end to end on MovieLens-100k, for bench.topn's product row: the ratings left after
holding out test positives are imported with the movielens importer into a scratch database, the real
job (jobs.train.run_training) trains the root unit, and the stored engagement model scores each user
from their training positives the way the service does (app.online.scoring.engagement_scores).
"""
from __future__ import annotations

import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.access.tenants import DEFAULT
from app.infra.db import connect
from app.model import store as modelstore
from app.online.scoring import ServingModel, engagement_scores
from harness.databases import scratch_database
from jobs.importers import movielens, run_import
from jobs.train import TrainConfig, run_training
from jobs.training.engagement import split_pairs

# jobs.importers.movielens stores outcome 1 for a rating of 4 stars or more and 0 below; the job's
# positives (sql/training.sql positive_engagements_on_items) are engagements whose outcome is not 0.
PRODUCT_MIN_RATING = 4
CATALOGUE = ("u.genre", "u.item", "u.user")


def held_out_positives(ratings: np.ndarray, seed: int, fraction: float = 0.2,
                       min_rating: int = PRODUCT_MIN_RATING) -> tuple[np.ndarray, np.ndarray]:
    """(positive, held_out): boolean masks over the rows of `ratings` ((n, 4): user, item, rating, time).

    positive marks ratings >= min_rating; held_out a random `fraction` of those rows, drawn by
    engagement.split_pairs(seed) over the positive rows in file order (so bench.topn's random split
    of the same positives holds out the same pairs).
    """
    positive = ratings[:, 2] >= min_rating
    rows = np.flatnonzero(positive)
    held_out = np.zeros(len(ratings), dtype=bool)
    held_out[rows[split_pairs(len(rows), seed, fraction)]] = True
    return positive, held_out


def write_ratings(path: Path, ratings: np.ndarray) -> None:
    """Rows of u.data ((n, 4) ints) as a tab-separated file in u.data's layout."""
    np.savetxt(path, ratings, fmt="%d", delimiter="\t")


def serving_scores(model: ServingModel, positives: list[np.ndarray], item_ids: list[str]) -> np.ndarray:
    """(n_users, len(item_ids)) scores of every item for each user, as the service ranks them.

    positives[u] : indices into item_ids of user u's positives; items the model does not cover are
    left out of the history (as app.serving.recommend does) and score below every covered item.
    """
    rows = model.rows(item_ids)
    out = np.empty((len(positives), len(item_ids)))
    for u, pos in enumerate(positives):
        history = rows[np.asarray(pos, dtype=np.int64)]
        out[u] = engagement_scores(model, history[history >= 0], rows)
    return out


def train_through_job(data: str, ratings: np.ndarray, server_url: str, seed: int, threads: int) -> dict:
    """Import `ratings` (rows of u.data) with the catalogue of the folder `data` into a scratch database
    on `server_url`, run the nightly job on the root unit, and load its engagement model.

    Returns {"model": ServingModel, "outcome": UnitOutcome, "counts": the job's data counts,
    "hyperparams": what it stored, "item_weights": the stored EASE weights' layout and bytes (None
    when the model has none), "import_seconds", "train_seconds"}.
    """
    with tempfile.TemporaryDirectory() as tmp, scratch_database(server_url, "adaptrec_bench") as url:
        folder = Path(tmp)
        for name in CATALOGUE:
            (folder / name).symlink_to(Path(data, name).resolve())
        write_ratings(folder / "train.data", ratings)
        with closing(connect(url, application_name="bench-topn")) as conn:
            imported, = run_import(conn, "movielens", [folder / "train.data"], progress=False)
        results = []
        started = time.perf_counter()
        run_training(url, TrainConfig(seed=seed, threads=threads), units=[movielens.ROOT_ID], progress=False,
                     on_result=results.append)
        train_seconds = time.perf_counter() - started
        result = next((r for r in results if r.outcome.objective == "engagement"), None)
        if result is None or result.outcome.model_id is None:
            raise RuntimeError(f"the nightly job stored no engagement model for {movielens.ROOT_ID}: "
                               f"{result.outcome if result else 'no engagement result'}")
        with closing(connect(url, application_name="bench-topn")) as conn:
            stored = modelstore.load_model(conn, DEFAULT, result.outcome.model_id)
            listed = {m["model_id"]: m for m in modelstore.list_models(conn, DEFAULT, include_retired=True)}
            conn.rollback()
    weights = stored.artifact.blend.item_weights
    return {"model": ServingModel.from_stored(stored), "outcome": result.outcome, "counts": result.counts,
            "hyperparams": listed[stored.model_id]["hyperparams"], "import_seconds": imported.seconds,
            "train_seconds": train_seconds,
            "item_weights": None if weights is None else {
                "layout": "sparse" if sp.issparse(weights) else "dense", "entries": int(weights.nnz)
                if sp.issparse(weights) else int(weights.size), "bytes": len(modelstore.pack_item_weights(weights))}}

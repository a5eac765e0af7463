"""EASE at catalogue scale: what fitting costs and what a stored model weighs, dense and as top-k
neighbours (issue 15). `python -m bench.ease_topk [--items 10000] [--users 20000] [--json OUT]`

Synthetic positives (no data set has 10,000 items at hand): --users users in --groups taste groups,
each with --per-user distinct positives, 70 % from their group's items, every draw weighted by a
Zipf popularity (exponent 0.8). The weights' size does not depend on the data, only on the item
count and k; the fit's time does only through X^T X (the inverse is dense whatever the data).
Measured: `fit_ease` (Gram matrix + dense inverse; and the process's peak memory after it),
`top_k_neighbours` for each k, the packed
weights (`app.model.store.pack_item_weights`) dense and per k, the whole model row as `save_model`
would write it (the WARP item vectors of the job's default 48 components, biases, prior, item ids;
no database), and one user's EASE scores dense vs sparse (median of --repeats). BLAS threads:
OPENBLAS_NUM_THREADS if set, else 1 (the other core left to whatever else runs), reported in the JSON.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import resource
import sys
import time
from datetime import UTC, datetime

import numpy as np

from app.model.store import pack, pack_item_weights
from app.online.engagement import ease_scores, positives_matrix
from harness.report import emit
from jobs.training.ease import EASE_NEIGHBOURS, fit_ease, top_k_neighbours

NEIGHBOURS = (50, 100, 200, 500)
MB = 1_000_000


def synthetic_positives(users: int, items: int, per_user: int, groups: int, seed: int):
    """(users, items) binary CSR as described in the module docstring."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity = popularity[rng.permutation(items)]
    item_group = rng.integers(0, groups, items)
    rows, cols = [], []
    for u in range(users):
        own = item_group == u % groups
        p = popularity * np.where(own, 0.7 / popularity[own].sum(), 0.3 / popularity[~own].sum())
        picked = rng.choice(items, size=per_user, replace=False, p=p / p.sum())
        rows.append(np.full(per_user, u))
        cols.append(picked)
    return positives_matrix(np.concatenate(rows), np.concatenate(cols), users, items)


def row_bytes(item_weights: bytes, items: int, dim: int = 48) -> int:
    """The bytea and text payload of one model_arrays row with these weights (uncompressed)."""
    ids = sum(len(f"item-{i:05d}") + 1 for i in range(items))
    arrays = (pack(np.zeros((items, dim))), pack(np.zeros(items)), pack(np.zeros(dim + 1)),
              pack(np.zeros((dim + 1, dim + 1))))
    return len(item_weights) + ids + sum(len(a) for a in arrays)


def run(items: int, users: int, per_user: int, groups: int, l2: float, seed: int, repeats: int) -> dict:
    started = time.perf_counter()
    X = synthetic_positives(users, items, per_user, groups, seed)
    out = {"items": items, "users": users, "positives": int(X.nnz), "groups": groups, "l2": l2,
           "blas_threads": os.environ["OPENBLAS_NUM_THREADS"], "data_seconds": round(time.perf_counter() - started, 1)}
    t = time.perf_counter()
    B = fit_ease(X, l2)
    out["fit_ease_seconds"] = round(time.perf_counter() - t, 1)
    # the process's peak resident memory so far: the fit's dense Gram matrix, inverse and B dominate it
    out["peak_rss_mb_after_fit"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000)
    dense = pack_item_weights(B)
    out["dense"] = {"weights_bytes": len(dense), "row_bytes": row_bytes(dense, items)}
    rng = np.random.default_rng(seed + 1)
    user_rows = [X[int(u)] for u in rng.integers(0, users, repeats)]

    def one_user_ms(weights) -> float:
        times = []
        for x in user_rows:
            t = time.perf_counter()
            ease_scores(x, weights)
            times.append(time.perf_counter() - t)
        return round(1000 * float(np.median(times)), 3)

    out["dense"]["one_user_ms"] = one_user_ms(B)
    del dense
    out["top_k"] = {}
    for k in NEIGHBOURS:
        t = time.perf_counter()
        S = top_k_neighbours(B, k)
        sparsify = time.perf_counter() - t
        t = time.perf_counter()
        packed = pack_item_weights(S)
        out["top_k"][str(k)] = {"top_k_seconds": round(sparsify, 2), "pack_seconds": round(time.perf_counter() - t, 3),
                                "weights_bytes": len(packed), "row_bytes": row_bytes(packed, items),
                                "row_mb": round(row_bytes(packed, items) / MB, 1), "one_user_ms": one_user_ms(S)}
    out["default_k"] = EASE_NEIGHBOURS
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ease_topk", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=40)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--l2", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args.items, args.users, args.per_user, args.groups, args.l2, args.seed, args.repeats)
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

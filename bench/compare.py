"""How a replay report compares methods: metrics, slices, learner-bootstrap intervals, the dev /
test table. Pure numpy and pandas."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.attempts import slice_masks
from jobs.training.metrics import auc, logloss, probability_metrics, reliability

ROLES = ("dev", "test")
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0


def metrics(y, p) -> dict:
    if len(y) == 0:                   # an empty slice (e.g. no history of 200 in a small regime)
        return {"n": 0}
    m = probability_metrics(np.asarray(y), np.asarray(p, dtype=np.float64))
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in m.items()}


def slice_table(frame: pd.DataFrame, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, dict]]:
    """{slice: {method: metrics}} over the replayed rows of an annotated frame (`predictions` in
    the same row order; a method's NaN predictions, e.g. no skill to ask for, are left out)."""
    y = frame.correct.to_numpy()
    out = {}
    for name, mask in slice_masks(frame).items():
        row = {}
        for method, p in predictions.items():
            keep = mask & ~np.isnan(p)
            row[method] = metrics(y[keep], p[keep])
        out[name] = row
    return out


def bootstrap_difference(frame: pd.DataFrame, p_a: np.ndarray, p_b: np.ndarray,
                         resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """AUC and log-loss of method a minus method b with a 95 % interval from resampling learners
    (attempts of one learner are not independent, so learners are the unit drawn)."""
    y = frame.correct.to_numpy()
    codes, uniques = pd.factorize(frame.user_id)
    rows_of = [np.flatnonzero(codes == k) for k in range(len(uniques))]
    rng = np.random.default_rng(seed)
    diffs = {"auc": [], "logloss": []}
    for _ in range(resamples):
        take = np.concatenate([rows_of[k] for k in rng.integers(0, len(rows_of), len(rows_of))])
        ys = y[take]
        diffs["auc"].append(auc(ys, p_a[take]) - auc(ys, p_b[take]))
        diffs["logloss"].append(logloss(ys, p_a[take]) - logloss(ys, p_b[take]))
    out = {"learners": len(uniques), "resamples": resamples}
    for key, values in diffs.items():
        values = np.asarray(values)
        values = values[np.isfinite(values)]
        point = (auc(y, p_a) - auc(y, p_b)) if key == "auc" else (logloss(y, p_a) - logloss(y, p_b))
        low, high = (np.percentile(values, [2.5, 97.5]) if len(values) else (math.nan, math.nan))
        out[key] = {"difference": round(float(point), 4), "ci95": [round(float(low), 4), round(float(high), 4)]}
    return out


def reliability_rows(y, p) -> list[dict]:
    return [{"bin": f"{b['lower']:.1f}-{b['upper']:.1f}", "n": b["n"],
             "predicted": None if b["predicted"] is None else round(b["predicted"], 4),
             "observed": None if b["observed"] is None else round(b["observed"], 4)}
            for b in reliability(np.asarray(y), np.asarray(p), 10)]


def dev_test_table(blocks: dict[str, dict]) -> list[dict]:
    """One row per method: each metric on dev beside test (`blocks`: {role: report block}, each
    with `service` metrics and `baselines` {method: metrics}; `service_skill_requests` if any)."""
    methods = ["service"]
    if all("service_skill_requests" in blocks[r] for r in ROLES):
        methods.append("service_skill_requests")
    methods += [m for m in blocks[ROLES[0]]["baselines"] if all(m in blocks[r]["baselines"] for r in ROLES)]
    rows = []
    for method in methods:
        row: dict = {"method": method}
        for key in ("auc", "logloss", "accuracy", "ece", "n"):
            for role in ROLES:
                block = blocks[role]
                m = block[method] if method.startswith("service") else block["baselines"][method]
                row[f"{key}_{role}"] = m.get(key)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The dev / test table as text, for the log."""
    head = f"{'method':<24}" + "".join(f"{k + ' ' + r:>14}" for k in ("auc", "logloss", "ece") for r in ROLES)
    lines = [head]
    for row in rows:
        cells = "".join(f"{_cell(row[f'{k}_{r}']):>14}" for k in ("auc", "logloss", "ece") for r in ROLES)
        lines.append(f"{row['method']:<24}{cells}")
    return "\n".join(lines)


def _cell(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"

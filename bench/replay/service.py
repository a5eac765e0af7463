"""bench.replay's service side: every replayed attempt predicted through the functions behind the API
before it is ingested, and the full retrain's predictions beside live fits from first halves."""
from __future__ import annotations

import sys
import time
from datetime import datetime

import numpy as np
import pandas as pd

from app.access.tenants import DEFAULT
from bench.replay.setup import ROOT, attempt_time


def replay_service(conn, cache, models, test: pd.DataFrame, skill_of: dict[str, str] | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """p of every replayed attempt, predicted before it is ingested, through predict + ingest: a
    root request, and (given `skill_of`: item -> its skill's unit) a skill request (NaN for an
    item without a skill)."""
    from app.catalogue.ingest import record_interactions
    from app.catalogue.records import Interaction
    from app.serving.recommend import RequestContext, predict

    users, items = test.user_id.tolist(), test.problem_id.tolist()
    seqs, ys = test.seq.tolist(), test.correct.tolist()
    p = np.empty(len(test))
    predict_s = np.empty(len(test))
    ingest_s = np.empty(len(test))
    fallbacks: dict[str, int] = {}
    history_rows = np.empty(len(test), dtype=np.int64)
    p_skill = None if skill_of is None else np.full(len(test), np.nan)
    served = {"own": 0, "ancestor": 0, "none": 0}    # which model answered each skill request
    t_report = time.perf_counter()
    for k in range(len(test)):
        t0 = time.perf_counter()
        with conn:
            ctx = RequestContext(conn, DEFAULT, cache, models, now=attempt_time(seqs[k]))
            answer = predict(ctx, users[k], [ROOT], [items[k]]).as_json()
        t1 = time.perf_counter()
        p[k] = answer["items"][0]["p"]
        history_rows[k] = answer["history_rows"]
        if answer["fallback"]:
            fallbacks[answer["fallback"]] = fallbacks.get(answer["fallback"], 0) + 1
        if p_skill is not None:
            unit = skill_of.get(items[k])
            if unit is not None:
                with conn:
                    answer = predict(RequestContext(conn, DEFAULT, cache, models, now=attempt_time(seqs[k])),
                                     users[k], [unit], [items[k]]).as_json()
                p_skill[k] = answer["items"][0]["p"]
                model = answer["model"]
                served["none" if model is None else "own" if model["unit_id"] == unit else "ancestor"] += 1
        event = Interaction(event_id=f"assist:{users[k]}:{seqs[k]}", user_id=users[k], item_id=items[k],
                            kind="attempt", outcome=ys[k], occurred_at=attempt_time(seqs[k]))
        record_interactions(conn, DEFAULT, cache, [event])
        t2 = time.perf_counter()
        predict_s[k], ingest_s[k] = t1 - t0, t2 - t1
        if progress and t2 - t_report > 15:
            t_report = t2
            print(f"replay: {k + 1}/{len(test)} attempts, {np.mean(predict_s[:k + 1]) * 1e3:.2f} ms predict, "
                  f"{np.mean(ingest_s[:k + 1]) * 1e3:.2f} ms ingest", file=sys.stderr)
    timing = {"attempts": len(test), "seconds": round(float(predict_s.sum() + ingest_s.sum()), 1),
              "predict_ms": _ms(predict_s), "ingest_ms": _ms(ingest_s),
              "history_rows_mean": round(float(history_rows.mean()), 1) if len(test) else None,
              "fallbacks": fallbacks}
    if p_skill is not None:    # predict_ms then times both requests
        timing["skill_requests"] = {"served_by_the_skills_own_model": served["own"],
                                    "served_by_an_ancestors_model": served["ancestor"], "no_model": served["none"],
                                    "item_without_a_skill": int(np.isnan(p_skill).sum())}
    return p, p_skill, timing


def _ms(seconds: np.ndarray) -> dict:
    if not len(seconds):
        return {}
    return {"mean": round(float(seconds.mean() * 1e3), 2), "p50": round(float(np.percentile(seconds, 50) * 1e3), 2),
            "p99": round(float(np.percentile(seconds, 99) * 1e3), 2)}


def live_fit_from(model, history: list[tuple[str, int]], items: list[str], at: datetime) -> np.ndarray:
    """p of `items` from the product's scoring path (score_candidates) given a fixed history of
    (item, outcome) oldest first: the live fit without the database and Redis around it."""
    from app.catalogue import history as hist
    from app.serving.context import Learner, RequestContext
    from app.serving.pipeline import score_candidates

    events = [hist.Event(i, "attempt", int(o), None, at) for i, o in reversed(history)]  # newest first
    ctx = RequestContext(None, DEFAULT, None, None)
    return score_candidates(ctx, model, items, Learner("replayed", events, "given"), practice=True)[0]


def full_retrain_predictions(trained, model, users: list[str], items: list[str]) -> np.ndarray:
    """Calibrated p from the retrained users' own LightFM vectors (`trained`: the root's practice
    UnitResult, its final refit on all rows) and the stored items."""
    from app.online.scoring import calibrated

    user_biases, user_vectors = trained.user_biases, trained.user_vectors
    row_of = {u: k for k, u in enumerate(trained.user_ids)}
    u_rows = np.array([row_of[u] for u in users])
    i_rows = model.rows(items)
    if (i_rows < 0).any():
        raise RuntimeError("an item of the second halves is not in the retrained model")
    raw = np.einsum("ij,ij->i", user_vectors[u_rows].astype(np.float64), model.item_vectors[i_rows]) \
        + user_biases[u_rows] + model.item_biases[i_rows]
    return calibrated(model.calibration, raw)


def first_half_live_fits(model, test: pd.DataFrame, second: np.ndarray) -> np.ndarray:
    """For each second-half attempt: the live fit of `model` from the student's first half only."""
    out = np.empty(int(second.sum()))
    k = 0
    for _, rows in test.groupby("user_id", sort=False):
        n = len(rows)
        if n < 2:
            continue
        half = n // 2
        history = list(zip(rows.problem_id.iloc[:half], rows.correct.iloc[:half]))
        wanted = rows.problem_id.iloc[half:].tolist()
        out[k:k + len(wanted)] = live_fit_from(model, history, wanted, attempt_time(rows.seq.iloc[half - 1]))
        k += len(wanted)
    return out

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


def knowledge_requests(frame: pd.DataFrame, skills_of: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """The skill units whose knowledge is asked before each replayed attempt of an annotated frame:
    every skill unit (`skill:<name>`) of the item when the attempt is the learner's first at it,
    none otherwise (a repeat, or an item without a skill)."""
    first = frame.earlier_at_item.to_numpy() == 0
    return [tuple(dict.fromkeys(f"skill:{s}" for s in skills_of.get(item, ()))) if f else ()
            for item, f in zip(frame.problem_id.tolist(), first)]


def knowledge_p(answer: dict, units: tuple[str, ...]) -> list[tuple[float, int]]:
    """(p, attempts) of each of `units` in a knowledge answer (GET /v1/users/{id}/knowledge's body);
    p NaN for a unit the answer has no p for (no practice model at or above it)."""
    by_unit = {u["unit_id"]: u for u in answer["units"]}
    return [(np.nan if by_unit[u]["p"] is None else float(by_unit[u]["p"]), int(by_unit[u]["attempts"]))
            for u in units]


def replay_service(conn, cache, models, test: pd.DataFrame, skill_of: dict[str, str] | None = None,
                   progress: bool = False, knowledge_units: list[tuple[str, ...]] | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, dict, pd.DataFrame | None]:
    """p of every replayed attempt, predicted before it is ingested, through predict + ingest: a
    root request, and (given `skill_of`: item -> its skill's unit) a skill request (NaN for an
    item without a skill). Given `knowledge_units` (per row: the units to ask, bench.replay's
    knowledge_requests), the knowledge of those units is asked before the attempt too, as
    GET /v1/users/{id}/knowledge?units=... answers it then (app.serving.knowledge.knowledge, a
    request context of its own at the attempt's time); returned as one row per (attempt, unit):
    `row` (the attempt's index in `test`), `unit`, `rank` (the unit's place among the item's
    skills), `p` and `attempts` (the learner's attempts at the unit's items so far).
    Each attempt moves the items' learned difficulty after its ingest, as the events route does
    (app.serving.item_learning, as far as `models.item_learning` lets it)."""
    from app.catalogue.ingest import record_interactions
    from app.catalogue.records import Interaction
    from app.serving import item_learning
    from app.serving.knowledge import knowledge
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
    known: dict[str, list] = {"row": [], "unit": [], "rank": [], "p": [], "attempts": []}
    knowledge_s: list[float] = []
    steps = 0                    # item-difficulty steps taken (one per attempt and model above its item)
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
        asked_s = 0.0                # the knowledge request's time, kept out of ingest_ms
        if knowledge_units is not None and knowledge_units[k]:
            units = knowledge_units[k]
            tk = time.perf_counter()
            with conn:
                answer = knowledge(RequestContext(conn, DEFAULT, cache, models, now=attempt_time(seqs[k])),
                                   users[k], list(units))
            asked_s = time.perf_counter() - tk
            knowledge_s.append(asked_s)
            known["row"] += [k] * len(units)
            known["unit"] += list(units)
            known["rank"] += list(range(len(units)))
            for unit_p, unit_attempts in knowledge_p(answer, units):
                known["p"].append(unit_p)
                known["attempts"].append(unit_attempts)
        event = Interaction(event_id=f"assist:{users[k]}:{seqs[k]}", user_id=users[k], item_id=items[k],
                            kind="attempt", outcome=ys[k], occurred_at=attempt_time(seqs[k]))
        results = record_interactions(conn, DEFAULT, cache, [event])
        # as the events route: the item's difficulty learned from the attempt
        steps += item_learning.learn(RequestContext(conn, DEFAULT, cache, models, now=attempt_time(seqs[k])),
                                     [event], results)
        t2 = time.perf_counter()
        predict_s[k], ingest_s[k] = t1 - t0, t2 - t1 - asked_s
        if progress and t2 - t_report > 15:
            t_report = t2
            print(f"replay: {k + 1}/{len(test)} attempts, {np.mean(predict_s[:k + 1]) * 1e3:.2f} ms predict, "
                  f"{np.mean(ingest_s[:k + 1]) * 1e3:.2f} ms ingest", file=sys.stderr)
    timing = {"attempts": len(test), "seconds": round(float(predict_s.sum() + ingest_s.sum()), 1),
              "predict_ms": _ms(predict_s), "ingest_ms": _ms(ingest_s),
              "history_rows_mean": round(float(history_rows.mean()), 1) if len(test) else None,
              "fallbacks": fallbacks, "item_learning_steps": steps}
    if p_skill is not None:    # predict_ms then times both requests
        timing["skill_requests"] = {"served_by_the_skills_own_model": served["own"],
                                    "served_by_an_ancestors_model": served["ancestor"], "no_model": served["none"],
                                    "item_without_a_skill": int(np.isnan(p_skill).sum())}
    if knowledge_units is None:
        return p, p_skill, timing, None
    timing["knowledge_requests"] = {"requests": len(knowledge_s), "units_asked": len(known["unit"]),
                                    "ms": _ms(np.array(knowledge_s))}
    return p, p_skill, timing, pd.DataFrame(known)


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

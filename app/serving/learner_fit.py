"""What a practice model's live fit takes from a learner, the same for a recommendation
(app.serving.recommend) and their knowledge (app.serving.knowledge): their attempts on the model's items, their
metadata prior (vectors for items newer than the model: app.serving.model_cache.ModelCache.cover)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from app.catalogue import history as hist
from app.infra import queries as q
from app.online.fit import HISTORY_MAX
from app.online.scoring import ServingModel

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.serving.context import Learner, RequestContext


class PracticeHistory(NamedTuple):
    rows: np.ndarray            # (n,) the attempts' rows in the model, oldest first
    outcomes: np.ndarray        # (n,) 0/1
    times: np.ndarray | None    # (n,) epoch seconds, when the calibration has learning terms, else None
    now: float | None           # the prediction's time (epoch seconds), likewise


def practice_history(model: ServingModel, events: list[hist.Event], now: datetime | None = None) -> PracticeHistory:
    """The learner's most recent HISTORY_MAX attempts on the model's items, oldest first, from their
    events (newest first); times only when the model's calibration has learning terms (practice and
    time away), with `now` (default: the clock)."""
    index = model.index   # one pass over the events (up to history.KEEP of them, every request)
    attempts = [(row, e.outcome, e.occurred_at) for e in events
                if e.kind == "attempt" and e.outcome is not None and (row := index.get(e.item_id)) is not None]
    attempts = attempts[:HISTORY_MAX][::-1]  # the most recent ones, oldest first
    rows, outcomes, at = zip(*attempts) if attempts else ((), (), ())
    rows, outcomes = np.array(rows, dtype=np.int64), np.array(outcomes, dtype=np.float64)
    if model.calibration.learning is None:
        return PracticeHistory(rows, outcomes, None, None)
    times = np.fromiter(map(datetime.timestamp, at), dtype=np.float64, count=len(at))
    return PracticeHistory(rows, outcomes, times, (now or datetime.now(UTC)).timestamp())


def learner_prior(conn: Connection, tenant: str, model: ServingModel, user_id: str | None) -> np.ndarray | None:
    """The learner's prior mean from their metadata, when the model has metadata shifts."""
    if model.user_prior_shifts is None or user_id is None:
        return None
    row = q.fetch_one(conn, "user_attrs", tenant=tenant, user_id=user_id)
    return model.prior_mean_for(row["attrs"] if row else None)


@dataclass
class PracticeInputs:
    """What the live fit of one learner under one practice model takes, and the fit once made."""
    history: PracticeHistory
    prior: np.ndarray | None
    theta: np.ndarray | None = None    # the live fit (app.online.scoring.practice_probabilities), once made


def practice_inputs(ctx: RequestContext, model: ServingModel, learner: Learner) -> PracticeInputs:
    """The learner's practice history and prior under `model` as of `ctx.now`, and its live fit once
    a step has made it, kept on the request's learner: a mastery or review recommendation scores the
    candidates and then what the learner knows of each skill, with the same model and history (the
    fit and the pass over the events were made twice, docs/benchmarks-log.md, issue 26's cost)."""
    key = (model.model_id, len(model.item_ids), ctx.now)
    found = learner._practice.get(key)
    if found is None:
        found = learner._practice[key] = PracticeInputs(practice_history(model, learner.events, ctx.now),
                                                        learner_prior(ctx.conn, ctx.tenant, model, learner.user_id))
    return found

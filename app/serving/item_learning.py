"""Item difficulty learned between trainings, shared by every worker through Redis (the numbers:
app.online.item_offsets).

Learning: after an ingest commits (`learn`, called by the events routes and by bench.replay after
record_interactions), each new attempt is predicted as POST /v1/predictions would have predicted
it just before it (the learner's history before the attempt, the offsets so far) by every active
practice model at or above the item's units, and that model's belief about the item takes one
step in Redis: a hash per (tenant, model identity) of item -> "delta precision", changed by a Lua
script, so two workers' steps on one item never interleave; the hash's version counter says
it changed. A model trained before item_attempts were stored learns nothing.

Serving: each worker keeps each model's offsets as an array beside its rows (ServingModel.
item_offsets), read again from Redis when the version has moved, checked at most every SYNC_S;
the worker that learned a step has it at once. A model the nightly job replaces takes its offsets
with it: the new one starts from its own training, which has seen those attempts. The hashes
expire KEEP_S after their last step.

Which items learn (ADAPTREC_ITEM_LEARNING, held by the worker's ModelCache): `all` (default)
lets the prior include the model's error on a well-known item (calibration.item_sd), so every
item moves as far as that allows; `few` leaves it out, so only what training left unknown moves
an item (items with few training attempts, items newer than the model); `off` learns and serves
none.

Redis down: nothing is learned and the offsets last read keep serving; the attempts themselves
are in Postgres, and the next training sees them.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import redis

from app.online import item_offsets
from app.online.scoring import practice_probabilities
from app.serving.learner_fit import learner_prior, practice_history

if TYPE_CHECKING:
    from datetime import datetime

    from app.catalogue import history as hist
    from app.catalogue.records import Interaction
    from app.infra.cache import Cache
    from app.online.scoring import ServingModel
    from app.serving.context import RequestContext

log = logging.getLogger(__name__)

SYNC_S = 1.0                 # a worker sees another's steps within this (plus one read)
# A request of more events is a backfill, not practice as it happens: a live fit per attempt would
# make its ingest many times slower (and hold a worker), and the nightly job learns from it anyway.
LEARN_MAX_EVENTS = 50
KEEP_S = 30 * 86_400         # a model's hash outlives its last step by this

# ARGV: the hash's TTL, then per attempt: item, outcome, p, prior precision. Returns the version
# before, then per attempt its "delta precision" after the step (strings: Lua numbers would be
# cut to integers). The step is app.online.item_offsets.update.
_STEP = """
local out = {}
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
for k = 0, (#ARGV - 1) / 4 - 1 do
  local item = ARGV[2 + 4 * k]
  local y, p = tonumber(ARGV[3 + 4 * k]), tonumber(ARGV[4 + 4 * k])
  local delta, precision = 0, tonumber(ARGV[5 + 4 * k])
  local held = redis.call('HGET', KEYS[1], item)
  if held then
    local space = string.find(held, ' ')
    delta, precision = tonumber(string.sub(held, 1, space - 1)), tonumber(string.sub(held, space + 1))
  end
  precision = precision + p * (1 - p)
  delta = delta + (y - p) / precision
  local value = string.format('%.17g %.17g', delta, precision)
  redis.call('HSET', KEYS[1], item, value)
  out[k + 2] = value
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
out[1] = tostring(before)
return out
"""


def _keys(cache: Cache, tenant: str, identity: str) -> tuple[str, str]:
    """A model's hash and version counter, named by its identity (app.model.store.model_identity:
    id and training time), so a database restored or reset never meets another model's offsets
    under a reused id."""
    return cache.key("item-offsets", tenant, identity), cache.key("item-offsets-version", tenant, identity)


def learned(cache: Cache, tenant: str, identity: str, top: int = 3) -> tuple[int, list[tuple[str, float, float]]]:
    """What a model has learned since training, for operators (`adaptrec models -v`): how many
    items moved, and the `top` that moved most as (item, offset in logits, its sd)."""
    held = cache.client.hgetall(_keys(cache, tenant, identity)[0])
    rows = [(item.decode(), *(float(x) for x in value.split(b" ", 1))) for item, value in held.items()]
    rows.sort(key=lambda r: -abs(r[1]))
    return len(rows), [(item, delta, precision ** -0.5) for item, delta, precision in rows[:top]]


def sync(cache: Cache | None, tenant: str, model: ServingModel, now: float | None = None) -> None:
    """Bring the model's offsets up to Redis's when SYNC_S has passed since the last check and the
    version has moved."""
    now = time.monotonic() if now is None else now
    if cache is None or model.item_attempts is None or now - model.offsets_checked < SYNC_S:
        return
    model.offsets_checked = now
    table, version_key = _keys(cache, tenant, model.identity)
    try:
        version = int(cache.client.get(version_key) or 0)
        if version == model.offsets_version:
            return
        held = cache.client.hgetall(table)
    except (redis.RedisError, OSError) as exc:
        log.warning("item offsets not read (the last read keep serving): %s", exc)
        return
    offsets, new = np.zeros(len(model.item_ids)), {}
    for item, value in held.items():
        item, delta = item.decode(), float(value.split(b" ", 1)[0])
        row = model.index.get(item)
        if row is None:
            new[item] = delta
        else:
            offsets[row] = delta
    model.item_offsets, model.new_item_offsets, model.offsets_version = offsets, new, version


def candidate_offsets(ctx: RequestContext, model: ServingModel, items: list[str] | None, rows: np.ndarray
                      ) -> np.ndarray | None:
    """Each candidate's learned offset (`rows`: their rows in the model, -1 not covered), None
    when the model has learned none. `items`: the candidates' ids, for the offsets of items the
    model does not cover; None: those are the average item (knowledge's layouts hold them so)."""
    if ctx.models is None:   # a context without the worker's models (a bench's bare live fit): the model as trained
        return None
    sync(ctx.cache, ctx.tenant, model)
    offsets = model.item_offsets
    if offsets is None or ctx.models.item_learning == "off":
        return None
    out = np.where(rows >= 0, offsets[np.maximum(rows, 0)], 0.0)
    if model.new_item_offsets and items is not None:
        for k in np.flatnonzero(rows < 0):
            out[k] = model.new_item_offsets.get(items[k], 0.0)
    return out


def learn(ctx: RequestContext, events: list[Interaction], results: list[tuple[str, str]]) -> int:
    """One step per new first attempt of a learner at an item (0/1 outcome) among `events`
    (record_interactions' `results` say which were created) and active practice model at or
    above its item, in a transaction of its own; none from a request of more than
    LEARN_MAX_EVENTS events (a backfill). Returns the steps taken. The attempts are
    stored already: a failure here is logged and learns nothing, it never fails their ingest."""
    try:
        with ctx.conn:
            return _learn(ctx, events, results)
    except Exception:   # after the commit, nothing may turn a stored ingest into an error
        log.exception("item offsets: nothing learned from %d events", len(events))
        return 0


def _learn(ctx: RequestContext, events: list[Interaction], results: list[tuple[str, str]]) -> int:
    attempts = [e for e, (_, status) in zip(events, results)
                if status == "created" and e.kind == "attempt" and e.outcome in (0, 1)]
    if not attempts or len(events) > LEARN_MAX_EVENTS or ctx.cache is None or ctx.models.item_learning == "off":
        return 0
    models_of = ctx.models.practice_models_of(ctx.conn, ctx.tenant, [e.item_id for e in attempts],
                                              ctx.catalogue_version())
    steps, priors = 0, {}   # the learners' metadata priors, read once per (learner, model)
    for e in attempts:
        at, before = e.occurred_at or ctx.now, None
        for model_id in models_of.get(e.item_id, ()):
            model = ctx.models.get(ctx.conn, ctx.tenant, model_id)
            if model.item_attempts is None:
                continue
            if before is None:   # the learner's history before the attempt, newest first
                before = [x for x in ctx.learner(e.user_id).events if x.occurred_at < at]
                if any(x.item_id == e.item_id and x.kind == "attempt" for x in before):
                    break        # a repeat: the retry terms' business; an item's difficulty is its first attempts'
            if (e.user_id, model_id) not in priors:
                priors[(e.user_id, model_id)] = learner_prior(ctx.conn, ctx.tenant, model, e.user_id)
            p = predicted(ctx, model, priors[(e.user_id, model_id)], before, e.item_id, at)
            # one attempt at a time, so the next one's p sees this step (as a replay predicting each would)
            step = (e.item_id, e.outcome, p, prior(model, e.item_id, ctx.models.item_learning))
            steps += _step(ctx.cache, ctx.tenant, model, [step])
    return steps


def predicted(ctx: RequestContext, model: ServingModel, prior: np.ndarray | None, events: list[hist.Event],
              item_id: str, at: datetime) -> float:
    """p of `item_id` for the learner with metadata prior `prior` (learner_prior) and history
    `events` (newest first) at `at`, as pipeline.score_candidates gives it (predict's path: no
    hybrid cover, the offsets included)."""
    rows = model.rows([item_id])
    h = practice_history(model, events, at)
    p, _, _ = practice_probabilities(model, h.rows, h.outcomes, rows, model.calibration.half_life, None,
                                     prior, h.times, h.now,
                                     item_offsets=candidate_offsets(ctx, model, [item_id], rows))
    return float(p[0])


def prior(model: ServingModel, item_id: str, mode: str = "all") -> float:
    """The item's prior precision in this model (item_offsets.prior_precision); `mode` "few"
    leaves out the model's own error on a well-known item (calibration.item_sd): only what
    training left unknown of an item moves it."""
    if model.offsets_spread is None:
        z = model.calibration.a * (model.item_vectors @ model.prior_mean[:-1] + model.prior_mean[-1]
                                   + model.item_biases) + model.calibration.b
        model.offsets_spread = item_offsets.difficulty_spread(z)
    row = model.index.get(item_id)
    n = model.item_attempts[row] if row is not None else 0
    item_sd = model.calibration.item_sd if mode == "all" else None
    return float(item_offsets.prior_precision(np.array([n]), model.offsets_spread, item_sd)[0])


def _step(cache: Cache, tenant: str, model: ServingModel, batch: list[tuple[str, int, float, float]]) -> bool:
    """The batch's steps in Redis, and in this worker's copy when it was current; False when
    Redis did not take them."""
    table, version_key = _keys(cache, tenant, model.identity)
    args = [KEEP_S] + [x for item, y, p, p0 in batch for x in (item, y, repr(p), repr(p0))]
    try:
        out = cache.client.eval(_STEP, 2, table, version_key, *args)
    except (redis.RedisError, OSError) as exc:
        log.warning("item offsets not learned from %d attempts (Redis): %s", len(batch), exc)
        return False
    before = int(out[0])
    if before != model.offsets_version:    # another worker stepped since this one read: read it all again
        model.offsets_checked = float("-inf")
        return True
    offsets = model.item_offsets if model.item_offsets is not None else np.zeros(len(model.item_ids))
    new = dict(model.new_item_offsets)
    for (item, _, _, _), value in zip(batch, out[1:]):
        delta = float(value.split(b" ", 1)[0])
        row = model.index.get(item)
        if row is None:
            new[item] = delta
        else:
            offsets[row] = delta
    model.item_offsets, model.new_item_offsets, model.offsets_version = offsets, new, before + 1
    return True

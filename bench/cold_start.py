"""Cold-start benchmark: new learners with metadata, and questions newer than the model, through
the service, in a hybrid mode, on demo data whose metadata carries a known signal.

    python -m bench.cold_start [--learners 3000] [--attempts 240000] [--grade-effect 0.4]
                               [--new-items 0.1] [--mode partial] [--json OUT] [--quiet]

Data: the demo generator (`jobs.demo`) with `grade_effect` logits of ability per school grade
(`adaptrec demo --grade-effect`; the default demo has none, so there the job declines a metadata
prior on dev, as it should). Learners take roles from the replay benchmark's split (bench.replay
SPLIT_SEED): train learners are imported; dev and test learners are not, they arrive after the
nightly job and are replayed. A seeded `--new-items` share of the questions (NEW_ITEM_SEED) is
left out of the catalogue and of every imported attempt, then added through the catalogue API
after training: questions written after the last training.

The real job trains the root unit (`run_training`, mode `--mode`, its own split seed
JOB_SPLIT_SEED, as bench.replay). Every dev and test attempt is then predicted, before it is
ingested, by `predict(...)` of the root through two model caches on the same database:
- `service`: the model as stored: a learner's prior from their metadata (when the job chose it on
  its dev learners) and new questions' vectors from their metadata tokens (hybrid embedding
  models);
- `population_prior`: the same model with both switched off: every learner starts at the
  population prior and a new question is the average item (the service before this change).
`truth` is the generator's own probability. Slices: each learner's first 10 attempts (the
cold-start target), those of them at questions the model was trained with (the metadata prior
alone), attempts at new questions, everything. Figures for dev and test side by side;
nothing here is tuned on either.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from app.access.tenants import DEFAULT
from bench.compare import bootstrap_difference, metrics
from bench.replay.setup import JOB_SPLIT_SEED, SPLIT_SEED
from harness.report import write_json
from jobs import demo
from jobs.training import split
from jobs.training.practice_choices import attempt_positions

NEW_ITEM_SEED = 13
FIRST_ATTEMPTS = 10         # the cold-start slice: each learner's first attempts
METHODS = ("service", "population_prior", "truth")


def new_questions(question_ids: np.ndarray, share: float, seed: int = NEW_ITEM_SEED) -> set[str]:
    """A seeded `share` of the questions, by a hash of the id (stable when the catalogue grows)."""
    def key(q: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{seed}:{q}".encode()).digest()[:8], "big") / 2 ** 64
    return {q for q in question_ids.tolist() if key(q) < share}


def without(data: demo.DemoData, keep_attempts: np.ndarray, dropped_items: set[str]) -> demo.DemoData:
    """The demo data with only the attempts of mask `keep_attempts` and without `dropped_items`
    (generated with no engagement events)."""
    cat, ev = data.catalogue, data.attempts
    catalogue = dataclasses.replace(cat, items=[r for r in cat.items if r[0] not in dropped_items],
                                    unit_items=[r for r in cat.unit_items if r[1] not in dropped_items])
    attempts = demo.Events(*(getattr(ev, f.name)[keep_attempts] for f in dataclasses.fields(demo.Events)))
    return dataclasses.replace(data, catalogue=catalogue, attempts=attempts)


def replay(conn, cache, caches: dict, users: list[str], items: list[str], outcomes: list[int], times: list
           ) -> dict[str, np.ndarray]:
    """p of each attempt from each model cache, predicted before the attempt is ingested (the API's
    ingest, then the history cache)."""
    from app.catalogue.ingest import record_interactions
    from app.catalogue.records import Interaction
    from app.serving.recommend import RequestContext, predict

    out = {name: np.empty(len(users)) for name in caches}
    for k, (user, item, y, at) in enumerate(zip(users, items, outcomes, times)):
        for name, models in caches.items():
            with conn:
                ctx = RequestContext(conn, DEFAULT, cache, models)
                out[name][k] = predict(ctx, user, [demo.ROOT_UNIT], [item]).as_json()["items"][0]["p"]
        record_interactions(conn, DEFAULT, cache, [Interaction(event_id=f"cold:{user}:{k}", user_id=user, item_id=item,
                                                      kind="attempt", outcome=int(y), occurred_at=at)])
    return out


@dataclasses.dataclass
class Staged:
    """The demo data and what of it the job sees: each learner's role, the new questions, the
    attempts replayed (dev and test learners'), the data imported (`staged`), the job's config."""
    data: demo.DemoData
    role: np.ndarray
    fresh: set[str]
    is_new_item: np.ndarray
    replayed: np.ndarray
    staged: demo.DemoData
    config: object


def prepare(learners: int, attempts: int, grade_effect: float, new_share: float, mode: str, seed: int) -> Staged:
    from jobs.train import TrainConfig

    data = demo.build(demo.DemoConfig(seed=seed, learners=learners, attempts=attempts, engagements=0,
                                      grade_effect=grade_effect))
    ev, ids = data.attempts, data.learners.ids
    role = split.roles(ids.tolist(), SPLIT_SEED)
    fresh = set(new_questions(data.catalogue.question_ids, new_share))
    is_new_item = np.isin(ev.item_ids, list(fresh))
    replayed = role[ev.user] != split.TRAIN
    staged = without(data, ~replayed & ~is_new_item, fresh)
    config = dataclasses.replace(TrainConfig.from_env(), mode=mode, split_seed=JOB_SPLIT_SEED)
    return Staged(data, role, fresh, is_new_item, replayed, staged, config)


def train(conn, url: str, s: Staged) -> dict:
    """The staged data loaded, the root trained by the real job, then the new questions written
    through the catalogue API; returns the training's figures."""
    from app.catalogue import catalog
    from app.catalogue.records import Item
    from jobs.importers.common import Loader
    from jobs.train import run_training

    loader = Loader(conn, tenant=DEFAULT)
    demo.stage(loader, s.staged, False)
    loader.finish()
    conn.commit()
    t0 = time.perf_counter()
    report = run_training(url, s.config, units=[demo.ROOT_UNIT], progress=False)
    root = next(o for o in report.outcomes if o.unit_id == demo.ROOT_UNIT and o.objective == "practice")
    if root.status != "activated":
        raise RuntimeError(f"the root model was not activated: {root.status} {root.reason}")
    training = {"seconds": round(time.perf_counter() - t0, 1), "candidate": root.metrics["candidate"],
                "metadata_prior": root.metrics.get("metadata_prior"), "skill_terms": root.metrics.get("skill_terms"),
                "job_test": {k: round(root.metrics["model"][k], 4) for k in ("auc", "logloss", "ece")}}
    rows = {r[0]: r for r in s.data.catalogue.items}
    units_of: dict[str, list[str]] = {}
    for unit_id, item_id, _ in s.data.catalogue.unit_items:
        units_of.setdefault(item_id, []).append(unit_id)
    with conn:      # the questions written after the last training, through the catalogue API
        catalog.upsert_items(conn, DEFAULT, [Item(item_id=i, kind=rows[i][1], title=rows[i][2], body=rows[i][3],
                                         attrs=rows[i][4], units=units_of[i]) for i in sorted(s.fresh)])
    return training


def measure_role(conn, cache, caches: dict, s: Staged, code: int) -> dict:
    """One role's attempts replayed through both model caches, by learner in time order, and
    scored on each slice beside the truth."""
    ev, ids = s.data.attempts, s.data.learners.ids
    take = np.flatnonzero(s.replayed & (s.role[ev.user] == code))
    take = take[np.lexsort((ev.occurred[take], ev.user[take]))]    # by learner, in time order
    users = ids[ev.user[take]].tolist()
    t0 = time.perf_counter()
    p = replay(conn, cache, caches, users, ev.item_ids[take].tolist(), ev.outcome[take].tolist(),
               [datetime.fromtimestamp(t / 1000, UTC) for t in ev.occurred[take].astype(np.int64).tolist()])
    p["truth"] = ev.p_correct[take]
    y = ev.outcome[take]
    first = attempt_positions(ev.user[take]) < FIRST_ATTEMPTS
    slices = {"first_10_attempts": first,
              "first_10_attempts_at_known_questions": first & ~s.is_new_item[take],   # the prior alone
              "new_questions": s.is_new_item[take], "all": np.ones(len(take), bool)}
    frame = pd.DataFrame({"user_id": users, "correct": y})
    return {
        "learners": len(set(users)), "attempts": len(take),
        "replay_seconds": round(time.perf_counter() - t0, 1),
        "slices": {name: {m: metrics(y[mask], p[m][mask]) for m in METHODS} for name, mask in slices.items()},
        "service_minus_population_prior": {
            name: bootstrap_difference(frame[mask].reset_index(drop=True), p["service"][mask],
                                       p["population_prior"][mask])
            for name, mask in slices.items() if mask.sum() >= 20}}


def measure(s: Staged, result: dict, log) -> None:
    """On scratch servers: train, then replay dev and test through the service and the population
    prior; the Redis keys of the replay are deleted afterwards."""
    from app.config import Settings
    from app.infra.cache import Cache
    from app.serving.model_cache import ModelCache
    from cli.embedded import servers_for
    from harness.databases import connected_scratch_database, delete_keys

    with servers_for(Settings.from_env()) as settings, connected_scratch_database(settings.database_url) as (url, conn):
        result["training"] = train(conn, url, s)
        log(f"training: {json.dumps(result['training'])}")
        prefix = f"adaptrec-cold-{uuid.uuid4().hex[:10]}:"
        cache = Cache(settings.redis_url, prefix=prefix)
        caches = {"service": ModelCache(), "population_prior": ModelCache()}
        with conn:
            plain = caches["population_prior"].nearest(conn, DEFAULT, [demo.ROOT_UNIT], "practice")
        result["served_model"] = {"user_prior": plain.user_prior_shifts is not None,
                                  "item_features": plain.feature_vectors is not None}
        plain.user_prior_shifts, plain.feature_vectors = None, None     # the service before this change
        try:
            for name, code in (("dev", split.DEV), ("test", split.TEST)):
                result[name] = measure_role(conn, cache, caches, s, code)
                log(f"{name}: {json.dumps(result[name]['slices'])}")
        finally:
            delete_keys(cache.client, prefix)
            cache.close()


def targets(result: dict) -> dict:
    """The cold-start target on test: the service's AUC over the population prior's on learners'
    first attempts."""
    gains = {}
    for name in ("first_10_attempts", "first_10_attempts_at_known_questions"):
        first = result["test"]["slices"][name]
        gains[name] = first["service"].get("auc", math.nan) - first["population_prior"].get("auc", math.nan)
    out = {f"test_{name}_auc_gain_over_population_prior": round(g, 4) for name, g in gains.items()}
    return out | {"target_gain": 0.02, "met": bool(gains["first_10_attempts"] >= 0.02)}


def run(learners: int = 3000, attempts: int = 240_000, grade_effect: float = 0.4, new_share: float = 0.1,
        mode: str = "partial", seed: int = 0, progress: bool = False) -> dict:
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    started = time.perf_counter()
    s = prepare(learners, attempts, grade_effect, new_share, mode, seed)
    ev, role = s.data.attempts, s.role
    result: dict = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                    "demo": s.data.config.as_attrs(), "mode": mode, "new_item_share": new_share,
                    "new_items": len(s.fresh), "split_seed": SPLIT_SEED, "job_split_seed": JOB_SPLIT_SEED,
                    "imported_attempts": len(s.staged.attempts)}
    log(f"{len(ev)} attempts; {len(s.staged.attempts)} imported; {len(s.fresh)} new questions; replaying "
        + ", ".join(f"{r} {int((s.replayed & (role[ev.user] == code)).sum())}" for r, code in
                    (("dev", split.DEV), ("test", split.TEST))))
    measure(s, result, log)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["targets"] = targets(result)
    return result


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n")[0])
    ap.add_argument("--learners", type=int, default=3000)
    ap.add_argument("--attempts", type=int, default=240_000)
    ap.add_argument("--grade-effect", type=float, default=0.4, help="logits of ability per school grade")
    ap.add_argument("--new-items", type=float, default=0.1, help="share of questions added after training")
    ap.add_argument("--mode", choices=["partial", "full"], default="partial")
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if not 0.0 <= args.new_items < 1.0:
        ap.error("--new-items is a share of the questions: 0 or more and below 1")
    return args


def report(args, result: dict) -> None:
    """The report in --json's file and only its targets on stdout; without --json, all of it on stdout."""
    text = write_json(result, args.json, default=str)
    print(json.dumps(result["targets"]) if args.json else text)


def main(argv=None) -> int:
    args = parse_args(argv)
    report(args, run(args.learners, args.attempts, args.grade_effect, args.new_items, args.mode,
                     progress=not args.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(main())

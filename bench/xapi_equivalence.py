"""The demo written out as xAPI statements gives what the native import gave (issue 28): the same
interactions, the same models, the same recommendations.

    python -m bench.xapi_equivalence [--learners 300 --attempts 30000 --engagements 7500] [--units demo demo.math]
                                     [--sample 50] [--http-learners 5] [--json OUT]

1. Database A: the demo (jobs.demo.generate_demo, a fixed seed), the native import.
2. A's interactions written as statements (harness.xapi_statements: account name = user id, the
   default verbs, timestamp = occurred_at, statement id = a UUID 5 of the event id, the activity IRI
   the item id under the platform's site), as JSON Lines in (learner, time, event) order, as the
   demo's bulk merge inserts them (time ties are broken by insertion order in training queries).
3. Database B as a platform with its own catalogue would be fed: the demo's catalogue and learners
   through the importers' Loader (native, as the platform syncs them), every item's IRI mapped to it
   in xapi_activities (the demo's ids are not IRIs, so an IRI can be neither the item id nor a new
   item; the tenant creates no items on first sight: an unmapped IRI would be counted unmappable),
   then the statements through `adaptrec import --format xapi` (a subprocess, the real CLI), except
   those of --http-learners learners, sent in batches of 100 to POST /xapi/statements (gunicorn on
   B, one worker; HTTP Basic with a tenant key of scope `ingest`, as an LRS forwarder calls it).
4. Compared: the interactions (count, SHA-256 of (user, item, kind, outcome, value, duration_ms,
   response, occurred_at) in (user, time, id) order, the first differing row), B's event ids (the
   statement ids of A's), the catalogue, the statements left unmappable; the models trained on each
   (jobs.train.run_training, one TrainConfig, threads 1, seed 0) array by array; and for --sample
   learners the answers of app.serving.recommend at a fixed clock (a practice request on each unit,
   a top-N request on the first): item lists and scores.

It creates and drops its own databases and Redis prefixes on the configured servers (or the
embedded ones). Exit status 1 when anything differs.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack, closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg2

from app.access.keys import create_key
from app.access.tenants import DEFAULT, set_settings
from app.config import PROJECT_ROOT, Settings
from app.infra import queries as q
from app.infra.cache import Cache
from app.model.store import load_active
from app.serving.context import RequestContext
from app.serving.model_cache import ModelCache
from app.serving.pipeline import RecommendationRequest
from app.serving.recommend import recommend
from cli.embedded import servers_for
from harness.databases import scratch_database, scratch_redis_prefix
from harness.measure import loadavg, machine
from harness.report import emit
from harness.service import running_service
from harness.xapi_statements import activity_iri, as_statement, statement_id
from jobs.demo import REFERENCE_TIME, DemoConfig, Events, build, generate_demo, stage
from jobs.importers.common import Loader
from jobs.train import TrainConfig, run_training

BATCH = 100
EXAMPLE = 3   # differing examples kept per comparison
INTERACTIONS = ("SELECT user_id, item_id, kind, outcome, value, duration_ms, response::text, occurred_at, event_id "
                "FROM interactions WHERE tenant = %s ORDER BY user_id, occurred_at, id")
CATALOGUE = {   # table -> its rows, in an order that does not depend on insertion
    "units": "SELECT unit_id, name, kind, attrs::text FROM units WHERE tenant = %s ORDER BY 1",
    "items": "SELECT item_id, kind, title, body, attrs::text, active FROM items WHERE tenant = %s ORDER BY 1",
    "unit_items": "SELECT unit_id, item_id, position FROM unit_items WHERE tenant = %s ORDER BY 1, 2",
    "unit_children": "SELECT parent, child FROM unit_children WHERE tenant = %s ORDER BY 1, 2",
    "users": "SELECT user_id, attrs::text FROM users WHERE tenant = %s ORDER BY 1",
}


def rows(conn, sql: str, tenant: str = DEFAULT) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, (tenant,))
        out = cur.fetchall()
    conn.rollback()
    return out


def compare_rows(a: list[tuple], b: list[tuple]) -> dict:
    """Counts, digests, how many positions differ and the first differing rows (as text)."""
    def digest(rs):
        return hashlib.sha256("\n".join(repr(r) for r in rs).encode()).hexdigest()
    differing = [k for k in range(min(len(a), len(b))) if a[k] != b[k]]
    first = differing[0] if differing else (min(len(a), len(b)) if len(a) != len(b) else None)
    return {"a": len(a), "b": len(b), "digest_a": digest(a)[:16], "digest_b": digest(b)[:16],
            "identical": a == b, "differing_rows": len(differing) + abs(len(a) - len(b)),
            "first_difference": None if first is None else {
                "row": first, "a": repr(a[first]) if first < len(a) else None,
                "b": repr(b[first]) if first < len(b) else None}}


# ---- 1-3: the two databases -----------------------------------------------------------------
def write_statements(events: list[tuple], path: Path, leave_out: set[str]) -> tuple[int, list[dict]]:
    """A's interactions (INTERACTIONS' rows) as statements: the file gets all but `leave_out`'s,
    returned (for HTTP) in order; the count written."""
    held, written = [], 0
    with open(path, "w") as f:
        for user, item, kind, outcome, value, duration, response, at, event_id in events:
            s = as_statement({"event_id": event_id, "user_id": user, "item_id": item, "kind": kind,
                              "outcome": outcome, "value": value, "duration_ms": duration,
                              "response": json.loads(response) if response else None, "occurred_at": at})
            if user in leave_out:
                held.append(s)
            else:
                f.write(json.dumps(s) + "\n")
                written += 1
    return written, held


def catalogue_natively(conn, config: DemoConfig) -> None:
    """The demo's units, items, links and learners through the importers' Loader, without events;
    every item's IRI mapped to it; no items created on first sight."""
    data = build(config)
    empty = Events(*(np.array([], dtype=d) for d in (np.int64, object, object, np.int8, np.int64, "datetime64[ms]")))
    with conn:
        loader = Loader(conn, tenant=DEFAULT)
        stage(loader, replace(data, attempts=empty, engagements=empty), progress=False)
        loader.finish()
        items = [row[0] for row in data.catalogue.items]
        q.execute(conn, "insert_activity_items", tenant=DEFAULT, iris=[activity_iri(i) for i in items],
                  item_ids=items)
        set_settings(conn, DEFAULT, {"xapi": {"create_items": False}})


def import_cli(db_url: str, redis_url: str, path: Path) -> dict:
    """`adaptrec import --format xapi --quiet PATH` on database `db_url`, as an operator runs it."""
    env = {**os.environ, "ADAPTREC_DATABASE_URL": db_url, "ADAPTREC_REDIS_URL": redis_url}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", "import", "--format", "xapi", "--quiet", str(path)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"adaptrec import failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"seconds": round(time.perf_counter() - started, 2), "summary": done.stdout.strip()}


def post_http(settings: Settings, conn, statements: list[dict], log_path: Path) -> dict:
    """`statements` to POST /xapi/statements in batches of BATCH, as an LRS forwarder sends them: a
    real service (gunicorn, one worker) on the database, HTTP Basic with a tenant key of scope ingest."""
    with conn:
        _, key = create_key(conn, "lms", ["ingest"], tenant=DEFAULT)
    headers = {"Authorization": "Basic " + base64.b64encode(f"lms:{key}".encode()).decode(),
               "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
    answered = []
    with running_service(settings.database_url, settings.redis_url, "xapieq-operator-" + uuid.uuid4().hex, log_path,
                         redis_prefix=settings.redis_prefix, workers=1) as service:
        for k in range(0, len(statements), BATCH):
            body = json.dumps(statements[k:k + BATCH]).encode()
            request = urllib.request.Request(service.base_url + "/xapi/statements", data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=60) as answer:   # a 4xx/5xx raises HTTPError
                answered += json.loads(answer.read())
    return {"statements": len(statements), "requests": -(-len(statements) // BATCH),
            "ids_answered_in_order": answered == [s["id"] for s in statements]}


# ---- 4: the comparisons ---------------------------------------------------------------------
def compare_interactions(conn_a, conn_b, http_users: set[str]) -> dict:
    a, b = rows(conn_a, INTERACTIONS), rows(conn_b, INTERACTIONS)
    ids = [ra[8] for ra in a], [rb[8] for rb in b]
    wrong_ids = sum(statement_id(ea) != eb for ea, eb in zip(*ids)) + abs(len(a) - len(b))
    unmappable = rows(conn_b, "SELECT reason, count(*) FROM xapi_statements WHERE tenant = %s "
                              "AND reason IS NOT NULL GROUP BY 1 ORDER BY 1")
    return {"all": compare_rows([r[:8] for r in a], [r[:8] for r in b]),
            "http_learners": compare_rows([r[:8] for r in a if r[0] in http_users],
                                          [r[:8] for r in b if r[0] in http_users]),
            "event_ids_not_the_statement_ids": wrong_ids,
            "unmappable": dict(unmappable),
            "same_time_ties": sum(1 for k in range(1, len(a)) if a[k][0] == a[k - 1][0] and a[k][7] == a[k - 1][7])}


def compare_catalogues(conn_a, conn_b) -> dict:
    out = {}
    for table, sql in CATALOGUE.items():
        found = compare_rows(rows(conn_a, sql), rows(conn_b, sql))
        out[table] = {k: found[k] for k in ("a", "b", "identical", "first_difference")}
    return out


def compare_models(conn_a, conn_b, units: list[str]) -> dict:
    out = {}
    for unit in units:
        for objective in ("practice", "engagement"):
            ma, mb = load_active(conn_a, DEFAULT, unit, objective), load_active(conn_b, DEFAULT, unit, objective)
            conn_a.rollback()
            conn_b.rollback()
            if ma is None or mb is None:
                out[f"{unit}/{objective}"] = {"a": ma is not None, "b": mb is not None, "identical": ma is mb}
                continue
            ea, eb = ma.artifact.embedding, mb.artifact.embedding
            same_ids = ea.item_ids == eb.item_ids
            out[f"{unit}/{objective}"] = {
                "items": len(ea.item_ids), "dim": ea.dim, "item_ids_equal": same_ids,
                "max_abs_diff": {name: (float(np.max(np.abs(getattr(ea, name) - getattr(eb, name)), initial=0.0))
                                        if same_ids and getattr(ea, name).shape == getattr(eb, name).shape else None)
                                 for name in ("item_vectors", "item_biases", "prior_mean", "prior_cov")},
                "artifact_identical": ma.artifact == mb.artifact,
                "metrics_identical": ma.metrics == mb.metrics,
                "identical": ma.artifact == mb.artifact}
    return out


def compare_recommendations(settings_a: Settings, settings_b: Settings, conn_a, conn_b, learners: list[str],
                            units: list[str], now: datetime) -> dict:
    """For each learner: a practice request on each unit (target strategy) and a top-N request on the
    first, served by app.serving.recommend at `now` from each database; item lists and scores."""
    requests = [("target", u) for u in units] + [("top", units[0])]
    answers = {"a": [], "b": []}
    for side, settings, conn in (("a", settings_a, conn_a), ("b", settings_b, conn_b)):
        cache, models = Cache(settings.redis_url, settings.redis_prefix), ModelCache()
        for user in learners:
            for strategy, unit in requests:
                ctx = RequestContext(conn, DEFAULT, cache, models, request_id="equivalence", now=now)
                got = recommend(ctx, RecommendationRequest(user_id=user, units=[unit], n=10, strategy=strategy))
                answers[side].append((user, strategy, unit, got.items, [float(s) for s in got.scores],
                                      got.model.model_id if got.model else None, got.history_rows))
                conn.rollback()
    same = [x[:5] == y[:5] and x[6] == y[6] for x, y in zip(answers["a"], answers["b"])]
    first = next((k for k, s in enumerate(same) if not s), None)
    return {"learners": len(learners), "requests": len(same), "identical": sum(same),
            "differing": len(same) - sum(same), "empty_answers": sum(1 for x in answers["a"] if not x[3]),
            "first_difference": None if first is None else {"a": repr(answers["a"][first]),
                                                             "b": repr(answers["b"][first])}}


def train(db_url: str, units: list[str], seed: int) -> dict:
    config = TrainConfig(threads=1, seed=seed, max_trials=1, max_eval_users=100, unit_time_budget_s=3600.0)
    started = time.perf_counter()
    report = run_training(db_url, config, units=units, progress=False)
    return {"seconds": round(time.perf_counter() - started, 1),
            "outcomes": {f"{o.unit_id}/{o.objective}": o.status for o in report.outcomes}}


def run(args, settings: Settings) -> dict:
    config = DemoConfig(seed=args.seed, learners=args.learners, attempts=args.attempts, engagements=args.engagements)
    now = datetime.fromisoformat(REFERENCE_TIME).replace(tzinfo=UTC) + timedelta(hours=12)
    with ExitStack() as stack:
        url_a = stack.enter_context(scratch_database(settings.database_url, "adaptrec_xapieq_a"))
        url_b = stack.enter_context(scratch_database(settings.database_url, "adaptrec_xapieq_b"))
        settings_a = replace(settings, database_url=url_a,
                             redis_prefix=stack.enter_context(scratch_redis_prefix(settings.redis_url, "xapieq-a")))
        settings_b = replace(settings, database_url=url_b,
                             redis_prefix=stack.enter_context(scratch_redis_prefix(settings.redis_url, "xapieq-b")))
        conn_a = stack.enter_context(closing(psycopg2.connect(url_a)))
        conn_b = stack.enter_context(closing(psycopg2.connect(url_b)))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        started = time.perf_counter()
        demo = generate_demo(conn_a, config)
        events = rows(conn_a, INTERACTIONS)
        users = sorted({r[0] for r in events})
        rng = np.random.default_rng(args.seed)
        http_users = set(rng.choice(users, size=min(args.http_learners, len(users)), replace=False).tolist())
        path = folder / "statements.jsonl"
        written, held = write_statements(events, path, http_users)
        catalogue_natively(conn_b, config)
        imported = import_cli(url_b, settings.redis_url, path)
        http = post_http(settings_b, conn_b, held, folder / "gunicorn.log") if held else {"statements": 0}
        loaded_s = time.perf_counter() - started
        interactions = compare_interactions(conn_a, conn_b, http_users)
        catalogue = compare_catalogues(conn_a, conn_b)
        training = {"a": train(url_a, args.units, args.train_seed), "b": train(url_b, args.units, args.train_seed)}
        models = compare_models(conn_a, conn_b, args.units)
        with_attempts = sorted({r[0] for r in events if r[2] == "attempt"})
        sample = rng.choice(with_attempts, size=min(args.sample, len(with_attempts)), replace=False).tolist()
        sample = sorted(set(sample) | http_users)
        recs = compare_recommendations(settings_a, settings_b, conn_a, conn_b, sample, args.units, now)
    identical = (interactions["all"]["identical"] and interactions["event_ids_not_the_statement_ids"] == 0
                 and not interactions["unmappable"] and all(c["identical"] for c in catalogue.values())
                 and training["a"]["outcomes"] == training["b"]["outcomes"] and bool(models)
                 and all(m["identical"] for m in models.values()) and recs["differing"] == 0)
    return {"demo": {"seed": config.seed, "learners": config.learners, "attempts": demo.generated["attempts"],
                     "engagements": demo.generated["engagements"]},
            "statements": {"file": written, "http": http, "import": imported, "load_seconds": round(loaded_s, 1)},
            "interactions": interactions, "catalogue": catalogue, "training": training, "models": models,
            "recommendations": recs, "clock": now.isoformat(), "identical": identical}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.xapi_equivalence", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="the demo's seed (default 7)")
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--attempts", type=int, default=30_000)
    parser.add_argument("--engagements", type=int, default=None, help="default: a quarter of --attempts")
    parser.add_argument("--units", nargs="+", default=["demo", "demo.math"], help="units trained and asked for")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=50, help="learners whose recommendations are compared")
    parser.add_argument("--http-learners", type=int, default=5,
                        help="learners whose statements go through POST /xapi/statements instead of the import")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.engagements is None:
        args.engagements = args.attempts // 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = loadavg()
    started = time.perf_counter()
    with servers_for(Settings.from_env()) as settings:
        result = run(args, settings)
    result = {"bench": "xapi_equivalence", "commit": commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": "python -m bench.xapi_equivalence " + " ".join(argv if argv is not None else sys.argv[1:]),
              **result, "seconds": round(time.perf_counter() - started, 1),
              "load_before": load_before, "load_after": loadavg(), "machine": machine()}
    emit(result, args.json)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

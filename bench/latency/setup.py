"""bench.latency's preparing: the data, the models, the 5k unit and the learners of the mix (in a
scratch database, or drawn from --database), the in-process floor, the service started and its
caches warmed; or, with --url, a running service. Ends with the first answer checked."""
from __future__ import annotations

import os
import shlex
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from app.config import PROJECT_ROOT
from harness.client import http_json
from harness.load import separate_process
from harness.measure import CpuMeter, service_groups

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "assist2009" / "attempts.csv.gz"
DEFAULT_MOVIELENS = PROJECT_ROOT.parent / "shared" / "data" / "ml-100k"
UNIT_ID = "bench-5k"
UNIT_ITEMS = 5000
SKILLS_UNIT_ID = "bench-20-skills"   # the knowledge phase's unit: the 20 most attempted skills as its children
ROOT_ID = "assistments"


@dataclass
class Target:
    """The service the phases drive and what they ask it for: `mix` is bench.request_mix's plain
    data for the recommend and topn phases; `meter` reads the CPU of a service started here."""
    base: str
    key: str
    unit: str
    users: list[str]
    items: list[str]
    mix: dict
    master_pid: int | None
    meter: CpuMeter | None = None
    started: dict | None = None   # a local target's data, for serve_target


def prepare(args, stack, result: dict, say) -> Target:
    """The service to measure, its setup recorded in `result`; what it starts is closed by `stack`."""
    target = remote_target(args) if args.url else local_target(args, stack, result, say)
    if target.base:
        first_answer(target, result, say)
    return target


def remote_target(args) -> Target:
    """--url: a running service, asked for --unit's items; --user's learners; no evictions."""
    base, key, unit, users = args.url.rstrip("/"), args.key, args.unit, list(args.user)
    status, body = http_json(base, key, "GET", f"/v1/units/{unit}")
    if status != 200 or not body.get("items"):
        raise SystemExit(f"bench.latency: GET /v1/units/{unit}: {status} {body}")
    mix = {"learners": users, "miss": 0.0, "tenant": "default", "topn_learners": []}
    return Target(base, key, unit, users, body["items"], mix, args.gunicorn_pid)


def local_target(args, stack, result: dict, say) -> Target:
    """The data (scratch or --database), the floor, the service on a Redis prefix of its own, and
    every learner's history cached."""
    from app.access.tenants import DEFAULT
    from app.config import Settings
    from bench.request_mix import TOPN_TENANT, TOPN_UNIT
    from cli.embedded import servers_for
    from harness.databases import scratch_redis_prefix

    settings = stack.enter_context(servers_for(Settings.from_env()))
    url, unit, prepared = (existing_data(args, stack, result, say) if args.database
                           else scratch_data(args, stack, settings, result, say))
    say(f"in-process floor on {args.floor_samples} histories of the mix ...")
    result["floor"] = measure_floor(database_url=url, tenant=DEFAULT, unit=unit,
                                    learners=prepared["learners"], samples=args.floor_samples)
    say(f"floor: {result['floor']}")
    if prepared["knowledge"]["learners"]:
        result["knowledge_floor"] = measure_floor("knowledge_floor", database_url=url, tenant=DEFAULT,
                                                  units=prepared["knowledge"]["units"],
                                                  learners=prepared["knowledge"]["learners"])
        say(f"knowledge floor: {result['knowledge_floor']['wall_ms']} ms wall, "
            f"{result['knowledge_floor']['cpu_ms']} ms CPU")
    key = "bench-" + uuid.uuid4().hex
    prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-bench"))
    mix = {"learners": prepared["learners"], "miss": args.miss, "tenant": DEFAULT,
           "redis_url": settings.redis_url, "redis_prefix": prefix,
           "topn_learners": prepared["topn_learners"], "topn_tenant": TOPN_TENANT, "topn_unit": TOPN_UNIT,
           "knowledge_learners": prepared["knowledge"]["learners"], "knowledge_units": prepared["knowledge"]["units"]}
    target = Target("", key, unit, prepared["users"], prepared["items"], mix, None,
                    started={"url": url, "redis_url": settings.redis_url, "prefix": prefix, "prepared": prepared})
    if getattr(args, "servers", None):
        return target   # bench/latency/servers.py starts each server in turn
    return serve_target(args, stack, target, result, say)


def serve_target(args, stack, target: Target, result: dict, say, server: str | None = None) -> Target:
    """`target` served by a server started now (closed by `stack`; --server unless `server`), its
    caches warmed and its CPU metered."""
    s = target.started
    service = start_service(args, stack, s["url"], s["redis_url"], target.key, s["prefix"], result, say, server)
    warm_caches(s["url"], s["redis_url"], s["prefix"], s["prepared"], result, say)
    return replace(target, base=service.base_url, master_pid=service.proc.pid,
                   meter=CpuMeter(service_groups(service.proc.pid, s["url"], s["redis_url"])))


def scratch_data(args, stack, settings, result: dict, say) -> tuple[str, str, dict]:
    """A scratch database with ASSISTments (and MovieLens unless --no-topn): (url, unit, learners)."""
    from harness.databases import connected_scratch_database

    url, conn = stack.enter_context(connected_scratch_database(settings.database_url))
    prepared = build_data(conn, url, args.data, args.movielens if args.topn else None, args.learners,
                          args.new_share, say)
    result["setup"] = {k: prepared.get(k) for k in ("import_seconds", "train_seconds", "model_auc",
                                                    "history_lengths", "topn_setup_seconds")}
    result["setup"]["knowledge"] = {k: v for k, v in prepared["knowledge"].items() if k != "learners"}
    result["setup"]["train_config"] = "TrainConfig(max_trials=1), unit assistments only"
    return url, UNIT_ID, prepared


def existing_data(args, stack, result: dict, say) -> tuple[str, str, dict]:
    """--database: its learners and --unit's items, nothing written: (url, unit, learners)."""
    import psycopg2

    url, unit = args.database, args.unit
    conn = psycopg2.connect(url)
    stack.callback(conn.close)
    prepared = prepare_existing(conn, unit, args.learners, args.new_share, say)
    result["setup"] = {"database": urlsplit(url).path.lstrip("/"), "unit": unit,
                       "history_lengths": prepared["history_lengths"],
                       "knowledge": {k: v for k, v in prepared["knowledge"].items() if k != "learners"}}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM interactions")
        result["setup"]["interactions"] = cur.fetchone()[0]
    conn.rollback()
    return url, unit, prepared


# ---- data, models, the 5k unit, the learners ---------------------------------------------------
def build_data(conn, url: str, data: Path, movielens: Path | None, learners: int, new_share: float, say) -> dict:
    """Import, train the root, build the 5k unit and the learners of the mix; MovieLens as the
    tenant of the top-N phase. Returns what the phases need."""
    from app.access.tenants import DEFAULT
    from app.catalogue import catalog
    from app.catalogue.records import Unit
    from app.infra import queries as q
    from bench.request_mix import build_learners, history_lengths
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    t0 = time.perf_counter()
    run_import(conn, "assistments", [data], progress=False)
    import_s = time.perf_counter() - t0
    say(f"imported {data.name} in {import_s:.1f} s")
    t0 = time.perf_counter()
    report = run_training(url, TrainConfig(max_trials=1), units=["assistments"], progress=False)
    train_s = time.perf_counter() - t0
    root = next((o for o in report.outcomes if o.unit_id == "assistments"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"training the root unit failed: {root}")
    say(f"trained `assistments` (max_trials=1) in {train_s:.1f} s")

    with conn.cursor() as cur:  # the most attempted items: the ones learners' histories touch most
        cur.execute("""SELECT i.item_id FROM items i LEFT JOIN interactions x ON x.tenant = i.tenant
                       AND x.item_id = i.item_id WHERE i.tenant = %s AND i.active
                       GROUP BY i.item_id ORDER BY count(x.id) DESC, i.item_id LIMIT %s""", (DEFAULT, UNIT_ITEMS))
        items = [r[0] for r in cur.fetchall()]
    catalog.upsert_units(conn, DEFAULT, [Unit(unit_id=UNIT_ID, name="latency benchmark: 5,000 items", items=items)])
    q.execute(conn, "insert_children", tenant=DEFAULT, parents=["assistments"], children=[UNIT_ID])
    conn.commit()
    new = round(learners * new_share)
    t0 = time.perf_counter()
    mix = build_learners(conn, DEFAULT, learners - new, new)
    lengths = history_lengths(conn, DEFAULT, mix)
    say(f"unit {UNIT_ID}: {len(items)} items, child of `assistments`; {len(mix)} learners "
        f"({time.perf_counter() - t0:.1f} s): {lengths}")
    out = {"users": mix[:5], "learners": mix, "history_lengths": lengths, "items": items,
           "import_seconds": round(import_s, 1), "train_seconds": round(train_s, 1),
           "model_auc": (root.metrics or {}).get("model", {}).get("auc"), "topn_learners": [],
           "knowledge": build_skills_unit(conn, mix, say)}
    if movielens is not None:
        out.update(build_topn_tenant(conn, url, movielens, say))
    return out


def build_skills_unit(conn, learners: list[str], say) -> dict:
    """The knowledge phase's unit: `bench-20-skills`, a child of the root with the 20 skills most
    attempted as its children (a chapter of 20 skills; the root's model serves them), and the
    learners of the mix with a history at the cap. Commits."""
    from app.access.tenants import DEFAULT
    from app.catalogue import catalog
    from app.catalogue.records import Unit
    from app.infra import queries as q
    from bench.request_mix import knowledge_target

    found = knowledge_target(conn, DEFAULT, learners, exclude=(UNIT_ID, ROOT_ID))
    catalog.upsert_units(conn, DEFAULT, [Unit(unit_id=SKILLS_UNIT_ID, name="latency benchmark: 20 skills", items=[])])
    q.execute(conn, "insert_children", tenant=DEFAULT, parents=[ROOT_ID], children=[SKILLS_UNIT_ID])
    q.execute(conn, "insert_children", tenant=DEFAULT, parents=[SKILLS_UNIT_ID] * len(found["skills"]),
              children=found["skills"])
    conn.commit()
    out = knowledge_summary(conn, [SKILLS_UNIT_ID], found)
    say(f"unit {SKILLS_UNIT_ID}: {len(found['skills'])} skills, {out['items']} items; "
        f"{len(found['learners'])} learners with a history at the cap")
    return out


def knowledge_summary(conn, units: list[str], found: dict) -> dict:
    """The knowledge phase's units and learners, and what they come to (skills, items)."""
    from app.access.tenants import DEFAULT
    from app.infra import queries as q

    items = q.fetch_all(conn, "items_under_units", tenant=DEFAULT, unit_ids=units)
    conn.rollback()
    return {"units": units, "skills": found["skills"], "items": len(items), "learners": found["learners"],
            "learners_count": len(found["learners"])}


def build_topn_tenant(conn, url: str, movielens: Path, say) -> dict:
    """MovieLens 100K imported as tenant `movies` and its root trained: the top-N phase's learners."""
    from bench.request_mix import TOPN_TENANT, TOPN_UNIT
    from jobs.importers import run_import
    from jobs.train import TrainConfig, run_training

    t0 = time.perf_counter()
    run_import(conn, "movielens", [movielens], progress=False, tenant=TOPN_TENANT)
    report = run_training(url, TrainConfig(tenant=TOPN_TENANT, max_trials=1), units=[TOPN_UNIT], progress=False)
    outcome = next((o for o in report.outcomes if o.unit_id == TOPN_UNIT), None)
    if outcome is None or outcome.status != "activated":
        raise RuntimeError(f"training MovieLens failed: {outcome}")
    with conn.cursor() as cur:
        cur.execute("SELECT user_id FROM users WHERE tenant = %s ORDER BY user_id", (TOPN_TENANT,))
        out = {"topn_learners": [r[0] for r in cur.fetchall()]}
    conn.rollback()
    out["topn_setup_seconds"] = round(time.perf_counter() - t0, 1)
    say(f"tenant {TOPN_TENANT}: MovieLens imported and `{TOPN_UNIT}` trained in {out['topn_setup_seconds']} s "
        f"({len(out['topn_learners'])} users)")
    return out


def prepare_existing(conn, unit: str, learners: int, new_share: float, say, seed: int = 0) -> dict:
    """The learners and items of the mix in a database already imported and trained (--database,
    e.g. the scale run's, docs/SCALING.md): learners drawn at random among those with a history
    (no copies are written), `new_share` of them new; the items under `unit`."""
    from app.access.tenants import DEFAULT
    from app.infra import queries as q
    from bench.request_mix import history_lengths, knowledge_target

    items = [r["item_id"] for r in q.fetch_all(conn, "items_under_units", tenant=DEFAULT, unit_ids=[unit])]
    if not items:
        raise SystemExit(f"bench.latency: unit {unit!r} has no active items in the --database")
    new = round(learners * new_share)
    with conn.cursor() as cur:
        cur.execute("SELECT setseed(%s)", (1.0 / (seed + 2),))
        cur.execute("SELECT user_id FROM users u WHERE tenant = %s AND EXISTS (SELECT 1 FROM interactions i "
                    "WHERE i.tenant = u.tenant AND i.user_id = u.user_id) ORDER BY random() LIMIT %s",
                    (DEFAULT, learners - new))
        mix = [r[0] for r in cur.fetchall()] + [f"mix-new-{k}" for k in range(new)]
    conn.rollback()
    lengths = history_lengths(conn, DEFAULT, mix)
    say(f"unit {unit}: {len(items)} items; {len(mix)} learners: {lengths}")
    found = knowledge_target(conn, DEFAULT, mix, exclude=(unit,))   # nothing written: the 20 skills asked by name
    return {"users": mix[:5], "learners": mix, "history_lengths": lengths, "items": items, "topn_learners": [],
            "knowledge": knowledge_summary(conn, found["skills"], found)}


# ---- the floor, the service, its caches ---------------------------------------------------------
def _floor_in_child(name: str, kwargs: dict) -> dict:
    from bench import request_mix

    return getattr(request_mix, name)(**kwargs)


def measure_floor(floor: str = "in_process_floor", **kwargs) -> dict:
    """bench.request_mix's `floor` (in_process_floor, knowledge_floor) in a fresh process with one
    BLAS thread, as each gunicorn worker runs (a multi-threaded BLAS would bill its spinning
    threads to the fit)."""
    from harness.service import ONE_BLAS_THREAD

    saved = {k: os.environ.get(k) for k in ONE_BLAS_THREAD}
    os.environ.update(ONE_BLAS_THREAD)
    try:
        with separate_process() as ex:
            return ex.submit(_floor_in_child, floor, kwargs).result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_service(args, stack, url: str, redis_url: str, key: str, prefix: str, result: dict, say,
                  server: str | None = None):
    """The server (--server: gunicorn or Granian) as `adaptrec serve` runs it (--workers,
    --gunicorn-args), logs to a scratch folder."""
    from cli.serve import server_command
    from harness.service import chosen_server, running_service

    server = chosen_server(server or args.server)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-latency-")))
    service = stack.enter_context(running_service(
        url, redis_url, key, tmp / f"{server}.log", redis_prefix=prefix, workers=args.workers,
        gunicorn_args=shlex.split(args.gunicorn_args), server=server))
    shown = server_command(server, "127.0.0.1:PORT", args.workers, shlex.split(args.gunicorn_args))
    result["service"] = {"server": server,
                         "command": " ".join(["python"] + shown[1:]) + " (cli.serve.server_command; "
                                    "JSON logs to a file)",
                         "env": "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1",
                         "gunicorn_args": args.gunicorn_args or None}
    say(f"{server} ready on {service.base_url} (pid {service.proc.pid})")
    return service


def warm_caches(url: str, redis_url: str, prefix: str, prepared: dict, result: dict, say) -> None:
    """Every learner's history cached in Redis, and what one costs Redis."""
    import redis as redis_client

    from app.access.tenants import DEFAULT
    from bench.request_mix import TOPN_TENANT, warm_histories

    used = redis_client.Redis.from_url(redis_url).info("memory")["used_memory"]
    warmed = warm_histories(url, redis_url, prefix, DEFAULT, prepared["learners"])
    # What a learner's cached history costs Redis (for sizing: docs/SCALING.md); the server
    # is shared, so only an estimate.
    grown = redis_client.Redis.from_url(redis_url).info("memory")["used_memory"] - used
    result["redis_bytes_per_cached_learner"] = round(grown / max(1, len(prepared["learners"])))
    if prepared["topn_learners"]:
        warmed += warm_histories(url, redis_url, prefix, TOPN_TENANT, prepared["topn_learners"])
    say(f"histories of every learner cached in Redis in {warmed:.1f} s")


def first_answer(target: Target, result: dict, say) -> None:
    """One recommendation before the load: it must answer 200; what it says goes in the report."""
    status, answer = http_json(target.base, target.key, "POST", "/v1/recommendations",
                               {"user_id": target.users[0], "units": [target.unit], "n": 10})
    if status != 200:
        raise SystemExit(f"bench.latency: the first recommendation failed: {status} {answer}")
    result["candidates"] = answer["candidates"]
    result["model_unit"] = (answer.get("model") or {}).get("unit_id")
    result["learners"] = len(target.mix["learners"])
    result["history_not_in_redis"] = target.mix["miss"]
    say(f"first answer: {answer['candidates']} candidates, model of {result['model_unit']}")

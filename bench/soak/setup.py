"""bench.soak's preparing: the service to soak, started here on a scratch database with the demo
data set and its root trained, or a running one (--url); the real ids the traffic draws from."""
from __future__ import annotations

import random
import shlex
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from harness.client import http_json
from harness.measure import child_pids, find_gunicorn_master, service_groups

DEMO_ROOT = "demo"


@dataclass
class Soaked:
    """The service under soak: where it answers, the ids to ask for, its gunicorn master (None:
    memory not measured, `memory_note` says why), the CPU groups to meter, its log when started here."""
    base: str
    key: str
    ids: dict
    master: int | None
    cpu_groups: dict
    log_path: Path | None = None
    memory_note: str | None = None


def prepare(args, stack, config: dict, result: dict, say) -> Soaked:
    """The service and its ids (counted in `result`), checked with one recommendation; what it
    starts is closed by `stack`; `config` gets where it runs."""
    soaked = remote(args, config) if args.url else local(args, stack, config, result, say)
    ids = soaked.ids
    result["ids"] = {"users": len(ids["users"]), "units": len(ids["units"]), "items": len(ids["items"])}
    status, answer = http_json(soaked.base, soaked.key, "POST", "/v1/recommendations",
                               {"user_id": ids["users"][0], "units": [ids["units"][0]], "n": 10})
    if status != 200:
        raise SystemExit(f"bench.soak: the first recommendation failed: {status} {answer}")
    return soaked


def remote(args, config: dict) -> Soaked:
    """--url: its ids asked over HTTP; its gunicorn master given (--pid) or found by the port."""
    base, key = args.url.rstrip("/"), args.key
    ids = remote_ids(base, key, args.unit or [DEMO_ROOT], args.user)
    master, note = args.pid, None
    if master is None:
        parts = urlsplit(base)
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            master = find_gunicorn_master(parts.port or 80)
        if master is None:
            note = ("no --pid given and no local gunicorn found listening on the URL's port "
                    "(another machine, or owned by another user): worker memory not measured")
    config.update({"url": base, "pid": master})
    cpu_groups = {"gunicorn_workers": lambda: child_pids(master)} if master else {}
    return Soaked(base, key, ids, master, cpu_groups, memory_note=note)


def local(args, stack, config: dict, result: dict, say) -> Soaked:
    """A scratch database with the demo, and gunicorn on it with a Redis prefix and key of its own."""
    from app.config import Settings
    from cli.embedded import servers_for
    from harness.databases import scratch_database, scratch_redis_prefix
    from harness.service import running_service

    settings = stack.enter_context(servers_for(Settings.from_env()))
    url = stack.enter_context(scratch_database(settings.database_url, "adaptrec_soak"))
    ids = prepare_demo(url, args, say)
    result["setup"] = ids.pop("setup")
    key = "soak-" + uuid.uuid4().hex
    prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-soak"))
    log_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-soak-"))) / "gunicorn.log"
    service = stack.enter_context(running_service(
        url, settings.redis_url, key, log_path, redis_prefix=prefix, workers=args.workers,
        gunicorn_args=shlex.split(args.gunicorn_args)))
    master = service.proc.pid
    config.update({"workers": args.workers, "gunicorn_args": args.gunicorn_args,
                   "service": "harness.service.running_service: adaptrec serve's gunicorn command, "
                              "OPENBLAS_NUM_THREADS=1"})
    say(f"gunicorn ready on {service.base_url} (pid {master})")
    return Soaked(service.base_url, key, ids, master, service_groups(master, url, settings.redis_url), log_path)


# ---- ids: from the scratch database, or from a running service --------------------------------
def prepare_demo(url: str, args, say) -> dict:
    """The demo data set and the root's models in the scratch database; returns its ids."""
    import psycopg2

    from jobs.demo import DemoConfig, generate_demo
    from jobs.train import TrainConfig, run_training

    conn = psycopg2.connect(url)
    try:
        t0 = time.perf_counter()
        report = generate_demo(conn, DemoConfig(seed=args.seed, learners=args.demo_learners,
                                                attempts=args.demo_attempts, engagements=args.demo_engagements))
        say(report.summary())
        demo_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trained = run_training(url, TrainConfig(max_trials=1, min_interactions=1), units=[DEMO_ROOT], progress=False)
        train_s = time.perf_counter() - t0
        models = {o.objective: o.status for o in trained.outcomes if o.unit_id == DEMO_ROOT}
        if models.get("practice") != "activated":
            raise RuntimeError(f"training the demo root failed: {trained.outcomes}")
        say(f"trained `{DEMO_ROOT}` (max_trials=1) in {train_s:.1f} s: {models}")
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT user_id FROM interactions ORDER BY user_id")
            users = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT unit_id FROM units ORDER BY unit_id")
            units = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT item_id, kind FROM items WHERE active ORDER BY item_id")
            items = [(r[0], r[1]) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    return {"users": users, "units": units, "items": items,
            "setup": {"demo": {"learners": args.demo_learners, "attempts": args.demo_attempts,
                               "engagements": args.demo_engagements, "seed": args.seed},
                      "demo_seconds": round(demo_s, 1), "train_seconds": round(train_s, 1), "models": models}}


def remote_ids(base: str, key: str, roots: list[str], users: list[str], max_units: int = 300,
               max_items: int = 300) -> dict:
    """Units under `roots` (breadth first), a sample of their items with kinds, and the learners
    (`users`, or the demo's first learners that exist) of a running service."""
    units, queue, direct = [], list(roots), []
    while queue and len(units) < max_units:
        unit = queue.pop(0)
        if unit in units:
            continue
        status, body = http_json(base, key, "GET", f"/v1/units/{quote(unit, safe='')}")
        if status != 200:
            raise SystemExit(f"bench.soak: GET /v1/units/{unit}: {status} {body}")
        units.append(unit)
        queue.extend(body["children"])
        direct.extend(body["items"])
    sample = random.Random(0).sample(sorted(set(direct)), min(max_items, len(set(direct))))
    items = []
    for item_id in sample:
        status, body = http_json(base, key, "GET", f"/v1/items/{quote(item_id, safe='')}")
        if status == 200 and body.get("active"):
            items.append((item_id, body["kind"]))
    if not items:
        raise SystemExit(f"bench.soak: no active items under {', '.join(roots)}")
    if not users:
        candidates = [f"{DEMO_ROOT}.u{i:04d}" for i in range(1, 51)]  # the demo's learner ids
        users = [u for u in candidates if http_json(base, key, "GET", f"/v1/users/{u}")[0] == 200]
        if not users:
            raise SystemExit("bench.soak: the demo's learners are not there; name learners with --user")
    return {"users": users, "units": units, "items": items}

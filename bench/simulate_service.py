"""bench.simulate's learners over HTTP: the scratch service they ask (catalogue and history
imported, the nightly job, gunicorn), the client, and one learner's sessions against it with
the truth answering and the attempts posted with their simulated times.

The service's clock: the API has no "as of" (a recommendation is computed at the wall clock,
which only its 30-minute cool-down reads), so each learner's clock is anchored at the wall
clock when their measured session starts; their history lies before it by the simulated gaps.
"""
from __future__ import annotations

import json
import math
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.simulation.figures import Attempt, Gain
from bench.simulation.truth import ATTEMPT_DAYS, Learners, ability, forget, practise, probabilities
from bench.simulation.world import ROOT, World, at_time, catalogue_lines, history_lines, item_id, user_id


def import_lines(conn, lines: list[dict], folder: Path, name: str) -> float:
    from jobs.importers import run_import

    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    t0 = time.perf_counter()
    run_import(conn, "jsonl", [path], progress=False)
    return time.perf_counter() - t0


# ---- the learners over HTTP --------------------------------------------------------------------
class Client:
    """JSON over HTTP with one API key; counts requests, errors and the recommendation latency."""

    def __init__(self, base: str, key: str):
        self.base, self.key = base, key
        self.lock = threading.Lock()
        self.requests = 0
        self.errors: list[str] = []
        self.recommend_ms: list[float] = []

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        from harness.client import http_json

        t0 = time.perf_counter()
        try:
            status, answer = http_json(self.base, self.key, method, path, body)
        except OSError as exc:
            status, answer = 0, {"detail": f"{type(exc).__name__}: {exc}"}
        ms = (time.perf_counter() - t0) * 1000.0
        with self.lock:
            self.requests += 1
            if path == "/v1/recommendations":
                self.recommend_ms.append(ms)
            if status not in (200, 201):
                self.errors.append(f"{method} {path}: {status} {str(answer)[:200]}")
        return status, answer


@dataclass
class Arm:
    """One setting served over HTTP: a fixed target, or the A/B experiment."""
    name: str
    target: float | None = None
    experiment: str | None = None
    variant_targets: dict = field(default_factory=dict)
    learners: int | None = None    # only the first this many of each kind (None: all)
    explore: bool = False          # ask with `explore: true` (Thompson sampling)


def drive_learner(client: Client, world: World, learners: Learners, arm: Arm, returning: bool, u: int,
                  args, run: str, positions: dict, clock: Callable[[], datetime]
                  ) -> tuple[list[Attempt], list[Gain], list[str]]:
    """One learner's sessions against the service; their truth (`learners`, a copy) is updated.
    clock() gives the wall-clock time their simulated clock's 0 is anchored at."""
    uid = user_id(arm.name, returning, u)
    draws, away, starts = world.draws(returning)[u], world.away(returning)[u], world.starts(returning, u)
    origin = clock()
    attempts, gains, fallbacks = [], [], []
    index = 0
    for s in range(args.sessions):
        if s:
            forget(learners, away[s], args.half_life, u)
        before = ability(learners, u)
        for k in range(args.session_length):
            body = {"user_id": uid, "units": [ROOT], "n": 1}
            body.update({"experiment": arm.experiment} if arm.experiment else {"target": arm.target})
            if arm.explore:
                body["explore"] = True
            status, answer = client.call("POST", "/v1/recommendations", body)
            if status != 200 or not answer.get("items"):
                continue
            served = answer["items"][0]
            fallbacks.append(answer.get("fallback") or "none")
            item = positions[served["item_id"]]
            p = float(probabilities(world.catalogue, learners, u, [item])[0])
            outcome = int(draws[index] < p)
            practise(world.catalogue, learners, u, item, p, outcome, args.learn_rate)
            index += 1
            variant = answer.get("variant")
            target = arm.variant_targets.get(variant, math.nan) if arm.experiment else arm.target
            attempts.append(Attempt(u, returning, index, target, p, float(served.get("p", math.nan)), outcome,
                                    variant, float(away[s])))
            at = at_time(origin, starts[s] + k * ATTEMPT_DAYS)
            client.call("POST", "/v1/interactions", {"event_id": f"sim:{run}:{uid}:{index}", "user_id": uid,
                                                     "item_id": served["item_id"], "kind": "attempt",
                                                     "outcome": outcome, "occurred_at": at.isoformat()})
        gains.append(Gain(u, returning, s, float(ability(learners, u) - before),
                          attempts[-1].variant if attempts else None))
    return attempts, gains, fallbacks


def drive_arm(client: Client, world: World, arm: Arm, args, run: str, say) -> tuple[list, list, dict]:
    positions = {item_id(i): i for i in range(world.catalogue.size)}
    copies = {False: world.new.copy(), True: world.returning.copy()}
    limit = arm.learners if arm.learners is not None else max(len(world.new), len(world.returning))
    jobs = [(returning, u) for u in range(limit) for returning in (False, True) if u < len(copies[returning])]
    attempts, gains, fallbacks = [], [], {}
    t0, cpu0, requests0 = time.perf_counter(), time.process_time(), client.requests
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        done = pool.map(lambda job: drive_learner(client, world, copies[job[0]], arm, job[0], job[1], args, run,
                                                  positions, _wall_clock), jobs)
        for a, g, f in done:
            attempts += a
            gains += g
            for reason in f:
                fallbacks[reason] = fallbacks.get(reason, 0) + 1
    seconds = time.perf_counter() - t0
    say(f"{arm.name}: {len(attempts)} attempts of {len(jobs)} learners in {seconds:.1f} s")
    requests = client.requests - requests0
    cpu_ms = (time.process_time() - cpu0) * 1000.0
    return attempts, gains, {"seconds": round(seconds, 1), "requests": requests,
                             "attempts_per_s": round(len(attempts) / seconds, 1) if seconds > 0 else None,
                             "client_cpu_ms_per_request": round(cpu_ms / max(requests, 1), 2), "fallbacks": fallbacks}


def _wall_clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def setup_service(stack: ExitStack, world: World, args, arms: list[Arm], run: str, say) -> tuple[Client, dict, object]:
    """Scratch database, catalogue and history, the nightly job, per-arm histories, gunicorn; returns
    the client, the setup's figures and a connection to the scratch database."""
    from app.config import Settings
    from cli.embedded import servers_for
    from harness.databases import connected_scratch_database, scratch_redis_prefix
    from harness.service import running_service
    from jobs.train import TrainConfig, run_training

    settings = stack.enter_context(servers_for(Settings.from_env()))
    url, conn = stack.enter_context(connected_scratch_database(settings.database_url))
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptrec-simulate-")))
    now = _wall_clock()  # the history ends before it; each learner's session starts when played
    setup: dict = {"history_attempts": len(world.history)}
    lines = catalogue_lines(world.catalogue) + history_lines(world, None, now, run)
    setup["import_seconds"] = round(import_lines(conn, lines, folder, "catalogue"), 2)

    config = TrainConfig.from_env(max_trials=args.trials)
    t0 = time.perf_counter()
    report = run_training(url, config, units=[ROOT], progress=False)
    setup["train_seconds"] = round(time.perf_counter() - t0, 1)
    root = next((o for o in report.outcomes if o.unit_id == ROOT and o.objective == "practice"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"training {ROOT!r} did not activate a model: {root}")
    model, baseline = root.metrics.get("model", {}), root.metrics.get("baseline", {})
    setup["model"] = {"status": root.status, "max_trials": config.max_trials, "auc": _r(model.get("auc")),
                      "baseline_auc": _r(baseline.get("auc")), "ece": _r(model.get("ece")),
                      "item_error": root.metrics.get("item_error")}
    say(f"trained {ROOT!r} on {len(world.history)} attempts in {setup['train_seconds']} s: {setup['model']}")

    copies = [line for arm in arms for line in history_lines(world, arm.name, now, run)]
    if copies:
        setup["arm_history_import_seconds"] = round(import_lines(conn, copies, folder, "arms"), 2)

    key = "sim-" + uuid.uuid4().hex
    prefix = stack.enter_context(scratch_redis_prefix(settings.redis_url, "adaptrec-sim"))
    service = stack.enter_context(running_service(url, settings.redis_url, key, folder / "gunicorn.log",
                                                  redis_prefix=prefix, workers=args.workers))
    say(f"gunicorn ready on {service.base_url}")
    return Client(service.base_url, key), setup, conn


def results_in_process(conn, name: str) -> dict:
    """What GET /v1/experiments/{name}/results answers, computed in this process on the scratch
    database, without the service's statement timeout (the route adds only HTTP to it)."""
    from app.serving.context import RequestContext
    from app.serving.experiment_results import results
    from app.serving.model_cache import ModelCache

    try:
        return results(RequestContext(conn, "default", None, ModelCache()), name).as_json()
    finally:
        conn.rollback()


def analyse(conn) -> float:
    """ANALYZE the scratch database (the planner's statistics, as autovacuum would update them in
    time); returns the seconds it took."""
    t0 = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.execute("ANALYZE")
    return time.perf_counter() - t0


def _r(x, digits: int = 4):
    return None if x is None or not math.isfinite(x) else round(float(x), digits)

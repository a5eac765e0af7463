"""Data for the dashboard's browser tests and its benchmark: an experiment with two variants,
recommendations served to learners through the running service and attempts at what was
recommended (outcomes drawn from the predicted p, seeded), then the calibration job, so every
page has something true to show."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.infra.db import connect
from app.infra.jobruns import recorded
from harness.client import http_json

EXPERIMENT = "target-band"
VARIANTS = [{"name": "p50", "weight": 1, "strategy": "target", "params": {"target": 0.5}},
            {"name": "p70", "weight": 1, "strategy": "target", "params": {"target": 0.7}}]


def traffic(base_url: str, key: str, user_ids: list[str], unit_id: str, rounds: int = 3, seed: int = 0,
            experiment: str = EXPERIMENT) -> dict:
    """Create `experiment` (two target variants), then per learner and round: ask for 3 items of
    `unit_id` in the experiment and attempt each, correct with the predicted p. Returns counts."""
    status, body = http_json(base_url, key, "PUT", f"/v1/experiments/{experiment}",
                             {"description": "target 0.5 against 0.7", "variants": VARIANTS})
    assert status == 200, body
    rng = random.Random(seed)
    answers = attempts = 0
    for r in range(rounds):
        for user_id in user_ids:
            status, rec = http_json(base_url, key, "POST", "/v1/recommendations",
                                    {"user_id": user_id, "units": [unit_id], "n": 3, "experiment": experiment})
            assert status == 200, rec
            answers += 1
            events = [{"event_id": f"dash-{seed}-{r}-{user_id}-{i['item_id']}", "user_id": user_id,
                       "item_id": i["item_id"], "kind": "attempt",
                       "outcome": int(rng.random() < i.get("p", 0.5))} for i in rec["items"]]
            if events:
                status, body = http_json(base_url, key, "POST", "/v1/interactions", {"interactions": events})
                assert status in (200, 201), body
                attempts += len(events)
    return {"answers": answers, "attempts": attempts}


def wait_until_logged(database_url: str, answers: int, experiment: str = EXPERIMENT, timeout_s: float = 10.0,
                      tenant: str = "default") -> int:
    """Wait until the service's workers have written `answers` answers of `experiment` to
    recommendation_log (they write their buffers every 0.5 s, app/serving/recommendation_log.py); returns
    how many are there (fewer only after the timeout)."""
    deadline = time.monotonic() + timeout_s
    conn = connect(database_url)
    conn.autocommit = True
    try:
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM recommendation_log WHERE tenant = %s AND experiment = %s",
                            (tenant, experiment))
                logged = cur.fetchone()[0]
            if logged >= answers or time.monotonic() > deadline:
                return logged
            time.sleep(0.1)
    finally:
        conn.close()


def calibrate(database_url: str, out_dir: Path, tenant: str = "default") -> int:
    """`adaptrec calibrate` over the two days up to tomorrow (so it covers the traffic just sent),
    recorded as a job run; returns how many (model, variant) groups it reported."""
    from jobs.calibrate import run

    end = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with recorded(database_url, "calibrate", tenant, days=2) as job:
        conn = connect(database_url)
        try:
            report = run(conn, end - timedelta(days=2), end, out_dir, tenant=tenant)
        finally:
            conn.close()
        job.detail = {"groups": len(report.groups)}
    return len(report.groups)

"""The soak benchmark: its traffic mix and its figures (one short real run against a real service:
tests/slow/test_soak_bench.py)."""
from __future__ import annotations

import json
import os
import socket

import pytest

from bench.soak.figures import memory_growth, summarise_requests
from bench.soak.traffic import Traffic, parse_mix
from harness.measure import find_gunicorn_master

IDS = {"users": ["u1", "u2"], "units": ["demo", "demo.math"],
       "items": [("demo.math.1.1.q1", "question"), ("demo.math.1.1.video", "video")]}
EVEN = "recommend=1,ingest=1,similar=1,trending=1"


def test_mix_weights_are_shares_of_the_known_kinds():
    assert parse_mix("recommend=60,ingest=20,similar=10,trending=10") == pytest.approx(
        {"recommend": 0.6, "ingest": 0.2, "similar": 0.1, "trending": 0.1})
    assert parse_mix("ingest=1") == {"recommend": 0.0, "ingest": 1.0, "similar": 0.0, "trending": 0.0}
    for bad in ("recommend", "nope=1", "ingest=x", "ingest=-1", "ingest=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_every_request_of_the_mix_is_valid_and_deterministic():
    traffic = Traffic(IDS, parse_mix(EVEN), run="r1", seed=3, retry_share=0)
    requests = [traffic(i) for i in range(400)]
    again = Traffic(IDS, parse_mix(EVEN), run="r1", seed=3, retry_share=0)
    assert [again(i) for i in reversed(range(400))][::-1] == requests  # request i is the same in any order
    labels = {r[0] for r in requests}
    assert labels == {"recommend", "ingest", "similar", "trending"}
    event_ids = []
    for label, method, path, body in requests:
        if label == "recommend":
            ask = json.loads(body)
            assert method == "POST" and path == "/v1/recommendations"
            assert ask["user_id"] in IDS["users"] and ask["units"][0] in IDS["units"] and ask["n"] == 10
        elif label == "ingest":
            data = json.loads(body)
            events = data.get("interactions", [data])
            assert 1 <= len(events) <= 5 and len({e["user_id"] for e in events}) == 1  # one learner's session
            for e in events:
                assert e["kind"] == ("attempt" if e["item_id"].endswith("q1") else "view")
                assert e["outcome"] in (0, 1) if e["kind"] == "attempt" else e["duration_ms"] > 0
            event_ids += [e["event_id"] for e in events]
        elif label == "similar":
            assert method == "GET" and body is None and path.endswith("/similar?n=10")
        else:
            assert method == "GET" and path.startswith("/v1/trending?n=10")
    assert len(event_ids) == len(set(event_ids))  # fresh event ids


def test_retries_resend_only_ingests_that_were_answered():
    traffic = Traffic(IDS, parse_mix("ingest=1"), run="r1", retry_share=1.0)
    assert traffic(0)[0] == "ingest"  # nothing answered yet: a fresh ingest
    body = traffic(1)[3]
    traffic.answered(body)
    assert traffic(2) == ("ingest_retry", "POST", "/v1/interactions", body)


def test_requests_split_into_warmup_measured_window_kinds_and_timeline():
    rows = [("recommend", 0.5, 50.0, None), ("ingest", 0.9, 1.0, "http 500"),  # warm-up
            ("recommend", 1.0, 2.0, None), ("recommend", 1.5, 4.0, None), ("similar", 2.2, 3.0, "http 429"),
            ("ingest_retry", 2.9, 1.0, None)]
    s = summarise_requests(rows, warmup_s=1.0, duration_s=2.0, interval_s=1.0)
    assert s["requests"] == 4 and s["errors"] == 1 and s["errors_by_status"] == {"http 429": 1}
    assert s["p50_ms"] == 2.0 and s["max_ms"] == 4.0  # latencies of the successful requests only
    assert s["warmup"] == {"requests": 2, "errors": 1, "errors_by_status": {"http 500": 1}}
    assert set(s["kinds"]) == {"recommend", "similar", "ingest_retry"} and s["kinds"]["recommend"]["requests"] == 2
    assert [(t["from_s"], t["requests"], t["errors"]) for t in s["timeline"]] == [(0.0, 2, 0), (1.0, 2, 1)]
    assert s["achieved_rps"] == 1.5 and s["drain_s"] == 0.0  # 3 successes in the 2 s window


def test_a_service_that_falls_behind_shows_in_the_achieved_rate():
    # 10 requests due over 1 s, each answered 1 s later than the one before: the last at 10 s
    rows = [("recommend", i / 10, 1000.0 * (i + 1) - 100.0 * i, None) for i in range(10)]
    s = summarise_requests(rows, warmup_s=0.0, duration_s=1.0, interval_s=1.0)
    assert s["drain_s"] == pytest.approx(9.0) and s["achieved_rps"] == 1.0


def sample(t, master, **workers):
    return {"t_s": t, "master_mb": master, "workers_mb": workers}


def test_memory_growth_of_the_summed_workers_per_worker_and_by_window():
    samples = [sample(0, 30, a=100.0, b=100.0), sample(60, 30, a=104.0, b=100.0), sample(120, 31, a=110.0, b=100.0)]
    g = memory_growth(samples, window_s=60)
    assert g["growth_pct"] == 5.0 and g["per_worker_growth_pct"] == {"a": 10.0, "b": 0.0}
    assert g["window_growth_pct"] == pytest.approx(round((210 - 204) / 204 * 100, 2))  # max last vs max first minute
    assert not g["workers_replaced"]
    replaced = memory_growth([sample(0, 30, a=100.0, b=100.0), sample(5, 30, a=100.0, c=60.0)])
    assert replaced["workers_replaced"] and replaced["per_worker_growth_pct"] == {"a": 0.0} and "reason" in replaced
    assert memory_growth([sample(0, 30, a=1.0)])["growth_pct"] is None


def test_the_gunicorn_master_is_found_by_its_listening_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert find_gunicorn_master(s.getsockname()[1]) == os.getpid()


def test_the_cpu_timeline_gives_each_windows_cores_and_the_hosts_steal():
    from bench.soak.figures import cpu_timeline, machine_times

    samples = [{"t_s": 5.0 * k, "used": {"workers": 0.5 * k + (k >= 6) * 0.5 * (k - 6), "redis": 0.01 * k},
                "machine": (0.9 * k, 0.1 * k * (k > 6), 2.0 * k)} for k in range(13)]
    windows = cpu_timeline(samples, 30.0)
    assert [(w["from_s"], w["to_s"]) for w in windows] == [(0.0, 30.0), (30.0, 60.0)]
    assert windows[0]["cores"] == {"workers": 0.1, "redis": 0.002}     # 3 CPU s over 30 s
    assert windows[1]["cores"]["workers"] == 0.2                       # the second window used twice as much
    assert windows[0]["steal_pct"] == 0.0 and windows[1]["steal_pct"] == pytest.approx(100 * 1.2 / 12, abs=0.1)
    assert windows[0]["machine_busy_pct"] == 45.0
    assert cpu_timeline(samples[:1]) == []
    short = cpu_timeline(samples[:3], 30.0)                             # a last, shorter window is kept
    assert [(w["from_s"], w["to_s"]) for w in short] == [(0.0, 10.0)]
    busy, steal, total = machine_times()                                # this machine's own, read from /proc/stat
    assert 0 <= busy <= total and 0 <= steal <= total

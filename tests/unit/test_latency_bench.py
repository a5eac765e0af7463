"""The latency benchmark's pure helpers: percentiles, the open-loop schedule, the rate search."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bench.latency.phases import Requests, passes, phase_names, phase_rate, search_max_rate
from bench.latency.report import ratios, targets
from bench.request_mix import MixRequests
from harness.load import scheduled_latency, send_times, summarise
from harness.measure import percentile


def test_percentile_matches_numpy_linear():
    rng = np.random.default_rng(0)
    values = list(rng.exponential(3.0, size=997))
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of the input does not matter
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_open_loop_schedule_is_fixed_rate_and_bounded():
    times = send_times(200, 20)
    assert len(times) == 4000
    assert times[0] == 0.0 and times[-1] < 20
    gaps = np.diff(times)
    assert np.allclose(gaps, 1 / 200)
    assert len(send_times(20, 2.5)) == 50
    assert send_times(0, 10) == [] and send_times(100, 0) == []


def test_latency_counts_from_the_scheduled_time_not_the_send():
    # due at 1.000 s; the client was stuck until 1.050 s, the server answered at 1.052 s:
    # the service time is 2 ms but the user waited 52 ms, and 52 ms is what is recorded
    assert scheduled_latency(1.000, 1.052) == pytest.approx(52.0)


def test_summarise_reports_rate_percentiles_and_errors():
    s = summarise([1.0, 2.0, 3.0, 4.0], errors=1, elapsed_s=2.0, rate=2.5, send_lag_ms=[0.1, 0.2])
    assert s["requests"] == 5 and s["errors"] == 1
    assert s["rps"] == 2.0  # successful requests per second
    assert s["p50_ms"] == 2.5 and s["max_ms"] == 4.0 and s["target_rps"] == 2.5
    empty = summarise([], errors=0, elapsed_s=1.0)
    assert empty["p99_ms"] is None and empty["rps"] == 0.0


def test_a_step_passes_only_without_errors_under_the_limit_at_the_rate():
    ok = {"errors": 0, "p99_ms": 20.0, "rps": 199.0, "target_rps": 200}
    assert passes(ok)
    assert not passes({**ok, "errors": 1})
    assert not passes({**ok, "p99_ms": 25.1})
    assert not passes({**ok, "rps": 150.0})  # the service fell behind the schedule
    assert not passes({**ok, "p99_ms": None})


def _fake_measure(capacity_p99):
    tried = []

    def measure(rate):
        tried.append(rate)
        return {"errors": 0, "p99_ms": capacity_p99(rate), "rps": rate, "target_rps": rate}
    return measure, tried


def test_search_steps_up_until_a_failure_then_refines_once():
    measure, tried = _fake_measure(lambda r: 10.0 if r <= 470 else 80.0)
    best, steps = search_max_rate(measure, 200, 100, 2000)
    assert tried == [200, 300, 400, 500, 450]
    assert best == 450 and len(steps) == 5


def test_search_when_the_first_rate_fails_or_nothing_fails():
    measure, tried = _fake_measure(lambda r: 30.0)
    assert search_max_rate(measure, 200, 100, 2000)[0] is None and tried == [200]
    measure, tried = _fake_measure(lambda r: 1.0)
    best, _ = search_max_rate(measure, 200, 100, 500)
    assert best == 500 and tried == [200, 300, 400, 500]


def test_requests_of_each_phase():
    def make(phase):
        return Requests(phase, ["u1", "u2"], ["q1", "q2", "q3"], "bench-5k", "run1")

    method, path, body = make("recommend")(3)
    assert (method, path) == ("POST", "/v1/recommendations")
    assert json.loads(body) == {"user_id": "u2", "units": ["bench-5k"], "n": 10}
    method, path, body = make("ingest_single")(7)
    event = json.loads(body)
    assert path == "/v1/interactions" and event["event_id"] == "bench-run1-s7"
    assert event["item_id"] in {"q1", "q2", "q3"}
    assert event["kind"] == "attempt" and event["outcome"] in (0, 1)
    events = json.loads(make("ingest_batch")(2)[2])["interactions"]
    assert len(events) == 100 and len({e["event_id"] for e in events}) == 100
    method, path, body = make("similar")(0)
    assert method == "GET" and body is None and path.endswith("/similar?n=10")
    with pytest.raises(ValueError):
        make("nope")(0)


def test_mix_requests_draw_learners_and_evict_the_asked_share():
    evicted = []
    make = MixRequests("recommend", [f"u{i}" for i in range(50)], "bench-5k", "default", miss=0.2,
                       evict=lambda tenant, user: evicted.append((tenant, user)), seed=3)
    bodies = [json.loads(make(i)[2]) for i in range(2000)]
    assert {b["strategy"] for b in bodies} == {"target"} and {b["units"][0] for b in bodies} == {"bench-5k"}
    assert len({b["user_id"] for b in bodies}) == 50
    assert 0.17 < len(evicted) / 2000 < 0.23 and make.misses == len(evicted)
    assert {t for t, _ in evicted} == {"default"}
    again = MixRequests("recommend", [f"u{i}" for i in range(50)], "bench-5k", "default", seed=3)
    assert [json.loads(again(i)[2]) for i in range(2000)] == bodies  # deterministic by seed
    method, path, body = MixRequests("topn", ["a b"], "movielens", "movies", miss=0.0)(0)
    assert (method, body) == ("GET", None) and path == "/v1/users/a b/recommendations?units=movielens&n=10"
    with pytest.raises(ValueError):
        MixRequests("nope", ["u"], "x", "default")


def test_targets_hold_as_absolutes_and_as_ratios_of_the_same_run():
    run = {"recommend": {"p50_ms": 2.5, "p99_ms": 12.0, "server_cpu_ms_per_request": {"gunicorn_workers": 1.5}},
           "healthz": {"p50_ms": 2.0, "server_cpu_ms_per_request": {"gunicorn_workers": 0.4}},
           "floor": {"mean_ms": 0.8}, "max_rps_p99_under_25ms": 600, "worker_rss_max_mb": 200,
           "knowledge": {"p50_ms": 4.9}, "mastery": {"p50_ms": 2.9, "p99_ms": 14.0},
           "review": {"p50_ms": 1.0, "p99_ms": 3.0}}
    got = targets(run, before_max_rate=250)
    assert all(got.values()), got
    assert ratios(run) == {"recommend_p50/healthz_p50": 1.25, "worker_cpu/in_process_fit_score": 1.88,
                           "worker_cpu_recommend-healthz_ms": 1.1}
    slow = {**run, "recommend": {"p50_ms": 2.7, "p99_ms": 16.0, "server_cpu_ms_per_request": {"gunicorn_workers": 1.7}},
            "max_rps_p99_under_25ms": 450}
    got = targets(slow, before_max_rate=250)
    assert got["recommend_p99_ms<=15"] is False and got["recommend_p50<=1.3x_healthz_p50"] is False
    assert got["worker_cpu<=2x_in_process_fit_score"] is False and got["max_rps>=2x_before"] is False
    assert got["max_rps_p99_under_25ms>=500"] is False and got["recommend_p50_ms<=3"] is True
    assert targets({})["recommend_p50_ms<=3"] is None and targets(run)["max_rps>=2x_before"] is None


def test_knowledge_mastery_and_review_are_judged_against_their_own_budgets():
    run = {"knowledge": {"p50_ms": 5.2}, "mastery": {"p50_ms": 3.1, "p99_ms": 10.0},
           "review": {"p50_ms": 2.0, "p99_ms": 15.5}}
    got = targets(run)
    assert got["knowledge_p50_ms<=5"] is False
    assert got["mastery_p50_ms<=3"] is False and got["mastery_p99_ms<=15"] is True
    assert got["review_p50_ms<=3"] is True and got["review_p99_ms<=15"] is False
    assert targets({})["knowledge_p50_ms<=5"] is None and targets({})["review_p99_ms<=15"] is None


def test_mastery_review_and_knowledge_requests_of_the_mix():
    learners = [f"u{i}" for i in range(20)]
    for phase, strategy in (("mastery", "mastery"), ("review", "review"), ("recommend", "target")):
        bodies = [json.loads(MixRequests(phase, learners, "bench-5k", "default", seed=1)(i)[2]) for i in range(50)]
        assert {b["strategy"] for b in bodies} == {strategy} and {tuple(b["units"]) for b in bodies} == {("bench-5k",)}
    method, path, body = MixRequests("knowledge", ["mix1-7 x"], ["skill:Equation Solving", "skill:b"], "default",
                                     miss=0.0)(0)
    assert (method, body) == ("GET", None)
    assert path == "/v1/users/mix1-7%20x/knowledge?units=skill:Equation%20Solving,skill:b"
    one_unit = MixRequests("knowledge", ["u"], "bench-20-skills", "default")(0)[1]
    assert one_unit == "/v1/users/u/knowledge?units=bench-20-skills"


def test_knowledge_runs_at_its_own_rate_and_only_with_its_learners():
    args = argparse.Namespace(rate=400.0, batch_rate=20.0, knowledge_rate=200.0, baseline=False, phases=None)
    assert [phase_rate(args, p) for p in ("recommend", "mastery", "review", "knowledge", "ingest_batch")] == \
        [400.0, 400.0, 400.0, 200.0, 20.0]
    names = phase_names(args, {"mix": {"topn_learners": [], "knowledge_learners": ["u"]}})
    assert {"knowledge", "mastery", "review"} <= set(names) and "topn" not in names
    assert "knowledge" not in phase_names(args, {"mix": {"knowledge_learners": []}})
    args.phases = ["recommend", "knowledge", "mastery", "review"]
    assert phase_names(args, {"mix": {"knowledge_learners": ["u"]}}) == args.phases

"""The closed-loop learner simulation end to end: a tiny run of the whole bench against a real service.
(The truth, the baselines and the figures: tests/unit/test_simulate_bench.py.)"""
from __future__ import annotations

import json
import math

import pytest

from bench.simulate import main


def _finite_numbers(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _finite_numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _finite_numbers(v)
    elif isinstance(node, float):
        yield node


def test_a_tiny_closed_loop_run_against_a_real_service(servers, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    monkeypatch.setenv("ADAPTREC_HOME", str(tmp_path))
    out = tmp_path / "simulate.json"
    assert main(["--learners", "6", "--returning-learners", "8", "--items", "60", "--skills", "3",
                 "--history-sessions", "2", "--session-length", "8", "--targets", "0.7", "--ab-learners", "4",
                 "--trials", "1", "--clients", "2", "--explore", "--aa-target", "0.7", "--knowledge",
                 "--knowledge-learners", "2", "--skill-attempts", "4", "--knowledge-cap", "20", "--review-attempts",
                 "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"date", "machine", "command", "config", "seeds", "truth", "setup", "results", "ab", "http",
            "table", "experiment_by_learning"} <= set(report)
    assert report["http"]["errors"] == 0 and report["setup"]["model"]["status"] == "activated"
    figures = report["results"]["0.7"]
    assert set(figures) == {"service", "service, explore", "random", "oracle", "ceiling", "service vs ceiling"}
    assert figures["service, explore"]["attempts"] == 14 * 8
    service = figures["service"]
    assert service["attempts"] == 14 * 8 and service["learners"] == 14
    assert set(service["prediction"]) == {"all", "new", "returning", "new_after_5", "returning_week_away"}
    assert set(service["error_by_attempt"]["new"]) == {"1-5", "6-10"}
    assert figures["oracle"]["gap"]["all"] <= figures["random"]["gap"]["all"]
    assert figures["random"]["attempts"] == figures["oracle"]["attempts"] == 14 * 8
    assert set(report["ab"]["variants"]) <= {"t60", "t80"}
    assert sum(v["learners"] for v in report["ab"]["variants"].values()) == 8
    # the endpoint's results by learning beside the truth: the same learners per variant, too few for a verdict
    judged = report["experiment_by_learning"]
    assert judged["experiment"] == "sim-ab" and judged["verdict"].startswith("the data cannot tell yet")
    assert {n: v["learners"] for n, v in judged["variants"].items()} == {
        n: v["learners"] for n, v in report["ab"]["variants"].items()}
    assert sorted(judged["order"]["true_gain"]) == sorted(report["ab"]["variants"])
    for v in judged["variants"].values():
        assert v["true_gain_per_learner"]["estimate"] > 0 and set(v["learning"]) == {"estimate", "low", "high"}
    assert judged["aa"]["variants"] == ["t70-a", "t70-b"] and sum(judged["aa"]["learners"]) == 8
    assert judged["aa"]["skewed"]["learners_to_flag"] == 4332
    # issue 26's knowledge measurement: 2 new and 2 returning learners, 4 attempts in each of 3 skills
    know = report["knowledge"]
    assert know["http"]["errors"] == 0 and know["model"]["models"][0]["unit_id"] == "sim"
    assert [t["skill"] for t in know["typical_items"]] == ["sim:s1", "sim:s2", "sim:s3"]
    assert know["after_practice"]["pairs"] == know["after_week_away"]["pairs"] == 4 * 3
    for part in ("after_practice", "after_week_away"):
        assert 0 <= know[part]["coverage"]["covered"] <= 1 and know[part]["mean_width"] > 0
    race = know["mastery_vs_target"]
    assert race["learners"] == 4 and set(race) >= {"mastery", "target", "ratio"}
    for strategy in ("mastery", "target"):
        assert race[strategy]["reached"] + race[strategy]["censored_at_cap"] == 4
        assert race[strategy]["mean"] <= 20
    review = know["review"]
    assert review["learners"] == 4 and review["target_attempts_made"] == review["attempts_made"] <= 4 * 4
    assert "| after practice: Spearman" in know["table"]
    values = list(_finite_numbers(report))
    assert values and all(math.isfinite(v) for v in values)
    assert figures["oracle"]["gap"]["all"] <= figures["ceiling"]["gap"]["all"] <= figures["random"]["gap"]["all"]
    assert set(figures["ceiling"]["prediction"]) == set(service["prediction"])
    versus = figures["service vs ceiling"]
    assert versus["gap"]["all"] == pytest.approx(service["gap"]["all"] - figures["ceiling"]["gap"]["all"], abs=2e-4)
    for name, fig in figures.items():
        if name == "service vs ceiling":
            continue
        assert 0 <= fig["gap"]["all"] <= 1 and 0 <= fig["success_rate"]["all"] <= 1
        assert fig["learning_gain"]["all"] > 0  # practice teaches under every policy


def test_when_the_results_endpoint_fails_the_run_says_so_and_reports_the_results_computed_in_process(
        servers, tmp_path, monkeypatch):
    import bench.simulate_service as service

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    monkeypatch.setenv("ADAPTREC_HOME", str(tmp_path))
    call = service.Client.call

    def refused(self, method, path, body=None):   # as the service answers when its statement timeout strikes
        if path.endswith("/results"):
            self.requests += 1
            self.errors.append(f"{method} {path}: 503")
            return 503, {"detail": "the database is not answering; retry shortly"}
        return call(self, method, path, body)
    monkeypatch.setattr(service.Client, "call", refused)
    out = tmp_path / "simulate.json"
    assert main(["--learners", "4", "--returning-learners", "4", "--items", "40", "--skills", "2",
                 "--history-sessions", "1", "--session-length", "6", "--targets", "0.7", "--ab-learners", "4",
                 "--trials", "1", "--clients", "2", "--json", str(out)]) == 1   # an HTTP error: exit 1
    report = json.loads(out.read_text())
    judged = report["experiment_by_learning"]
    assert judged["results"]["source"] == "in-process" and judged["results"]["endpoint_failed"]["status"] == 503
    assert sum(v["learners"] for v in judged["variants"].values()) == 8
    assert {n: v["attempts"] for n, v in judged["variants"].items()} == {   # the first attempt is before joining
        n: v["attempts"] - v["learners"] for n, v in report["ab"]["variants"].items()}

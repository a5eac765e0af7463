"""The replay benchmark end to end: a tiny replay through the real import job, training job and service
against real Postgres and Redis, for both protocols. (Its pure parts: tests/unit/test_replay.py.)"""
from __future__ import annotations

import pandas as pd
import pytest

from bench.attempts import demo_attempts, few_attempts_slice, write_attempts
from bench.compare import ROLES


@pytest.mark.parametrize("protocol", ["learner", "production"])
def test_a_tiny_replay_through_the_real_import_job_and_service(servers, tmp_path, monkeypatch, protocol):
    """The whole bench on a small demo file: both protocols run end to end against real Postgres and
    Redis, every method is scored on the same replayed attempts, and nothing is left in Redis."""
    import json

    from bench.replay import main

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    monkeypatch.setenv("ADAPTREC_HOME", str(tmp_path))
    data, out, preds = tmp_path / "demo.csv.gz", tmp_path / "replay.json", tmp_path / "p.csv.gz"
    write_attempts(demo_attempts(80, 6000), data)
    assert main(["--data", str(data), "--protocol", protocol, "--max-test-students", "4", "--quiet", "--knowledge",
                 "--json", str(out), "--predictions", str(preds)]) == 0
    report = json.loads(out.read_text())
    # the root, at least: on so little data the skill units' own models rarely beat it on dev
    assert report["protocol"] == protocol and report["training"]["models_activated"] >= 1
    for role in ROLES:
        block = report[role]
        n = report["split"][f"{role}_attempts"]
        assert block["service"]["n"] == n and block["replay"]["attempts"] == n
        assert all(m["n"] == n for m in block["baselines"].values())
        assert block["service_skill_requests"]["n"] == n                # every demo question has a skill
        served = block["replay"]["skill_requests"]                        # each by its unit's or an ancestor's model
        assert served["served_by_the_skills_own_model"] + served["served_by_an_ancestors_model"] == n
        assert {"first attempt at the item", "repeat after a mistake", "history 0"} <= set(block["slices"])
        assert {f"service - {m}" for m in ("elo_tuned", "irt_live", "best_lr", "pfa")} <= set(
            block["service_vs_baselines"])
        assert {"best_lr", "pfa"} <= set(block["baselines"]) and few_attempts_slice() in block["slices"]
        assert {"best_lr", "pfa"} <= set(block["slices"]["repeat after a mistake"])
        known = block["knowledge"]           # --knowledge: every first attempt at an item, its skills' p
        firsts = block["slices"]["first attempt at the item"]["service"]["n"]
        assert known["attempts"] == known["first_skill"]["n"] == known["item_level_same_attempts"]["n"] == firsts
        assert known["every_skill"]["n"] >= firsts and 0 < known["every_skill"]["mean_p"] < 1
        assert block["replay"]["knowledge_requests"]["requests"] == firsts
    assert [r["method"] for r in report["dev_test_table"]][:2] == ["service", "service_skill_requests"]
    assert report["redis_keys_deleted"] > 0 and report["training"]["parent_comparison"]["units_compared"] >= 1
    assert {"models_failed", "units_served_by_ancestor", "units_skipped"} <= set(report["training"])
    assert report["baseline_constants"]["knowledge_tracing"]["pfa"]["chosen_on"] == "dev"
    assert report["targets"]["knowledge_ece_at_most"] == 0.02 and report["config"]["knowledge_requests"]
    written = pd.read_csv(preds)
    assert len(written) == sum(report["split"][f"{r}_attempts"] for r in ROLES)
    if protocol == "production":
        cut = report["production_cut"]
        assert sum(cut[f"{r}_returning_attempts"] + cut[f"{r}_new_attempts"] for r in ROLES) == len(written)
        assert {"returning learners", "new learners"} <= set(report["test"]["slices"])
        assert report["config"]["hold_out_test_learners"] is False and "full_retrain" not in report
    else:
        assert "full_retrain" in report["test"]

"""bench.xapi_equivalence, small: the demo written as xAPI statements, imported through the CLI (and a
few learners through POST /xapi/statements), gives the native import's interactions, models and
recommendations exactly."""
from __future__ import annotations

import json

import pytest

from bench.xapi_equivalence import main

pytestmark = pytest.mark.slow  # two databases, a CLI subprocess, two trainings


def test_the_demo_as_xapi_statements_gives_the_native_interactions_models_and_answers(servers, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    out = tmp_path / "equivalence.json"
    status = main(["--learners", "40", "--attempts", "2000", "--units", "demo", "--sample", "20",
                   "--http-learners", "3", "--json", str(out)])
    report = json.loads(out.read_text())
    interactions = report["interactions"]
    assert interactions["all"]["a"] == 2500 and interactions["all"]["identical"], interactions["all"]
    assert interactions["http_learners"]["a"] > 0 and interactions["http_learners"]["identical"]
    assert interactions["event_ids_not_the_statement_ids"] == 0 and interactions["unmappable"] == {}
    assert report["statements"]["http"]["statements"] == interactions["http_learners"]["a"]
    assert report["statements"]["http"]["ids_answered_in_order"]
    assert report["statements"]["file"] + report["statements"]["http"]["statements"] == 2500
    assert all(table["identical"] and table["a"] > 0 for table in report["catalogue"].values()), report["catalogue"]
    assert report["training"]["a"]["outcomes"] == report["training"]["b"]["outcomes"] == {
        "demo/practice": "activated", "demo/engagement": "activated"}
    assert set(report["models"]) == {"demo/practice", "demo/engagement"}
    for name, model in report["models"].items():
        assert model["identical"] and model["item_ids_equal"], (name, model)
        assert all(diff == 0.0 for diff in model["max_abs_diff"].values()), (name, model)
    recs = report["recommendations"]
    assert recs["learners"] >= 20 and recs["requests"] == 2 * recs["learners"]
    assert recs["differing"] == 0 and recs["empty_answers"] == 0, recs["first_difference"]
    assert report["identical"] and status == 0

"""The soak benchmark end to end: one short real run against a real service. (Its traffic mix and
figures: tests/unit/test_soak_bench.py.)"""
from __future__ import annotations

import json

import pytest

from bench.soak import main


def test_a_short_soak_of_a_real_service(servers, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    monkeypatch.setenv("ADAPTREC_HOME", str(tmp_path))
    out = tmp_path / "soak.json"
    assert main(["--minutes", "0.1", "--rate", "20", "--warmup-s", "2", "--sample-s", "1", "--progress-s", "60",
                 "--settle-max", "0",
                 "--demo-learners", "100", "--demo-attempts", "5000", "--demo-engagements", "500",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"requests", "errors", "p99_ms", "memory_growth_pct", "achieved_rps", "kinds", "timeline",
            "memory", "config"} <= set(report)
    assert report["errors"] == 0 and report["warmup"]["errors"] == 0, report["error_samples"]
    assert report["requests"] == pytest.approx(20 * 6, abs=2) and report["achieved_rps"] == pytest.approx(20, abs=1)
    assert set(report["kinds"]) >= {"recommend", "ingest", "similar", "trending"}
    assert report["p99_ms"] > 0 and report["memory_growth_pct"] is not None
    assert len(report["memory"]["samples"]) >= 5 and len(report["memory"]["per_worker_growth_pct"]) == 2
    assert "errors: 0" in capsys.readouterr().out

"""bench.xapi_ingest end to end, small: a real gunicorn, both ingest paths, singles and the import,
every figure present and every request answered 2xx."""
from __future__ import annotations

import json

from bench.xapi_ingest import main


def test_a_short_xapi_ingest_bench_measures_both_paths_and_the_import(servers, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", servers[0])
    monkeypatch.setenv("ADAPTREC_REDIS_URL", servers[1])
    out = tmp_path / "xapi.json"
    assert main(["--batches", "4", "--rounds", "2", "--clients", "2", "--singles", "5", "--import-rows", "300",
                 "--settle-max", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    http = report["http"]
    for path in ("native_batches", "xapi_batches"):
        assert http[path]["events"] == 400 and http[path]["errors"] == 0 and http[path]["per_second"] > 0
        assert len(http[path]["per_round"]) == 2
    assert http["xapi_vs_native"] == round(http["xapi_batches"]["per_second"] / http["native_batches"]["per_second"], 3)
    assert http["xapi_single"]["requests"] == 5 and 0 < http["xapi_single"]["p50_ms"] <= http["xapi_single"]["p99_ms"]
    imported = report["import"]
    assert imported["rows"] == 300 and imported["created"]["interactions"] == 300
    assert imported["rerun_created"] == {"xapi duplicates": 300}
    assert report["commit"] and report["machine"] and len(report["load_before"]) == 3

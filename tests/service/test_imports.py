"""The import formats against a real Postgres: what each imports, that a re-run adds nothing,
and that every kind of malformed or cut-off file fails naming file, line and column while
leaving nothing of that file behind."""
from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.main import main
from jobs.importers import run_import
from jobs.importers.common import ImportFailed
from jobs.importers.jsonl import derived_event_id

TABLES = ("users", "items", "units", "unit_children", "unit_items", "interactions")


# ---- helpers ----------------------------------------------------------------------------
def counts(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        result = {}
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            result[table] = cur.fetchone()[0]
    return result


def one(conn, sql: str, *params):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def column(conn, sql: str, *params) -> list:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [r[0] for r in cur.fetchall()]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(encoding)))
    else:
        path.write_bytes(text.encode(encoding))
    return path


def import_twice(conn, fmt: str, path: Path, **kwargs):
    """Import, then import again: the second run must create nothing."""
    first, = run_import(conn, fmt, [path], progress=False, **kwargs)
    after_first = counts(conn)
    again, = run_import(conn, fmt, [path], progress=False, **kwargs)
    assert sum(again.created.values()) == 0, again.created
    assert counts(conn) == after_first
    return first


def assert_fails(conn, fmt: str, path: Path, where: str, *fragments: str) -> ImportFailed:
    """The import raises ImportFailed starting `where` (file:line[:column]) and leaves nothing."""
    with pytest.raises(ImportFailed) as failure:
        run_import(conn, fmt, [path], progress=False)
    assert str(failure.value).startswith(where + (":" if where == str(path) else ": ")), str(failure.value)
    for fragment in fragments:
        assert fragment in str(failure.value), str(failure.value)
    assert counts(conn) == dict.fromkeys(TABLES, 0)
    return failure.value


def truncated_gzip(path: Path, text: str) -> Path:
    """`text` gzipped and cut in the middle of the compressed stream."""
    data = gzip.compress(text.encode(), compresslevel=1)
    path.write_bytes(data[: len(data) // 2])
    return path


# ---- assistments ------------------------------------------------------------------------
ASSIST = """user_id,seq,problem_id,correct,skills
14,0,93383,0,Circle Graph|Percent Of
14,1,93407,1,Circle Graph|Percent Of
14,2,500,1,
21,0,93383,1,Circle Graph|Percent Of
21,1,66813,0,"Order of Operations +,-,/,* () positive reals"
"""


@pytest.mark.parametrize("name", ["attempts.csv", "attempts.csv.gz"])
def test_assistments_imports_attempts_problems_and_skills(conn, tmp_path, name):
    report = import_twice(conn, "assistments", write(tmp_path / name, ASSIST))
    assert report.rows_read == 5
    assert counts(conn) == {"users": 2, "items": 4, "units": 4, "unit_children": 3, "unit_items": 6,
                            "interactions": 5}
    assert one(conn, "SELECT user_id, item_id, kind, outcome, value, occurred_at FROM interactions "
                     "WHERE event_id = 'assist:14:1'") == (
        "14", "93407", "attempt", 1, None, datetime(2009, 9, 1, 0, 1, tzinfo=UTC))
    assert one(conn, "SELECT kind, attrs FROM items WHERE item_id = '93383'") == (
        "question", {"skills": ["Circle Graph", "Percent Of"]})
    assert one(conn, "SELECT name, kind FROM units WHERE unit_id = 'assistments'") == ("ASSISTments 2009", "root")
    quoted = "Order of Operations +,-,/,* () positive reals"  # a skill with commas, quoted in the CSV
    assert one(conn, "SELECT name, kind FROM units WHERE unit_id = %s", f"skill:{quoted}") == (quoted, "skill")
    assert column(conn, "SELECT child FROM unit_children WHERE parent = 'assistments' ORDER BY child") == [
        "skill:Circle Graph", "skill:Order of Operations +,-,/,* () positive reals", "skill:Percent Of"]
    assert column(conn, "SELECT unit_id FROM unit_items WHERE item_id = '93383' ORDER BY 1") == [
        "skill:Circle Graph", "skill:Percent Of"]
    # A problem without skills sits directly under the root.
    assert column(conn, "SELECT unit_id FROM unit_items WHERE item_id = '500'") == ["assistments"]


def test_assistments_id_prefix_keeps_data_sets_apart(conn, tmp_path):
    path = write(tmp_path / "a.csv", ASSIST)
    run_import(conn, "assistments", [path], progress=False)
    run_import(conn, "assistments", [path], id_prefix="b/", progress=False)
    assert counts(conn)["interactions"] == 10
    assert one(conn, "SELECT user_id, item_id FROM interactions WHERE event_id = 'assist:b/14:0'") == (
        "b/14", "b/93383")
    assert column(conn, "SELECT unit_id FROM unit_items WHERE item_id = 'b/500'") == ["b/assistments"]
    assert one(conn, "SELECT 1 FROM unit_children WHERE parent = 'b/assistments' AND child = 'b/skill:Percent Of'")


def test_assistments_accepts_columns_in_any_order(conn, tmp_path):
    path = write(tmp_path / "a.csv", "skills,correct,problem_id,seq,user_id\nAlgebra,1,p1,3,u1\n")
    run_import(conn, "assistments", [path], progress=False)
    assert one(conn, "SELECT event_id, user_id, item_id, outcome FROM interactions") == ("assist:u1:3", "u1", "p1", 1)


HEADER = "user_id,seq,problem_id,correct,skills\n"


@pytest.mark.parametrize("body, where, fragment", [
    ("14,0,1,1,A\n14,1,2,x,A\n", ":3:4", "correct must be 0 or 1, got 'x'"),
    ("14,0,1,1,A\n14,-1,2,1,A\n", ":3:2", "seq must be a whole number"),
    ("14,0,1,1,A\n14,1,2,1\n", ":3:5", "expected 5 fields"),
    ("14,0,1,1,A\n14,1,2,1,A,extra\n", ":3:6", "expected 5 fields"),
    ("14,0,1,1,A\n,1,2,1,A\n", ":3:1", "user_id must be 1-256 characters"),
    ("14,0,1,1,A\n14,1,2,1,Circle Gr", ":3", "no line break"),   # cut mid-line
    ("14,0,1,1,A\n14,1,9", ":3:4", "expected 5 fields"),          # cut mid-line, earlier
], ids=["bad-correct", "bad-seq", "missing-column", "extra-column", "empty-id", "cut-in-last-field",
        "cut-in-third-field"])
def test_assistments_malformed_rows_fail_naming_line_and_column(conn, tmp_path, body, where, fragment):
    path = write(tmp_path / "bad.csv", HEADER + body)
    assert_fails(conn, "assistments", path, f"{path}{where}", fragment)


def test_assistments_bad_header_fails_on_line_1(conn, tmp_path):
    path = write(tmp_path / "bad.csv", "user,seq,problem,correct,skills\n14,0,1,1,A\n")
    assert_fails(conn, "assistments", path, f"{path}:1", "lacks user_id, problem_id")


def test_assistments_empty_file_fails(conn, tmp_path):
    path = write(tmp_path / "empty.csv", "")
    assert_fails(conn, "assistments", path, f"{path}:1", "empty")


@pytest.mark.parametrize("name", ["latin1.csv", "latin1.csv.gz"])
def test_assistments_text_that_is_not_utf8_fails_on_its_line(conn, tmp_path, name):
    path = write(tmp_path / name, HEADER + "14,0,1,1,A\n14,1,2,1,G\xe9om\xe9trie\n", encoding="latin-1")
    assert_fails(conn, "assistments", path, f"{path}:3", "not utf-8 text: byte 11 of the line")


def test_assistments_truncated_gzip_fails_naming_the_line_it_stops_at(conn, tmp_path):
    rows = "".join(f"{u},{s},{u * 100 + s},{s % 2},Skill {s % 7}\n" for u in range(200) for s in range(50))
    path = truncated_gzip(tmp_path / "cut.csv.gz", HEADER + rows)
    failure = assert_fails(conn, "assistments", path, str(path), "truncated")
    assert 2 < failure.line < 10_002 and str(failure).startswith(f"{path}:{failure.line}: the file ends early")


def test_a_failed_file_leaves_earlier_files_of_the_run_imported(conn, tmp_path):
    good = write(tmp_path / "good.csv", ASSIST)
    bad = write(tmp_path / "bad.csv", HEADER + "9,0,1,2,A\n")
    with pytest.raises(ImportFailed, match=r"bad\.csv:2:4"):
        run_import(conn, "assistments", [good, bad], progress=False)
    assert counts(conn)["interactions"] == 5
    assert column(conn, "SELECT user_id FROM users ORDER BY 1") == ["14", "21"]


# ---- movielens --------------------------------------------------------------------------
GENRES = "unknown|0\nAction|1\nComedy|2\n\n"
MOVIES = ("1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|1\n"
          "2|GoldenEye (1995)|01-Jan-1995||http://imdb/2|0|1|0\n"
          "3|Cité des enfants perdus, La (1995)|01-Jan-1995||http://imdb/3|0|1|1\n"
          "4|unknown||||1|0|0\n")
PEOPLE = "1|24|M|technician|85711\n2|53|F|other|94043\n"
RATINGS = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t3\t4\t891717742\n2\t1\t1\t878887116\n3\t4\t2\t878887117\n"


def movielens_folder(root: Path, **files: str) -> Path:
    folder = root / "ml-100k"
    contents = {"u.genre": GENRES, "u.item": MOVIES, "u.user": PEOPLE, "u.data": RATINGS}
    contents.update({name.replace("_", "."): text for name, text in files.items()})
    for name, text in contents.items():
        if text is not None:
            write(folder / name, text, encoding="latin-1")
    return folder


def test_movielens_imports_movies_genres_users_and_ratings(conn, tmp_path):
    report = import_twice(conn, "movielens", movielens_folder(tmp_path))
    assert report.rows_read == 3 + 4 + 2 + 5
    assert counts(conn) == {"users": 3, "items": 4, "units": 4, "unit_children": 3, "unit_items": 5,
                            "interactions": 5}
    assert one(conn, "SELECT kind, title, attrs FROM items WHERE item_id = '1'") == (
        "movie", "Toy Story (1995)", {"genres": ["Comedy"], "release_date": "1995-01-01",
                                      "imdb_url": "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"})
    assert one(conn, "SELECT title FROM items WHERE item_id = '3'") == ("Cité des enfants perdus, La (1995)",)
    assert one(conn, "SELECT attrs FROM items WHERE item_id = '4'")[0]["release_date"] is None
    assert column(conn, "SELECT unit_id FROM unit_items WHERE item_id = '3' ORDER BY 1") == [
        "genre:Action", "genre:Comedy"]
    assert one(conn, "SELECT kind, name FROM units WHERE unit_id = 'movielens'") == ("root", "MovieLens")
    assert one(conn, "SELECT attrs FROM users WHERE user_id = '2'") == (
        {"age": 53, "gender": "F", "occupation": "other", "zip": "94043"},)
    assert one(conn, "SELECT user_id, item_id, kind, value, outcome, occurred_at FROM interactions "
                     "WHERE event_id = 'ml:2:3:891717742'") == (
        "2", "3", "rating", 4.0, 1, datetime.fromtimestamp(891717742, UTC))
    assert column(conn, "SELECT outcome FROM interactions WHERE user_id = '1' ORDER BY item_id") == [1, 0]


def test_movielens_accepts_one_ratings_file_of_the_folder(conn, tmp_path):
    folder = movielens_folder(tmp_path, ua_base="1\t2\t4\t881250950\n")
    run_import(conn, "movielens", [folder / "ua.base"], progress=False)
    assert counts(conn)["interactions"] == 1 and counts(conn)["items"] == 4


@pytest.mark.parametrize("files, where, fragment", [
    ({"u_data": RATINGS + "3\t2\t7\t878887118\n"}, "u.data:6:3", "rating must be a number from 0.5 to 5, got '7'"),
    ({"u_data": RATINGS + "3\t99\t4\t878887118\n"}, "u.data:6:2", "item id '99' is not a movie"),
    ({"u_data": RATINGS + "3\t2\t4\tyesterday\n"}, "u.data:6:4", "timestamp must be whole seconds"),
    ({"u_data": RATINGS + "3\t2\t4\n"}, "u.data:6:4", "expected 4 fields"),
    ({"u_data": RATINGS + "3\t2\t4\t87888"}, "u.data:6", "no line break"),
    ({"u_item": MOVIES + "5|Heat (1995)|01-Jan-1995||http://imdb/5|0|1\n"}, "u.item:5:8", "expected 8 fields"),
    ({"u_item": MOVIES + "5|Heat (1995)|01-Jan-1995||http://imdb/5|0|1|2\n"}, "u.item:5:8",
     "genre flag must be 0 or 1"),
    ({"u_item": MOVIES + "5|Heat (1995)|1995/01/01||http://imdb/5|0|1|0\n"}, "u.item:5:3", "release date"),
    ({"u_user": PEOPLE + "3|old|M|writer|32067\n"}, "u.user:3:2", "age must be a whole number"),
    ({"u_genre": "unknown|0\nAction|2\n"}, "u.genre:2:2", "genre index must be 1"),
], ids=["bad-rating", "unknown-movie", "bad-timestamp", "missing-column", "cut-last-line", "short-movie-row",
        "bad-genre-flag", "bad-date", "bad-age", "genre-gap"])
def test_movielens_malformed_files_fail_and_import_nothing_of_the_folder(conn, tmp_path, files, where, fragment):
    folder = movielens_folder(tmp_path, **files)
    assert_fails(conn, "movielens", folder, f"{folder}/{where}", fragment)


def test_movielens_without_u_item_is_refused(conn, tmp_path):
    folder = movielens_folder(tmp_path, u_item=None)
    assert_fails(conn, "movielens", folder, f"{folder}/u.item", "missing")


# ---- totara -----------------------------------------------------------------------------
TOTARA_ITEMS = ("item_id,python,sql,document\n"
                "engage_article1,1,0,intro to python lists\n"
                "engage_article2,1,1,\"querying data, with joins\"\n"
                "totara_playlist3,0,0,misc\n")
TOTARA_USERS = "user_id,lang\n2,en\n3,fr\n"
TOTARA_INTERACTIONS = ("user_id,item_id,rating,timestamp\n"
                       "2,engage_article1,1,1600000000\n"
                       "2,engage_article2,0,1600000100\n"
                       "3,engage_article1,0,1600000200\n"
                       "4,totara_playlist3,1,1600000300\n")


def totara_folder(root: Path, items=TOTARA_ITEMS, users=TOTARA_USERS, interactions=TOTARA_INTERACTIONS) -> Path:
    folder = root / "export"
    for name, text in (("item_data.csv", items), ("user_data.csv", users),
                       ("user_interactions.csv", interactions)):
        if text is not None:
            write(folder / name, text)
    return folder


def test_totara_imports_topics_items_users_and_interactions(conn, tmp_path):
    report = import_twice(conn, "totara", totara_folder(tmp_path))
    assert report.rows_read == 3 + 2 + 4
    # units: the root, two topics, two component units (no component column: the component is the
    # id's, as Totara writes ids); every item is in the root and its component unit too
    assert counts(conn) == {"users": 3, "items": 3, "units": 5, "unit_children": 4, "unit_items": 9,
                            "interactions": 4}
    assert one(conn, "SELECT kind, body, attrs FROM items WHERE item_id = 'engage_article2'") == (
        "engage_article", "querying data, with joins", {"topics": ["python", "sql"]})
    assert "3 items took their Totara component from the id" in report.summary()
    assert one(conn, "SELECT body, attrs FROM items WHERE item_id = 'totara_playlist3'") == ("misc", {"topics": []})
    assert column(conn, "SELECT child FROM unit_children WHERE parent = 'totara' ORDER BY 1") == [
        "component:engage_article", "component:totara_playlist", "topic:python", "topic:sql"]
    assert column(conn, "SELECT item_id FROM unit_items WHERE unit_id = 'topic:python' ORDER BY 1") == [
        "engage_article1", "engage_article2"]
    assert one(conn, "SELECT attrs FROM users WHERE user_id = '3'") == ({"lang": "fr"},)
    assert one(conn, "SELECT attrs FROM users WHERE user_id = '4'") == ({},)
    assert one(conn, "SELECT user_id, item_id, kind, value, outcome, occurred_at FROM interactions "
                     "WHERE event_id = 'totara:2:engage_article1:1600000000'") == (
        "2", "engage_article1", "interaction", 1.0, 1, datetime.fromtimestamp(1600000000, UTC))


def test_totara_item_type_column_gives_the_kind(conn, tmp_path):
    items = "item_id,type,python,document\nc1,course,1,a course\nw1,workspace,0,a space\n"
    interactions = "user_id,item_id,rating,timestamp\n2,c1,1,1600000000\n"
    report, = run_import(conn, "totara", [totara_folder(tmp_path, items=items, interactions=interactions)],
                         progress=False)
    assert column(conn, "SELECT kind FROM items ORDER BY item_id") == ["course", "workspace"]
    # kinds that are not Totara's components: Totara's /user-items could never be answered
    assert len(report.warnings) == 1 and "none of its 2 items has a Totara component" in report.warnings[0]
    assert column(conn, "SELECT unit_id FROM units WHERE kind = 'topic'") == ["topic:python"]


def test_totara_items_without_a_component_among_others_are_a_warning(conn, tmp_path):
    items = TOTARA_ITEMS + "lesson4,0,0,no component in the id\n"
    report, = run_import(conn, "totara", [totara_folder(tmp_path, items=items)], progress=False)
    assert one(conn, "SELECT kind FROM items WHERE item_id = 'lesson4'") == ("content",)
    assert report.warnings == ["1 of the 4 items of item_data.csv have no Totara component ('lesson4', ...: no "
                               "component column and an id that starts with none): /user-items never recommends them"]
    assert "3 items took their Totara component from the id" in report.summary()


def test_totara_interactions_may_name_items_already_in_the_database(conn, tmp_path):
    run_import(conn, "totara", [totara_folder(tmp_path / "first")], progress=False)
    later = totara_folder(tmp_path / "later", items=None, users=None,
                          interactions="user_id,item_id,rating,timestamp\n9,engage_article2,1,1700000000\n")
    run_import(conn, "totara", [later], progress=False)
    assert counts(conn)["interactions"] == 5


@pytest.mark.parametrize("files, where, fragment", [
    ({"interactions": TOTARA_INTERACTIONS + "4,engage_article1,2,1600000400\n"},
     "user_interactions.csv:6:3", "rating must be 0 (leisurely) or 1 (positive), got '2'"),
    ({"interactions": TOTARA_INTERACTIONS + "4,engage_article9,1,1600000400\n"},
     "user_interactions.csv:6:item_id", "unknown item 'engage_article9'"),
    ({"interactions": TOTARA_INTERACTIONS + "4,engage_article1,1\n"}, "user_interactions.csv:6:4", "expected 4 fields"),
    ({"interactions": TOTARA_INTERACTIONS + "4,engage_article1,1,16000"}, "user_interactions.csv:6", "no line break"),
    ({"interactions": "user,item,rating,timestamp\n2,engage_article1,1,1600000000\n"}, "user_interactions.csv:1",
     "lacks user_id, item_id"),
    ({"items": TOTARA_ITEMS + "bad,1,0\n"}, "item_data.csv:5:4", "expected 4 fields"),
    ({"items": "item_id,type,document\nx1,Engage Article,text\n"}, "item_data.csv:2:2", "item type"),
    ({"users": "id,lang\n2,en\n"}, "user_data.csv:1", "lacks user_id"),
], ids=["bad-rating", "unknown-item", "missing-column", "cut-last-line", "bad-header", "short-item-row",
        "bad-type", "users-without-id"])
def test_totara_malformed_files_fail_and_import_nothing_of_the_folder(conn, tmp_path, files, where, fragment):
    folder = totara_folder(tmp_path, **files)
    assert_fails(conn, "totara", folder, f"{folder}/{where}", fragment)


def test_totara_folder_without_interactions_is_refused(conn, tmp_path):
    folder = totara_folder(tmp_path, interactions=None)
    assert_fails(conn, "totara", folder, f"{folder}/user_interactions.csv", "missing")


# ---- jsonl ------------------------------------------------------------------------------
JSONL_OBJECTS = [
    {"type": "unit", "unit_id": "math", "name": "Mathematics", "kind": "subject", "children": ["algebra"]},
    {"type": "unit", "unit_id": "algebra", "kind": "chapter", "items": ["q2", "q1"]},
    {"type": "item", "item_id": "q1", "title": "Solve x + 1 = 2", "attrs": {"difficulty": "easy"}},
    {"type": "item", "item_id": "q2", "kind": "question", "body": "Factor x^2 - 1", "units": ["math"]},
    {"type": "item", "item_id": 3, "kind": "video", "active": False},
    {"type": "user", "user_id": "ann", "attrs": {"lang": "en"}},
    {"type": "interaction", "event_id": "e-1", "user_id": "ann", "item_id": "q1", "outcome": 1,
     "duration_ms": 5300, "occurred_at": "2024-03-01T10:00:00Z"},
    {"type": "interaction", "user_id": "bob", "item_id": "3", "kind": "view", "value": 0.5,
     "response": {"seconds_watched": 12}, "occurred_at": "2024-03-01T11:00:00+01:00"},
]


def jsonl_text(objects) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


@pytest.mark.parametrize("name", ["catalogue.jsonl", "catalogue.jsonl.gz"])
def test_jsonl_imports_every_type_and_links(conn, tmp_path, name):
    path = write(tmp_path / name, jsonl_text(JSONL_OBJECTS[:4]) + "\n   \n" + jsonl_text(JSONL_OBJECTS[4:]))
    report = import_twice(conn, "jsonl", path)
    assert report.rows_read == 8
    assert counts(conn) == {"users": 2, "items": 3, "units": 2, "unit_children": 1, "unit_items": 3,
                            "interactions": 2}
    assert one(conn, "SELECT name, kind FROM units WHERE unit_id = 'math'") == ("Mathematics", "subject")
    assert column(conn, "SELECT child FROM unit_children WHERE parent = 'math'") == ["algebra"]
    assert column(conn, "SELECT item_id || '@' || position FROM unit_items WHERE unit_id = 'algebra' ORDER BY position"
                  ) == ["q2@0", "q1@1"]
    assert column(conn, "SELECT item_id FROM unit_items WHERE unit_id = 'math'") == ["q2"]
    assert one(conn, "SELECT kind, title, attrs, active FROM items WHERE item_id = 'q1'") == (
        "question", "Solve x + 1 = 2", {"difficulty": "easy"}, True)
    assert one(conn, "SELECT kind, active FROM items WHERE item_id = '3'") == ("video", False)
    assert one(conn, "SELECT attrs FROM users WHERE user_id = 'ann'") == ({"lang": "en"},)
    assert one(conn, "SELECT user_id, kind, outcome, duration_ms, occurred_at FROM interactions WHERE event_id = 'e-1'"
               ) == ("ann", "attempt", 1, 5300, datetime(2024, 3, 1, 10, tzinfo=UTC))
    derived = derived_event_id(JSONL_OBJECTS[7])
    assert derived.startswith("jsonl:")
    assert one(conn, "SELECT user_id, item_id, kind, value, response, occurred_at FROM interactions "
                     "WHERE event_id = %s", derived) == (
        "bob", "3", "view", 0.5, {"seconds_watched": 12}, datetime(2024, 3, 1, 10, tzinfo=UTC))


def test_jsonl_example_of_the_docs_imports(conn, tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "IMPORT_FORMATS.md").read_text()
    example = doc.split("```jsonl\n", 1)[1].split("```", 1)[0]
    import_twice(conn, "jsonl", write(tmp_path / "example.jsonl", example))
    assert counts(conn) == {"users": 1, "items": 3, "units": 2, "unit_children": 1, "unit_items": 3,
                            "interactions": 2}


def test_jsonl_id_prefix_applies_to_ids_links_and_event_ids(conn, tmp_path):
    path = write(tmp_path / "c.jsonl", jsonl_text(JSONL_OBJECTS))
    run_import(conn, "jsonl", [path], id_prefix="s1/", progress=False)
    assert column(conn, "SELECT unit_id FROM units ORDER BY 1") == ["s1/algebra", "s1/math"]
    assert column(conn, "SELECT parent || '>' || child FROM unit_children") == ["s1/math>s1/algebra"]
    assert column(conn, "SELECT event_id FROM interactions WHERE user_id = 's1/ann'") == ["s1/e-1"]


def test_jsonl_links_may_name_units_and_items_already_in_the_database(conn, tmp_path):
    run_import(conn, "jsonl", [write(tmp_path / "a.jsonl", jsonl_text(JSONL_OBJECTS[:5]))], progress=False)
    more = [{"type": "unit", "unit_id": "geometry", "items": ["q1", "3"]},
            {"type": "unit", "unit_id": "math", "name": "Mathematics", "kind": "subject", "children": ["geometry"]}]
    run_import(conn, "jsonl", [write(tmp_path / "b.jsonl", jsonl_text(more))], progress=False)
    # Links are added, never replaced: math keeps algebra.
    assert column(conn, "SELECT child FROM unit_children WHERE parent = 'math' ORDER BY 1") == ["algebra", "geometry"]
    assert column(conn, "SELECT item_id FROM unit_items WHERE unit_id = 'geometry' ORDER BY 1") == ["3", "q1"]


GOOD = jsonl_text([{"type": "unit", "unit_id": "math", "children": ["algebra"]},   # lines 1-3; the bad one is 4
                   {"type": "unit", "unit_id": "algebra", "items": ["q1"]},
                   {"type": "item", "item_id": "q1"}])


@pytest.mark.parametrize("line, where, fragment", [
    ('{"type": "interaction", "user_id": "ann", "item_id": "q1", "outcome": "x"}', ":4:outcome", "got \"x\""),
    ('{"type": "interaction", "user_id": "ann", "item_id": "q1"}', ":4", "an attempt needs an outcome"),
    ('{"type": "interaction", "user_id": "ann", "outcome": 1}', ":4:item_id", "item_id is required"),
    ('{"type": "item", "item_id": "q9", "colour": "red"}', ":4:colour", "unknown field for an item"),
    ('{"type": "item", "item_id": "q9", "kind": "Bad Kind"}', ":4:kind", "should match pattern"),
    ('{"type": "item", "item_id": "q9", "units": ["math", ""]}', ":4:units[1]",
     "must have at least 1 character(s), got ''"),
    ('{"type": "lesson", "id": "x"}', ":4:type", "type must be one of user, item, unit, interaction, got 'lesson'"),
    ('{"user_id": "x"}', ":4:type", "got None"),
    ('["user", "x"]', ":4", "must be one JSON object"),
    ('{"type": "interaction", "user_id": "ann", "item_id": "q1", "value": NaN, "kind": "view"}', ":4", "NaN"),
    ('{"type": "interaction", "user_id": "ann", "item_id": "q1", "outc', ":4:60", "looks cut off"),
    ('{"type": "item", "item_id": "q9", "units": ["nowhere"]}', ":4:units[0]", "unknown unit 'nowhere'"),
    ('{"type": "unit", "unit_id": "u9", "items": ["q1", "q404"]}', ":4:items[1]", "unknown item 'q404'"),
    ('{"type": "unit", "unit_id": "u9", "children": ["u9"]}', ":4:children[0]", "cannot be its own child"),
    ('{"type": "interaction", "user_id": "ann", "item_id": "q404", "outcome": 0}', ":4:item_id", "unknown item"),
], ids=["bad-outcome", "attempt-without-outcome", "missing-field", "unknown-field", "bad-kind", "empty-link",
        "unknown-type", "no-type", "not-an-object", "nan", "cut-off-line", "unknown-unit-link", "unknown-item-link",
        "own-child", "unknown-item-in-interaction"])
def test_jsonl_malformed_lines_fail_naming_line_and_field(conn, tmp_path, line, where, fragment):
    path = write(tmp_path / "bad.jsonl", GOOD + line + "\n")
    assert_fails(conn, "jsonl", path, f"{path}{where}", fragment)


def test_jsonl_cut_off_without_line_break_fails(conn, tmp_path):
    path = write(tmp_path / "cut.jsonl", GOOD + '{"type": "user", "user_id": "ann"')
    assert_fails(conn, "jsonl", path, f"{path}:4:34", "looks cut off")


def test_jsonl_truncated_gzip_fails(conn, tmp_path):
    objects = [{"type": "interaction", "user_id": f"u{i % 50}", "item_id": "q1", "outcome": i % 2,
                "occurred_at": (datetime(2024, 1, 1) + timedelta(minutes=i)).isoformat()} for i in range(5000)]
    path = truncated_gzip(tmp_path / "cut.jsonl.gz", GOOD + jsonl_text(objects))
    failure = assert_fails(conn, "jsonl", path, str(path), "truncated")
    assert 4 < failure.line < 5004 and str(failure).startswith(f"{path}:{failure.line}: the file ends early")


# ---- command line -----------------------------------------------------------------------
@pytest.fixture
def configured(monkeypatch, db_url, redis_url, conn):
    """The CLI on the test servers; `conn` empties the tables afterwards."""
    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    return conn


def test_cli_import_reports_what_it_created(configured, tmp_path, capsys):
    path = write(tmp_path / "a.csv", ASSIST)
    assert main(["import", "--format", "assistments", "--quiet", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: read 5 rows" in out and "5 interactions" in out
    assert main(["import", "--format", "assistments", "--quiet", str(path)]) == 0
    assert "nothing (already imported)" in capsys.readouterr().out


def test_cli_import_of_a_bad_file_is_one_line_naming_file_and_line(configured, tmp_path, capsys):
    path = write(tmp_path / "bad.csv", HEADER + "14,0,1,1,A\n14,1,2,maybe,A\n")
    assert main(["import", "--format", "assistments", "--quiet", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}:3:4: correct must be 0 or 1, got 'maybe'" in err
    assert counts(configured)["interactions"] == 0


def test_a_bulk_import_stores_the_same_rows_and_rebuilds_the_same_schema(conn, tmp_path):
    """--bulk drops the interactions' secondary indexes and foreign keys for the insert and builds
    them again from their own definitions: same rows as a normal import, same indexes and keys
    after, idempotent; a bad reference still fails with the importer's message and leaves the
    table (indexes and keys included) as it was."""
    from app.infra import queries as q

    def schema():
        rows = [(r["kind"], r["name"], r["definition"]) for r in q.fetch_all(conn, "interactions_rebuildable")]
        conn.rollback()
        return rows

    before = schema()
    assert {k for k, _, _ in before} == {"index", "foreign key"} and len(before) >= 5
    path = write(tmp_path / "catalogue.jsonl", jsonl_text(JSONL_OBJECTS))
    report = import_twice(conn, "jsonl", path, bulk=True)
    assert report.created["interactions"] == 2
    assert schema() == before
    assert one(conn, "SELECT user_id, outcome FROM interactions WHERE event_id = 'e-1'") == ("ann", 1)
    bad = write(tmp_path / "bad.jsonl", jsonl_text([{"type": "interaction", "event_id": "e-9", "user_id": "ann",
                                                     "item_id": "nowhere", "outcome": 1}]))
    with pytest.raises(ImportFailed, match="unknown item 'nowhere'"):
        run_import(conn, "jsonl", [bad], progress=False, bulk=True)
    assert schema() == before and counts(conn)["interactions"] == 2

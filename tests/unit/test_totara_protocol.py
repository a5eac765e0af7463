"""Totara's ML-service protocol rules (app.totara.protocol) and the Totara export fixture.

Unit tests: no database, no Flask. The signature vectors are literal digests, computed outside
Python (`printf '%s' '1700000000secret' | sha256sum`) and, for key 'abc123', copied from
Totara's own PHP test (server/ml/service/tests/token_manager_test.php), so a change in how we
hash cannot pass by agreeing with itself.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.totara.protocol import (
    COMPONENT,
    ITEM_TYPES,
    MAX_ID,
    check_signature,
    items_body,
    join_item_id,
    parse_id,
    parse_item_type,
    parse_n_items,
    sign,
    split_item_id,
)
from tests.fixtures.make_totara_export import write_export

KEY = "secret"
NOW = 1_700_000_000
VECTOR = "0097dc146dfa5a8cadebac725e75c4e7800366597c7674eb36e8734b2f7fdc02"  # sha256("1700000000secret")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "totara_export"


# --- signing ---------------------------------------------------------------------------------

def test_sign_hashes_time_then_key_without_separator():
    assert sign(1_700_000_000, KEY) == VECTOR
    assert sign("1700000000", KEY) == VECTOR


@pytest.mark.parametrize(("stamp", "digest"), [
    (123456, "a44934344c553000cb198d77cae685d33563617a01b17dc60d45a5557ad9c21d"),
    (99999999999, "91dfe719d147209b01a133bbe80bf7aaa4d850ac93c7169eb2c065aa90bdd8f8"),
    (0, "e4564920dabbb068898fbb32f98a67fe6d98520686d726d10dbc7e5badc37ead"),
    (1000, "03203b76ce4a4cf093f39eeedb61a5966a20dccfca1cc4fdfb18e0006f444e9b"),
    (990, "d1dbd8c1610d6fcd7cd69cfeb45af3be6c9126d58f57807e8d6cf637bb8b1a28"),
    (1010, "38f9c57476b1e572177b40e22a82c169475222c0496086999bc5aaaabef08eed"),
])
def test_sign_matches_totaras_own_test_vectors(stamp, digest):
    assert sign(stamp, "abc123") == digest


def test_sign_hashes_the_canonical_number_like_totaras_validator():
    assert sign("01700000000", KEY) == VECTOR


@pytest.mark.parametrize("bad", ["", "17e8", "-5", "1.5", " 1", "１２"])
def test_sign_refuses_a_time_that_is_not_digits(bad):
    with pytest.raises(ValueError, match="timestamp"):
        sign(bad, KEY)


def test_sign_refuses_negative_and_non_integer_times():
    with pytest.raises(ValueError, match="negative"):
        sign(-1, KEY)
    with pytest.raises(TypeError):
        sign(1.0, KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(True, KEY)  # type: ignore[arg-type]


# --- checking a request ----------------------------------------------------------------------

def test_valid_headers_pass():
    assert check_signature("1700000000", VECTOR, KEY, now=NOW, skew_s=300) is None


def test_key_header_case_and_surrounding_space_do_not_matter():
    assert check_signature(" 1700000000 ", " " + VECTOR.upper(), KEY, now=NOW + 0.9, skew_s=300) is None


@pytest.mark.parametrize(("offset", "word"), [(301, "ahead of"), (-301, "behind")])
def test_time_beyond_the_skew_is_refused_on_either_side(offset, word):
    stamp = NOW + offset
    problem = check_signature(str(stamp), sign(stamp, KEY), KEY, now=NOW, skew_s=300)
    assert problem is not None
    assert f"301 s {word} the server clock" in problem
    assert "±300 s" in problem


@pytest.mark.parametrize("offset", [300, -300, 299, -299])
def test_time_at_the_skew_boundary_is_accepted(offset):
    stamp = NOW + offset
    assert check_signature(str(stamp), sign(stamp, KEY), KEY, now=NOW, skew_s=300) is None


def test_totaras_thirty_second_boundary_cases():
    # Totara's token_manager_test: base time 1000, ±10 accepted, ±32 refused (BOUNDARY = 30).
    assert check_signature("990", sign(990, "abc123"), "abc123", now=1000, skew_s=30) is None
    assert check_signature("1010", sign(1010, "abc123"), "abc123", now=1000, skew_s=30) is None
    assert check_signature("968", sign(968, "abc123"), "abc123", now=1000, skew_s=30) is not None
    assert check_signature("1032", sign(1032, "abc123"), "abc123", now=1000, skew_s=30) is not None


@pytest.mark.parametrize(("time_header", "key_header", "expected"), [
    (None, VECTOR, "missing header X-Totara-Time"),
    ("", VECTOR, "missing header X-Totara-Time"),
    ("   ", VECTOR, "missing header X-Totara-Time"),
    ("1700000000", None, "missing header X-Totara-Ml-Key"),
    ("1700000000", "", "missing header X-Totara-Ml-Key"),
])
def test_missing_headers_are_named(time_header, key_header, expected):
    problem = check_signature(time_header, key_header, KEY, now=NOW, skew_s=300)
    assert problem is not None and expected in problem


@pytest.mark.parametrize("time_header", ["1700000000.0", "1.7e9", "-1700000000", "soon", "0x6553f100",
                                         "1" * 40, "１７００"])
def test_a_time_that_is_not_an_integer_is_refused(time_header):
    problem = check_signature(time_header, VECTOR, KEY, now=NOW, skew_s=300)
    assert problem is not None and "must be unix seconds as an integer" in problem


@pytest.mark.parametrize("key_header", [
    sign(NOW, "other-key"),             # another site's key
    sign(NOW + 1, KEY),                 # signed for another time
    VECTOR[:-1],                        # truncated
    VECTOR + "0",                       # too long
    "é" * 64,                           # not ASCII
    "\ud800",                           # a lone surrogate
])
def test_a_wrong_key_is_refused(key_header):
    problem = check_signature("1700000000", key_header, KEY, now=NOW, skew_s=300)
    assert problem is not None and "X-Totara-Ml-Key does not match" in problem


def test_the_refusal_never_reveals_the_expected_key():
    problem = check_signature("1700000000", "0" * 64, KEY, now=NOW, skew_s=300)
    assert problem is not None and VECTOR not in problem and KEY not in problem


def test_time_is_checked_before_the_key():
    # A stale replay is reported as stale, which is what an operator can act on (clock drift).
    problem = check_signature("1600000000", "0" * 64, KEY, now=NOW, skew_s=300)
    assert problem is not None and "behind the server clock" in problem


# --- item ids --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("engage_article12", ("engage_article", 12)),
    ("engage_microlearning7", ("engage_microlearning", 7)),
    ("totara_playlist3", ("totara_playlist", 3)),
    ("container_workspace100", ("container_workspace", 100)),
    ("container_course2", ("container_course", 2)),
    ("engage_article0", ("engage_article", 0)),
    (f"engage_article{MAX_ID}", ("engage_article", MAX_ID)),
    ("h5p_thing9", ("h5p_thing", 9)),  # digits inside a component are fine
])
def test_split_item_id(text, expected):
    assert split_item_id(text) == expected
    assert join_item_id(*expected) == text


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("engage_article", "does not end with the item's number"),
    ("12", "does not start with a component name"),
    ("_article12", "does not start with a component name"),
    ("Engage_Article12", "must be lower case"),
    ("ENGAGE_ARTICLE12", "must be lower case"),
    ("engage_article_12", "has '_' before the number"),
    ("engage_article012", "leading zero"),
    ("engage_article00", "leading zero"),
    (f"engage_article{MAX_ID + 1}", "larger than a Totara id"),
    ("engage_article" + "9" * 5000, "larger than a Totara id"),
    ("engage-article12", "expected e.g. 'engage_article12'"),
    ("engage article12", "expected e.g. 'engage_article12'"),
    ("engage_article12\n", "does not end with the item's number"),
    ("engage_article１２", "expected e.g. 'engage_article12'"),
    ("e12", "expected e.g. 'engage_article12'"),  # a component is at least two characters
    ("a" * 33 + "1", "expected e.g. 'engage_article12'"),
])
def test_split_item_id_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_item_id(text)


def test_split_item_id_message_is_short_for_a_huge_input():
    with pytest.raises(ValueError) as info:
        split_item_id("x" * 100_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(("component", "number"), [
    ("Engage_article", 1), ("engage_article_", 1), ("block_v2", 1), ("e", 1), ("", 1),
    ("engage_article", -1), ("engage_article", MAX_ID + 1), ("engage_article", True), ("engage_article", 1.0),
])
def test_join_item_id_refuses_what_could_not_be_split_back(component, number):
    with pytest.raises(ValueError):
        join_item_id(component, number)


def test_every_item_type_is_a_component():
    assert all(COMPONENT.fullmatch(name) for name in ITEM_TYPES)
    assert not COMPONENT.fullmatch("engage_article\n")


# --- query parameters and body ---------------------------------------------------------------

def test_parse_item_type():
    assert parse_item_type("totara_playlist") == "totara_playlist"
    for bad in (None, "", "engage_survey", "Totara_playlist"):
        with pytest.raises(ValueError, match="item_type must be one of"):
            parse_item_type(bad)


def test_parse_id():
    assert parse_id("0", "tenant") == 0
    assert parse_id("42", "totara_user_id") == 42
    with pytest.raises(ValueError, match="tenant is required"):
        parse_id(None, "tenant")
    for bad in ("-1", "1.0", "abc", " 1"):
        with pytest.raises(ValueError, match="totara_user_id must be a non-negative integer"):
            parse_id(bad, "totara_user_id")


def test_parse_n_items_refuses_what_it_cannot_serve():
    assert parse_n_items("5", maximum=50) == 5
    assert parse_n_items("50", maximum=50) == 50
    assert parse_n_items(None, maximum=50) == 10
    assert parse_n_items("", maximum=5) == 5
    for bad in ("0", "-3", "ten", "2.5", "²", "١٢"):
        with pytest.raises(ValueError, match="n_items must be a positive integer"):
            parse_n_items(bad, maximum=50)
    with pytest.raises(ValueError, match="at most 50"):
        parse_n_items("51", maximum=50)


def test_items_body_is_what_totara_reads():
    assert items_body([(12, 0.93004), (7, 0.88)]) == {"success": True, "items": [[12, 0.93], [7, 0.88]]}
    assert items_body([]) == {"success": True, "items": []}
    with pytest.raises(ValueError, match="finite"):
        items_body([(1, float("nan"))])


# --- the export fixture ----------------------------------------------------------------------

def _rows(name: str) -> list[dict[str, str]]:
    with open(FIXTURE / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_fixture_is_what_the_generator_writes(tmp_path):
    write_export(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in FIXTURE.glob("*.csv"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (FIXTURE / name).read_bytes(), f"{name} differs: re-run the generator"


def test_fixture_ids_are_valid_totara_item_ids():
    for tenant in (0, 1, 2):
        for row in _rows(f"item_data_{tenant}.csv"):
            component, _ = split_item_id(row["item_id"])
            assert row[component] == "1" and sum(int(row[c]) for c in ITEM_TYPES) == 1
        for row in _rows(f"user_interactions_{tenant}.csv"):
            split_item_id(row["item_id"])
            assert row["rating"] in ("0", "1")


def test_fixture_tenants_have_their_edge_cases():
    assert [r["tenants"] for r in _rows("tenants.csv")] == ["0", "1", "2"]
    users = {t: {r["user_id"] for r in _rows(f"user_data_{t}.csv")} for t in (0, 1, 2)}
    items = {t: {r["item_id"] for r in _rows(f"item_data_{t}.csv")} for t in (0, 1, 2)}
    seen = {t: _rows(f"user_interactions_{t}.csv") for t in (0, 1, 2)}
    assert users[0] == users[1] and items[0] == items[1]  # same ids in tenants 0 and 1
    assert items[0] - {r["item_id"] for r in seen[0]} == {"totara_playlist8"}
    assert users[0] - {r["user_id"] for r in seen[0]} == {"140"}
    assert items[1] == {r["item_id"] for r in seen[1]} and users[1] == {r["user_id"] for r in seen[1]}
    assert len(users[2]) < 10 and len(items[2]) < 10
    assert {r["item_id"] for r in seen[2]} <= items[2] and {r["user_id"] for r in seen[2]} <= users[2]
    assert _rows("item_data_0.csv") != _rows("item_data_1.csv")  # same ids, other content

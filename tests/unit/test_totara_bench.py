"""The Totara benchmark's pure parts: MovieLens as a Totara export (read back by the Totara importer
with a recording loader, no database), the split, the top-N metrics and the signed headers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.totara.protocol import check_signature
from bench.totara.export import age_group, read_movielens, split, topic_column, write_export
from bench.totara.metrics import list_metrics, paired_difference, top_k
from bench.totara.service import signed_headers
from jobs.importers import totara as importer


class RecordingLoader:
    """What the importer hands a Loader, kept in lists (jobs.importers.common.Loader's two calls)."""

    def __init__(self):
        self.rows: dict[str, list] = {}
        self.interactions: list = []
        self.notes: list[str] = []

    def add(self, table: str, row: tuple) -> None:
        self.rows.setdefault(table, []).append(row)

    def add_interaction(self, row: tuple, source: str, line: int) -> None:
        self.interactions.append(row)


def _movielens(folder: Path, n_users: int = 20, n_movies: int = 12, seed: int = 3) -> Path:
    """A tiny folder in ml-100k's layout: every user rates 8 movies, stars 1-5."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    (folder / "u.genre").write_text("unknown|0\nAction|1\nChildren's|2\nSci-Fi|3\n\n", encoding="latin-1")
    (folder / "u.item").write_text("".join(
        f"{m}|Movie, \"The\" {m} (1995)|01-Jan-1995||http://x|0|{m % 2}|{int(m % 3 == 0)}|{int(m % 4 == 0)}\n"
        for m in range(1, n_movies + 1)), encoding="latin-1")
    (folder / "u.user").write_text("".join(f"{u}|{15 + 3 * u}|{'MF'[u % 2]}|student|0{u}000\n"
                                           for u in range(1, n_users + 1)), encoding="latin-1")
    rows = [f"{u}\t{m}\t{rng.integers(1, 6)}\t{880000000 + 1000 * u + m}"
            for u in range(1, n_users + 1) for m in rng.permutation(n_movies)[:8] + 1]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def movielens(tmp_path):
    return read_movielens(_movielens(tmp_path / "ml"))


def test_split_holds_out_a_fifth_of_each_warm_users_positives_and_whole_cold_users(movielens):
    ratings, _, _ = movielens
    cold, held = split(ratings, seed=0, hold_out=0.2, cold_share=0.15)
    assert len(cold) == 3                                      # round(0.15 * 20)
    assert not held[np.isin(ratings[:, 0], cold)].any()
    assert (ratings[held, 2] >= 4).all()
    for user in set(ratings[:, 0]) - set(cold):
        positives = int(((ratings[:, 0] == user) & (ratings[:, 2] >= 4)).sum())
        assert held[ratings[:, 0] == user].sum() == int(round(0.2 * positives))
    again_cold, again_held = split(ratings, seed=0)                     # seeded: the same split again
    assert np.array_equal(again_cold, cold) and np.array_equal(again_held, held)


def test_the_export_is_what_the_totara_importer_reads(movielens, tmp_path):
    ratings, movies, users = movielens
    cold, held = split(ratings, seed=0)
    exported = ~held & ~np.isin(ratings[:, 0], cold)
    sizes = write_export(tmp_path / "export", ratings, exported, movies, users)
    assert importer.tenant_ids(tmp_path / "export") == ["0"]

    loader = RecordingLoader()
    importer.read(tmp_path / "export", loader, progress=False, suffix="_0")
    items = {row[0]: row for row in loader.rows["items"]}
    assert set(items) == {f"engage_article{m}" for m, _, _ in movies}
    assert {row[1] for row in items.values()} == {"engage_article"}      # the one-hot component column
    assert items["engage_article12"][4] == {"topics": ["Childrens", "SciFi"]}        # one-hot topic_ columns
    assert "," not in items["engage_article1"][3] and '"' not in items["engage_article1"][3]
    topic_units = {row[0] for row in loader.rows["units"] if row[2] == "topic"}
    assert topic_units == {"topic:Action", "topic:Childrens", "topic:SciFi"}

    user_attrs = dict(loader.rows["users"])
    assert set(user_attrs) == {str(u["user_id"]) for u in users}       # cold users keep their user_data row
    assert user_attrs["2"] == {"lang": "en", "gender": "M", "occupation": "student", "age_group": "18-24"}

    assert len(loader.interactions) == int(exported.sum()) == sizes["interactions"]
    pairs = {(row[1], row[2]): row[4] for row in loader.interactions}
    for (u, m, stars, _), e in zip(ratings, exported):
        key = (str(u), f"engage_article{m}")
        assert (key in pairs) == bool(e)                                  # held-out and cold rows are not written
        if e:
            assert pairs[key] == int(stars >= 4)


def test_topic_columns_and_age_groups_are_totara_like():
    assert topic_column("Children's") == "topic_Childrens"
    assert topic_column("Film-Noir") == "topic_FilmNoir"
    assert [age_group(a) for a in (7, 18, 24, 25, 49, 50, 56, 73)] == [
        "under 18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+"]


def test_list_metrics_count_a_short_answer_as_misses_and_skip_users_without_relevant_items():
    m = list_metrics([[1, 2, 3], [4] * 10, [9]], [{1, 3}, {5}, set()])
    assert m["users"] == 2
    assert m["precision_at_10"] == pytest.approx((2 / 10 + 0) / 2)
    assert m["recall_at_10"] == pytest.approx((1.0 + 0) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert m["ndcg_at_10"] == pytest.approx(round((1 + 1 / np.log2(4)) / ideal / 2, 4))


def test_top_k_excludes_and_breaks_ties_by_the_earlier_id():
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), [10, 11, 12, 13], exclude={11}, k=2) == [12, 13]


def test_paired_difference_of_identical_answers_is_zero():
    answers = [[1, 2], [3, 4], [5]]
    d = paired_difference(answers, answers, [{1}, {4}, {6}])
    assert d["difference"] == 0 and d["ci95"] == [0, 0] and d["users"] == 3


def test_signed_headers_pass_the_services_check():
    h = signed_headers("shared-key", now=1_700_000_000.7)
    assert h["X-Totara-Time"] == "1700000000"
    assert check_signature(h["X-Totara-Time"], h["X-Totara-Ml-Key"], "shared-key", 1_700_000_001, 300) is None


def test_the_export_without_component_columns_leaves_the_component_to_the_ids(movielens, tmp_path):
    ratings, movies, users = movielens
    cold, held = split(ratings, seed=0)
    exported = ~held & ~np.isin(ratings[:, 0], cold)
    write_export(tmp_path / "export", ratings, exported, movies, users, component_columns=False)
    header = (tmp_path / "export" / "item_data_0.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "item_id" and not set(header) & {"engage_article", "container_course", "totara_playlist"}
    loader = RecordingLoader()
    importer.read(tmp_path / "export", loader, progress=False, suffix="_0")
    assert {row[1] for row in loader.rows["items"]} == {"engage_article"}      # from the ids
    assert loader.notes == [f"{len(movies)} items took their Totara component from the id (item_data_0.csv has no "
                            "component column for them)"]

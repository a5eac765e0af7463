"""MovieLens-100k as a Totara export (pure): the files Totara's exporter writes for one tenant, and
the seeded split of cold users and held-out positives."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from app.config import PROJECT_ROOT
from app.totara.protocol import ITEM_TYPES

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "ml-100k"
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "totara_export"
TENANT = "0"
COMPONENT = "engage_article"
K = 10
MIN_RATING = 4                  # 4-5 stars: Totara's rating 1
HOLD_OUT, COLD_USERS = 0.2, 0.15
AGE_GROUPS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"),
              (200, "56+"))
USER_COLUMNS = ("user_id", "lang", "gender", "occupation", "age_group")


def read_movielens(folder: Path) -> tuple[np.ndarray, list[tuple[int, str, list[str]]], list[dict]]:
    """(ratings (n, 4) int64 user, movie, stars, unix time; movies (id, title, genres); users dicts)."""
    ratings = np.loadtxt(folder / "u.data", dtype=np.int64, ndmin=2)
    genres = [line.split("|")[0] for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines()
              if line.strip()]
    movies = []
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        movies.append((int(fields[0]), fields[1], [g for g, flag in zip(genres, fields[5:]) if flag == "1"]))
    users = []
    for line in (folder / "u.user").read_text(encoding="latin-1").splitlines():
        user_id, age, gender, occupation, _zip = line.split("|")
        users.append({"user_id": int(user_id), "age": int(age), "gender": gender, "occupation": occupation})
    return ratings, movies, users


def age_group(age: int) -> str:
    return next(label for upper, label in AGE_GROUPS if age < upper)


def topic_column(name: str) -> str:
    """Totara's column for a topic: 'topic_' + the name without spaces and punctuation."""
    return "topic_" + "".join(c for c in name if c.isalnum() or c == "_")


def split(ratings: np.ndarray, seed: int, hold_out: float = HOLD_OUT, cold_share: float = COLD_USERS
          ) -> tuple[np.ndarray, np.ndarray]:
    """(cold_users, held): the sorted ids of the cold users, and a boolean mask over the rows of
    `ratings` of the held-out positives: int(round(hold_out * n)) of each warm user's n positive rows,
    drawn with default_rng(seed) user by user in id order. Cold users' rows are never held out (they
    are all left out of the export)."""
    rng = np.random.default_rng(seed)
    user_ids = np.unique(ratings[:, 0])
    cold = np.sort(rng.permutation(user_ids)[: int(round(cold_share * len(user_ids)))])
    held = np.zeros(len(ratings), dtype=bool)
    positive = ratings[:, 2] >= MIN_RATING
    is_cold = np.isin(ratings[:, 0], cold)
    for user in user_ids:
        if user in cold:
            continue
        rows = np.flatnonzero((ratings[:, 0] == user) & positive & ~is_cold)
        held[rng.permutation(rows)[: int(round(hold_out * len(rows)))]] = True
    return cold, held


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def write_export(folder: Path, ratings: np.ndarray, exported: np.ndarray, movies, users,
                 component_columns: bool = True) -> dict:
    """Tenant 0 of a Totara export in `folder`: all movies and users, the `exported` rows of `ratings`.
    Without `component_columns`, item_data lacks the five one-hot component columns: the component
    is then only in the ids (`engage_article12`), as in issue 28's export."""
    folder.mkdir(parents=True, exist_ok=True)
    genres = sorted({g for _, _, gs in movies for g in gs})
    components = ITEM_TYPES if component_columns else ()
    _write_csv(folder / "tenants.csv", [["tenants"], [TENANT]])
    header = ["item_id", *components, *(topic_column(g) for g in genres), "document"]
    _write_csv(folder / f"item_data_{TENANT}.csv", [header] + [
        [f"{COMPONENT}{movie}", *(int(c == COMPONENT) for c in components), *(int(g in own) for g in genres),
         title.replace(",", " ").replace('"', " ")] for movie, title, own in movies])
    _write_csv(folder / f"user_data_{TENANT}.csv", [list(USER_COLUMNS)] + [
        [u["user_id"], "en", u["gender"], u["occupation"], age_group(u["age"])] for u in users])
    rows = ratings[exported]
    _write_csv(folder / f"user_interactions_{TENANT}.csv", [["user_id", "item_id", "rating", "timestamp"]] + [
        [int(u), f"{COMPONENT}{int(m)}", int(r >= MIN_RATING), int(t)] for u, m, r, t in rows])
    return {"items": len(movies), "users": len(users), "interactions": int(len(rows)),
            "positives": int((rows[:, 2] >= MIN_RATING).sum()), "topics": len(genres),
            "component_columns": component_columns}

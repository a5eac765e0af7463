"""MovieLens 100K: the ml-100k folder (u.genre, u.item, u.user, u.data), imported as one unit.

Movies become items (kind 'movie'), each genre a unit `genre:<Name>` under a root unit
`movielens`, users keep their demographics in attrs, and each rating becomes an interaction
(kind 'rating', value = the rating, outcome = 1 for 4 stars or more). PATH may also be one
ratings file inside the folder (u.data, ua.base, ...): then only those ratings are imported,
with the folder's catalogue.
"""
from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path

from jobs.importers.common import ImportFailed, Loader, check_id, csv_rows, unix_time

DESCRIPTION = "MovieLens 100K folder (u.genre, u.item, u.user, u.data) or one ratings file in it"

ROOT_ID, ROOT_NAME = "movielens", "MovieLens"
ENCODING = "latin-1"  # u.item has accented titles in Latin-1
PIPES = {"delimiter": "|", "quoting": csv.QUOTE_NONE}
TABS = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec"), 1)}
ITEM_FIELDS = "movie id|title|release date|video release date|IMDb URL"


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True) -> int:
    """Stage genres, movies, users and ratings; returns the number of rows read from all files."""
    folder, ratings = (path.parent, path) if path.is_file() else (path, path / "u.data")
    for name in ("u.genre", "u.item"):
        if not (folder / name).is_file():
            raise ImportFailed(folder / name, None, None, "missing: PATH must be the MovieLens 100K folder "
                               "(with u.genre, u.item, u.data and optionally u.user) or a ratings file in it")
    genres = _read_genres(folder / "u.genre", loader, id_prefix, progress)
    movies = _read_movies(folder / "u.item", genres, loader, id_prefix, progress)
    users = _read_users(folder / "u.user", loader, id_prefix, progress) if (folder / "u.user").exists() else {}
    catalogue_rows = len(genres) + len(movies) + len(users)  # before the ratings add users to `users`
    return catalogue_rows + _read_ratings(ratings, movies, users, loader, id_prefix, progress)


def _read_genres(path: Path, loader: Loader, prefix: str, progress: bool) -> list[str]:
    """u.genre: `name|index` lines, index 0, 1, 2, ... matching the flag columns of u.item."""
    root = prefix + ROOT_ID
    loader.add("units", (root, ROOT_NAME, "root", {}))
    names = []
    for line, (name, index) in csv_rows(path, progress, ENCODING, 2, "name|index", **PIPES):
        if index != str(len(names)):
            raise ImportFailed(path, line, 2, f"genre index must be {len(names)} (the lines count up from 0), "
                               f"got {index!r}")
        unit_id = check_id(path, line, 1, f"genre:{name}", "the genre's unit id", prefix)
        loader.add("units", (unit_id, name, "genre", {}))
        loader.add("unit_children", (root, unit_id))
        names.append(name)
    return names


def _read_movies(path: Path, genres: list[str], loader: Loader, prefix: str, progress: bool) -> dict[str, str]:
    """u.item: `id|title|release date|video release date|IMDb URL|` then one 0/1 flag per genre."""
    movies = {}  # raw id -> prefixed item id
    width = 5 + len(genres)
    layout = f"{ITEM_FIELDS}|{len(genres)} genre flags"
    for line, row in csv_rows(path, progress, ENCODING, width, layout, **PIPES):
        item_id = check_id(path, line, 1, row[0], "movie id", prefix)
        flags = row[5:]
        for col, flag in enumerate(flags, 6):
            if flag not in ("0", "1"):
                raise ImportFailed(path, line, col, f"a genre flag must be 0 or 1, got {flag!r}")
        in_genres = [g for g, flag in zip(genres, flags) if flag == "1"]
        attrs = {"genres": in_genres, "release_date": _date(path, line, row[2]), "imdb_url": row[4] or None}
        loader.add("items", (item_id, "movie", row[1] or None, None, attrs, True))
        for genre in in_genres:
            loader.add("unit_items", (f"{prefix}genre:{genre}", item_id, None))
        movies[row[0]] = item_id
    return movies


def _read_users(path: Path, loader: Loader, prefix: str, progress: bool) -> dict[str, str]:
    """u.user: `user id|age|gender|occupation|zip code`."""
    users = {}
    layout = "user id|age|gender|occupation|zip code"
    for line, (raw, age, gender, occupation, zip_code) in csv_rows(path, progress, ENCODING, 5, layout, **PIPES):
        user_id = check_id(path, line, 1, raw, "user id", prefix)
        if not age.isdecimal():
            raise ImportFailed(path, line, 2, f"age must be a whole number, got {age!r}")
        loader.add("users", (user_id, {"age": int(age), "gender": gender, "occupation": occupation,
                                       "zip": zip_code}))
        users[raw] = user_id
    return users


def _read_ratings(path: Path, movies: dict, users: dict, loader: Loader, prefix: str, progress: bool) -> int:
    """u.data and the split files: `user id<TAB>item id<TAB>rating<TAB>unix timestamp`."""
    source, add, count = str(path), loader.add_interaction, 0
    layout = "user id, item id, rating, timestamp (tab-separated)"
    for line, (user, item, rating, stamp) in csv_rows(path, progress, ENCODING, 4, layout, **TABS):
        user_id = users.get(user) or users.setdefault(user, check_id(path, line, 1, user, "user id", prefix))
        item_id = movies.get(item)
        if item_id is None:
            raise ImportFailed(path, line, 2, f"item id {item!r} is not a movie in u.item")
        value = _number(rating)
        if not 0.5 <= value <= 5:  # also false for NaN
            raise ImportFailed(path, line, 3, f"rating must be a number from 0.5 to 5, got {rating!r}")
        at = unix_time(path, line, 4, stamp)
        add((f"ml:{user_id}:{item_id}:{stamp}", user_id, item_id, "rating", int(value >= 4), value,
             None, None, at), source, line)
        count += 1
    return count


def _date(path: Path, line: int, text: str) -> str | None:
    """'01-Jan-1995' -> '1995-01-01'; '' -> None."""
    if not text:
        return None
    try:
        day, month, year = text.split("-")
        return date(int(year), MONTHS[month], int(day)).isoformat()
    except (ValueError, KeyError):
        raise ImportFailed(path, line, 3,
                           f"release date must look like 01-Jan-1995 or be empty, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan

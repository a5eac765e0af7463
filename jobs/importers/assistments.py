"""ASSISTments attempts: a CSV of `user_id, seq, problem_id, correct, skills` (plain or .gz).

Problems become items (kind 'question'), each skill a unit `skill:<name>` under one root unit
`assistments`, and every row an attempt. The file has no clock, only each student's order
`seq`, so attempts are dated 2009-09-01T00:00Z plus `seq` minutes: monotone per student, which
is all that history queries and training need.

This path is the benchmark (274,590 rows), so the per-row work is a few dict lookups: ids,
skills and timestamps are checked and formatted once per distinct value, not once per row.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.importers.common import ImportFailed, Loader, check_id, column_positions, csv_rows

DESCRIPTION = "ASSISTments attempts CSV: user_id, seq, problem_id, correct, skills (|-separated); .csv or .csv.gz"

COLUMNS = ("user_id", "seq", "problem_id", "correct", "skills")
ROOT_ID, ROOT_NAME = "assistments", "ASSISTments 2009"
START = datetime(2009, 9, 1, tzinfo=UTC)
OUTCOMES = {"0": 0, "1": 1}
MAX_SEQ = 10_000_000  # minutes: 19 years of attempts keeps every date valid


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True) -> int:
    """Stage every attempt, problem and skill of `path`; returns the number of attempts read."""
    source = str(path)
    rows = csv_rows(path, progress)
    _, header = next(rows, (1, None))
    u_col, s_col, p_col, c_col, k_col = column_positions(path, header, COLUMNS)

    users: dict[str, str] = {}                  # raw id -> prefixed id
    problems: dict[str, tuple[str, str]] = {}   # raw id -> (prefixed id, raw skills text)
    skills_of: dict[str, list[str]] = {}        # prefixed problem id -> skill names, first seen first
    times: dict[str, tuple[str, str]] = {}      # raw seq -> (canonical seq, ISO time)
    add = loader.add_interaction
    count = 0
    for line, row in rows:
        correct = row[c_col]
        outcome = OUTCOMES.get(correct)
        if outcome is None:
            raise ImportFailed(path, line, c_col + 1, f"correct must be 0 or 1, got {correct!r}")
        seq, at = times.get(row[s_col]) or _time(path, line, s_col, row[s_col], times)
        user = users.get(row[u_col]) or _new_id(path, line, u_col, row[u_col], id_prefix, users, "user_id")
        known = problems.get(row[p_col])
        if known is None or known[1] != row[k_col]:
            known = _problem(path, line, row, p_col, k_col, id_prefix, problems, skills_of)
        add((f"assist:{user}:{seq}", user, known[0], "attempt", outcome, None, None, None, at), source, line)
        count += 1

    _stage_catalogue(loader, skills_of, id_prefix)
    return count


def _time(path, line, col, raw: str, times: dict) -> tuple[str, str]:
    """Check a seq value and cache its canonical text and timestamp."""
    if not raw.isdecimal() or int(raw) > MAX_SEQ:
        raise ImportFailed(path, line, col + 1, f"seq must be a whole number from 0 to {MAX_SEQ}, got {raw[:50]!r}")
    seq = int(raw)
    times[raw] = (str(seq), (START + timedelta(minutes=seq)).isoformat())
    return times[raw]


def _new_id(path, line, col, raw: str, prefix: str, seen: dict, what: str) -> str:
    seen[raw] = check_id(path, line, col + 1, raw, what, prefix)
    return seen[raw]


def _problem(path, line, row, p_col, k_col, prefix, problems, skills_of) -> tuple[str, str]:
    """Record a problem met for the first time, or with a skills text not seen for it yet.

    A problem's skills are the union over its rows; the file repeats the same text on every row,
    so this runs about once per problem.
    """
    raw, text = row[p_col], row[k_col]
    item_id = problems[raw][0] if raw in problems else check_id(path, line, p_col + 1, raw, "problem_id", prefix)
    skills = skills_of.setdefault(item_id, [])
    for name in text.split("|"):
        name = name.strip()
        if name and name not in skills:
            check_id(path, line, k_col + 1, f"skill:{name}", "a skill's unit id", prefix)
            skills.append(name)
    problems[raw] = (item_id, text)
    return problems[raw]


def _stage_catalogue(loader: Loader, skills_of: dict[str, list[str]], prefix: str) -> None:
    """Root unit, one unit per skill under it, and each problem under its skills (or the root)."""
    root = prefix + ROOT_ID
    loader.add("units", (root, ROOT_NAME, "root", {}))
    skill_units = {}
    for item_id, skills in skills_of.items():
        loader.add("items", (item_id, "question", None, None, {"skills": skills}, True))
        for name in skills:
            unit_id = skill_units.get(name)
            if unit_id is None:
                unit_id = skill_units[name] = f"{prefix}skill:{name}"
                loader.add("units", (unit_id, name, "skill", {}))
                loader.add("unit_children", (root, unit_id))
            loader.add("unit_items", (unit_id, item_id, None))
        if not skills:
            loader.add("unit_items", (root, item_id, None))

"""The replay benchmark's data: attempts files, the data regimes, the production cut, slice flags.

An attempts frame has the columns of the ASSISTments file (`user_id, seq, problem_id, correct,
skills`), ids as text, one row per attempt, sorted by (user_id, seq); demo regimes add `p_true`
(the generator's true success probability). Pure pandas / numpy: no database, no service.

Regimes (`--regime`), each a different shape of platform, chosen without looking at any result:
- `all`: the file as it is.
- `250-learners`: 250 learners drawn by a seeded hash (REGIME_SEED), all their attempts: a small
  school's worth of data.
- `300-attempts`: only learners with at least 300 attempts: few learners, long histories.
- `demo-few-learners`: the demo generator (jobs.demo) with few learners over its ~1,800
  questions, many attempts each.
- `demo-many-learners`: the demo generator with many learners, kept to the questions of each
  subject's first chapter (a few hundred items), few attempts each.
Demo attempts become an attempts file: seq = the learner's attempts in time order, skills = the
question's section; `p_true` lets a report show what the truth itself scores.

The production cut (`production_cut`): ASSISTments 2009 has an order within each learner but no
dates, and the demo's learners all join in the first 60 % of its window, so neither gives "the
learners who arrive after the cut" from a clock. The order is built instead: a seeded 20 % of
learners (NEW_SEED, independent of the train / dev / test roles) join after the cut, so all their
attempts come after it; every other learner's sequence is cut at the same quantile (half), the
first floor(n / 2) attempts before the cut. Training sees every attempt before the cut, of every
learner; the replay predicts every attempt after it.
"""
from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.training import split

COLUMNS = ["user_id", "seq", "problem_id", "correct", "skills"]
REGIME_SEED = 7            # which learners a subsampled regime keeps
NEW_SEED = 11              # which learners join after the production cut
NEW_FRACTION = 0.2
CUT_QUANTILE = 0.5
# The slice "items with few attempts at training time": an item with fewer attempts than this in
# the rows the models were trained on (new chapters, rarely chosen items: guesses until retrained).
FEW_ATTEMPTS = 20


@dataclass(frozen=True)
class Regime:
    name: str
    description: str
    learners: int | None = None           # subsample: this many learners by REGIME_SEED
    min_attempts: int | None = None       # keep learners with at least this many attempts
    demo: tuple[int, int] | None = None   # generate: (learners, attempts) with jobs.demo
    demo_first_chapters: bool = False     # keep only each subject's first chapter


REGIMES = {r.name: r for r in (
    Regime("all", "the attempts file as it is"),
    Regime("250-learners", "250 learners drawn by a seeded hash, all their attempts", learners=250),
    Regime("300-attempts", "only learners with at least 300 attempts", min_attempts=300),
    Regime("demo-few-learners", "demo generator: 300 learners, 150,000 attempts over ~1,800 questions",
           demo=(300, 150_000)),
    Regime("demo-many-learners", "demo generator: 10,000 learners, 600,000 attempts, only each subject's "
           "first chapter kept (a few hundred questions)", demo=(10_000, 600_000), demo_first_chapters=True),
)}


# ---- files ------------------------------------------------------------------------------------
def read_attempts(path: Path) -> pd.DataFrame:
    """All rows, ids as text, sorted by (user_id, seq)."""
    df = pd.read_csv(path, dtype={"user_id": str, "problem_id": str, "skills": str, "seq": np.int64,
                                  "correct": np.int8}, keep_default_na=False, usecols=COLUMNS)
    return df[COLUMNS].sort_values(["user_id", "seq"], kind="stable").reset_index(drop=True)


def write_attempts(df: pd.DataFrame, path: Path) -> None:
    with gzip.open(path, "wt", newline="", compresslevel=1) as f:
        df[COLUMNS].to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


def skills_by_problem(df: pd.DataFrame) -> dict[str, list[str]]:
    """problem -> skill names, the union over its rows, first seen first (as the importer)."""
    out: dict[str, list[str]] = {}
    for problem, text in df[["problem_id", "skills"]].drop_duplicates().itertuples(index=False):
        skills = out.setdefault(problem, [])
        for name in text.split("|"):
            name = name.strip()
            if name and name not in skills:
                skills.append(name)
    return out


# ---- regimes ----------------------------------------------------------------------------------
def regime_attempts(regime: Regime, data: Path | None) -> pd.DataFrame:
    """The attempts of a regime: from the file (`data`) or from the demo generator."""
    if regime.demo is not None:
        return demo_attempts(*regime.demo, first_chapters=regime.demo_first_chapters)
    df = read_attempts(data)
    if regime.min_attempts is not None:
        counts = df.groupby("user_id")["seq"].transform("size")
        df = df[counts >= regime.min_attempts]
    if regime.learners is not None:
        users = np.array(sorted(df.user_id.unique()))
        keep = users[np.argsort(split.split_keys(users, REGIME_SEED), kind="stable")[:regime.learners]]
        df = df[df.user_id.isin(set(keep))]
    return df.reset_index(drop=True)


def demo_attempts(learners: int, attempts: int, first_chapters: bool = False, seed: int = 0) -> pd.DataFrame:
    """The demo generator's attempts as an attempts frame (plus `p_true`)."""
    from jobs import demo

    data = demo.build(demo.DemoConfig(seed=seed, learners=learners, attempts=attempts, engagements=0))
    ev, cat = data.attempts, data.catalogue
    section = dict(zip(cat.question_ids.tolist(), cat.section_ids[cat.question_section].tolist()))
    df = pd.DataFrame({"user_id": data.learners.ids[ev.user], "problem_id": ev.item_ids,
                       "correct": ev.outcome.astype(np.int8), "p_true": ev.p_correct, "occurred": ev.occurred})
    if first_chapters:      # question ids are <subject>.<chapter>.<section>.q<n> under the root
        df = df[df.problem_id.str.split(".").str[2] == "1"]
    df = df.sort_values(["user_id", "occurred"], kind="stable")
    df["seq"] = df.groupby("user_id", sort=False).cumcount().astype(np.int64)
    df["skills"] = df.problem_id.map(section)
    return df[[*COLUMNS, "p_true"]].reset_index(drop=True)


def describe(df: pd.DataFrame) -> dict:
    """The shape of a data set: what makes one regime unlike another."""
    per_user = df.groupby("user_id").size()
    first = ~df.duplicated(["user_id", "problem_id"])
    return {"attempts": len(df), "learners": int(per_user.size), "items": int(df.problem_id.nunique()),
            "attempts_per_learner_median": float(per_user.median()),
            "attempts_per_learner_max": int(per_user.max()) if len(per_user) else 0,
            "repeat_share": round(float(1 - first.mean()), 4) if len(df) else None,
            "success_rate": round(float(df.correct.mean()), 4) if len(df) else None}


# ---- positions, slice flags and the production cut --------------------------------------------
def annotate(df: pd.DataFrame) -> pd.DataFrame:
    """Add, from each learner's whole sequence: `pos` (0-based place in it), `n` (its length),
    `earlier_at_item` (attempts at this item before this one) and `previous_at_item` (the outcome
    of the last of them, -1 if none). `df` sorted by (user_id, seq)."""
    out = df.copy()
    by_user = out.groupby("user_id", sort=False)
    out["pos"] = by_user.cumcount()
    out["n"] = by_user["seq"].transform("size")
    by_pair = out.groupby(["user_id", "problem_id"], sort=False)
    out["earlier_at_item"] = by_pair.cumcount()
    out["previous_at_item"] = by_pair["correct"].shift(1).fillna(-1).astype(np.int8)
    return out


def production_cut(df: pd.DataFrame, quantile: float = CUT_QUANTILE, new_fraction: float = NEW_FRACTION,
                   seed: int = NEW_SEED) -> pd.DataFrame:
    """`before` (the attempt is before the cut) and `returning` (the learner has attempts before
    it) for an annotated frame: a seeded `new_fraction` of learners join after the cut, every
    other learner's first floor(quantile * n) attempts are before it."""
    users = df.user_id.unique()
    new = dict(zip(users, split.split_keys(users, seed) < new_fraction))
    is_new = df.user_id.map(new).to_numpy(dtype=bool)
    cut = np.where(is_new, 0, np.floor(quantile * df.n.to_numpy()).astype(np.int64))
    out = df.copy()
    out["before"] = out.pos.to_numpy() < cut
    out["returning"] = cut >= 1
    return out


def replay_frame(df: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The rows of learners `ids` in replay order: learners in `ids` order, attempts by seq; the
    annotation columns are added when missing (computed on these rows alone)."""
    rank = {u: i for i, u in enumerate(ids)}
    out = df[df.user_id.isin(rank)].copy()
    out["_rank"] = out.user_id.map(rank)
    out = out.sort_values(["_rank", "seq"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    if "pos" not in out:
        out = annotate(out)
    return out


def second_half_mask(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Attempts in the second half of their student's history (first half = floor(n / 2); students
    with fewer than 2 attempts have no halves)."""
    return (n >= 2) & (pos >= n // 2)


HISTORY_BANDS = ((0, 1), (1, 10), (10, 50), (50, 200), (200, math.inf))


def few_attempts_slice(threshold: int = FEW_ATTEMPTS) -> str:
    return f"item with < {threshold} attempts at training time"


def with_training_counts(frame: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `item_attempts_at_training`: each row's item's attempts among `train`'s rows
    (the rows the models were trained on)."""
    counts = train.problem_id.value_counts()
    return frame.assign(item_attempts_at_training=frame.problem_id.map(counts).fillna(0).to_numpy(dtype=np.int64))


def slice_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The slices every report shows, as boolean masks over an annotated frame's rows (the
    few-attempt items when the frame has `item_attempts_at_training`)."""
    earlier = frame.earlier_at_item.to_numpy()
    previous = frame.previous_at_item.to_numpy()
    pos = frame.pos.to_numpy()
    masks = {"first attempt at the item": earlier == 0,
             "repeat after a mistake": (earlier > 0) & (previous == 0),
             "repeat after a success": (earlier > 0) & (previous == 1)}
    for lo, hi in HISTORY_BANDS:
        name = "history 0" if hi == 1 else (f"history {lo}+" if math.isinf(hi) else f"history {lo}-{hi - 1}")
        masks[name] = (pos >= lo) & (pos < hi)
    if "returning" in frame:
        masks["returning learners"] = frame.returning.to_numpy(dtype=bool)
        masks["new learners"] = ~masks["returning learners"]
    if "item_attempts_at_training" in frame:
        masks[few_attempts_slice()] = frame.item_attempts_at_training.to_numpy() < FEW_ATTEMPTS
    return masks

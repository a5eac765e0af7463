"""Practice and time in a prediction (pure numpy): what the live fit, which treats a learner as one
fixed ability over their recent history, cannot see.

A learner improves with practice in a skill and forgets with time away from it. The knowledge-
tracing models that capture this with nothing but counts (AFM, PFA, Best-LR in Gervet et al.
2020; DAS3H for time) add to the logit terms in the log-counts of the learner's earlier attempts
and successes in the item's skill, at the item and overall, and in the time since the skill and
the learner were last practised. Here those terms sit in the calibration over the model's score
(a `learning` block, fitted by the nightly job on its dev learners' replay of every attempt and
kept only when it predicts held-out dev learners better): the fit says who the learner is, the
terms say how far practice and time have moved them since.

The service (`features`) and the job's replay (`sequence_features`) compute the same columns from
the same window of earlier attempts; a test holds them equal. Every column but item_attempts
depends only on the candidate's skill, so the service computes them once per skill and gathers
them (a request scores 5,000 candidates in about 100 skills); on the request path
`candidate_terms` gathers each skill's terms directly, without the (k, F) features.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.online.rows import Attempted, RowIndex, attempted

if TYPE_CHECKING:
    from app.model.artifact import LearningTerms

FEATURES = ("skill_attempts", "skill_successes", "attempts", "successes", "item_attempts",
            "skill_days_away", "new_skill", "days_away")
DAY_S = 86_400.0
ITEM_ATTEMPTS, NEW_SKILL = FEATURES.index("item_attempts"), FEATURES.index("new_skill")


def features(h_rows: np.ndarray, h_outcomes: np.ndarray, h_times: np.ndarray, now: float,
             cand_rows: np.ndarray, item_skills: np.ndarray | None, cand_skills: np.ndarray | None = None,
             found: Attempted | None = None) -> np.ndarray:
    """The FEATURES of each candidate for one learner.

    h_rows, h_outcomes, h_times : the learner's earlier attempts on the model's items, oldest
    first (rows in the model, 0/1, epoch seconds); now : the time of the prediction (seconds);
    cand_rows : (k,) candidates' rows (-1 not covered); item_skills : (n_items,) each row's skill
    (-1 none) or None (one skill); cand_skills : the candidates' skills when already known;
    found : the candidates the learner attempted (app.online.rows.attempted), when already known.
    A candidate without a skill takes the learner's overall figures as its skill's.
    Returns (k, len(FEATURES)).
    """
    table, slot, positions, item_x = _by_skill(h_rows, h_outcomes, h_times, now, cand_rows, item_skills,
                                               cand_skills, found)
    out = np.take(table, slot, axis=0)
    out[positions, ITEM_ATTEMPTS] = item_x
    return out


def candidate_terms(block: LearningTerms, h_rows: np.ndarray, h_outcomes: np.ndarray, h_times: np.ndarray, now: float,
                    cand_rows: np.ndarray, item_skills: np.ndarray | None, cand_skills: np.ndarray | None = None,
                    found: Attempted | None = None) -> np.ndarray:
    """terms(block, features(...)) without the (k, F) features: the terms of each skill once,
    gathered to its candidates, and those of the few candidates the learner attempted (whose
    item_attempts is not 0) from their own rows. Returns (k,)."""
    table, slot, positions, item_x = _by_skill(h_rows, h_outcomes, h_times, now, cand_rows, item_skills,
                                               cand_skills, found)
    out = np.take(terms(block, table), slot)
    if len(positions):
        x = table[slot[positions]]
        x[:, ITEM_ATTEMPTS] = item_x
        out[positions] = terms(block, x)
    return out


def _by_skill(h_rows: np.ndarray, h_outcomes: np.ndarray, h_times: np.ndarray, now: float,
              cand_rows: np.ndarray, item_skills: np.ndarray | None, cand_skills: np.ndarray | None,
              found: Attempted | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What `features` gathers: every feature but item_attempts depends only on the candidate's
    skill, so they are computed once per skill. Returns (table, slot, positions, item_x): table
    (m + 1, F) the FEATURES of a candidate in skill 0..m-1 not attempted itself, its last row those
    of a candidate without a skill (the learner's overall figures); slot (k,) each candidate's row
    of the table (-1: the last); positions the candidates the learner attempted and item_x their
    item_attempts."""
    k = len(cand_rows)
    covered = cand_rows >= 0
    if cand_skills is None:
        cand_skills = np.full(k, -1) if item_skills is None else \
            np.where(covered, item_skills[np.where(covered, cand_rows, 0)], -1)
    slot = cand_skills if item_skills is not None else np.full(k, -1)
    n = len(h_rows)
    none = np.empty(0, dtype=np.intp)
    if n == 0:
        table = np.zeros((1, len(FEATURES)))
        table[:, NEW_SKILL] = 1.0
        return table, np.zeros(k, dtype=np.intp), none, np.empty(0)
    y = np.asarray(h_outcomes, dtype=np.float64)
    times = np.asarray(h_times, dtype=np.float64)
    attempts, successes = float(n), float(y.sum())
    days_away = max(now - times[-1], 0.0) / DAY_S
    # per skill: attempts, successes, the last attempt's time (times are in order: the max)
    m = 0
    if item_skills is not None and k:
        h_skills = item_skills[h_rows]
        m = int(max(h_skills.max(), slot.max())) + 1
    skill_n = np.full(m + 1, attempts)
    skill_s = np.full(m + 1, successes)
    skill_days = np.full(m + 1, days_away)
    if m:
        keep = h_skills >= 0
        skill_n[:m] = np.bincount(h_skills[keep], minlength=m)
        skill_s[:m] = np.bincount(h_skills[keep], weights=y[keep], minlength=m)
        last_by = np.full(m, -np.inf)
        np.maximum.at(last_by, h_skills[keep], times[keep])
        seen = np.isfinite(last_by)
        skill_days[:m] = np.where(seen, np.maximum(now - np.where(seen, last_by, now), 0.0) / DAY_S, 0.0)
    table = np.empty((m + 1, len(FEATURES)))
    table[:, 0] = np.log1p(skill_n)
    table[:, 1] = np.log1p(skill_s)
    table[:, 2] = np.log1p(attempts)
    table[:, 3] = np.log1p(successes)
    table[:, ITEM_ATTEMPTS] = 0.0
    table[:, 5] = np.log1p(skill_days)
    table[:, NEW_SKILL] = (skill_n == 0).astype(np.float64)
    table[:, 7] = np.log1p(days_away)
    # item_attempts: only the candidates the learner attempted (a few among thousands)
    if not covered.any():
        return table, slot, none, np.empty(0)
    found = found or attempted(RowIndex.of(cand_rows), h_rows, h_outcomes)
    return table, slot, found.positions, np.log1p(found.counts.astype(np.float64))


def sequence_features(users: np.ndarray, items: np.ndarray, outcomes: np.ndarray, times: np.ndarray,
                      item_skills: np.ndarray | None, history_max: int) -> np.ndarray:
    """The FEATURES of every attempt of a replay, each from the same learner's earlier attempts
    (at most the `history_max` most recent, as the service sees them) at the attempt's own time.
    Rows grouped by learner, in time order. Vectorised (a replay has 10^5 attempts and more).
    Returns (n, len(FEATURES))."""
    n = len(items)
    out = np.zeros((n, len(FEATURES)))
    if n == 0:
        return out
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    y = np.asarray(outcomes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    attempts, successes, last = _in_window(users, y, times, history_max)
    item_n, _, _ = _in_window(users * (int(items.max()) + 1) + items, y, times, history_max)
    skill_n, skill_s, skill_last = attempts, successes, last
    if item_skills is not None:
        skills = np.asarray(item_skills, dtype=np.int64)[items]
        m = int(skills.max()) + 2
        n_by, s_by, last_by = _in_window(users * m + skills + 1, y, times, history_max)
        own = skills >= 0            # an item without a skill takes the learner's overall figures
        skill_n, skill_s = np.where(own, n_by, attempts), np.where(own, s_by, successes)
        skill_last = np.where(own, last_by, last)
    out[:, 0] = np.log1p(skill_n)
    out[:, 1] = np.log1p(skill_s)
    out[:, 2] = np.log1p(attempts)
    out[:, 3] = np.log1p(successes)
    out[:, 4] = np.log1p(item_n)
    out[:, 5] = np.log1p(np.where(skill_n > 0, np.maximum(times - np.nan_to_num(skill_last), 0.0), 0.0) / DAY_S)
    out[:, 6] = (skill_n == 0).astype(np.float64)
    out[:, 7] = np.log1p(np.where(attempts > 0, np.maximum(times - np.nan_to_num(last), 0.0), 0.0) / DAY_S)
    return out


def _in_window(groups: np.ndarray, y: np.ndarray, times: np.ndarray, window: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row: how many earlier rows of its group lie within the `window` rows before it,
    how many of those succeeded, and the time of the latest (NaN: none). Rows in time order; a
    group never spans two learners (the window counts rows of the learner's sequence)."""
    n = len(groups)
    position = np.arange(n, dtype=np.int64)
    order = np.lexsort((position, groups))                 # by group, then in time order
    span = n + window + 1                                  # a key's group never reaches into the next
    key = groups[order] * span + position[order]
    first = np.searchsorted(key, key - window, side="left")    # the earliest row in the window
    rank = np.arange(n)
    count = rank - first
    cum = np.r_[0.0, np.cumsum(y[order])]
    latest = np.where(count > 0, times[order][np.maximum(rank - 1, 0)], np.nan)
    out_n, out_s, out_last = np.empty(n), np.empty(n), np.empty(n)
    out_n[order], out_s[order], out_last[order] = count, cum[rank] - cum[first], latest
    return out_n, out_s, out_last


def terms(block: LearningTerms | None, x: np.ndarray) -> np.ndarray | float:
    """The logit terms of a calibration's learning terms (`block`; None: none) for feature rows
    `x`: the weights, with each feature clipped to the range the job saw on dev (no extrapolation
    to a longer time away or a longer history than it was fitted on)."""
    if block is None:
        return 0.0
    return np.minimum(x, block.max) @ block.weights


def later(x: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The FEATURES rows `x` (k, F) as `features` would compute them `days` (k, m) days after the
    time they were computed for, with the history unchanged (a forecast of time away): the two
    days-away columns grow, each only where it counts time since an attempt (a skill never
    practised keeps 0), and never below 0 (negative days look back, at most to that attempt); the
    counts stay. Returns (k, m, F)."""
    x = np.asarray(x, dtype=np.float64)
    days = np.asarray(days, dtype=np.float64)
    out = np.repeat(x[:, None, :], days.shape[1], axis=1)
    for column, counts in _MOVING:
        out[:, :, column] = _moved(x, days, column, counts)
    return out


# skill_days_away counts since the last attempt in the skill (or overall, for an item without one),
# days_away since the learner's last attempt: (column, the count that says there was one)
_MOVING = ((FEATURES.index("skill_days_away"), FEATURES.index("skill_attempts")),
           (FEATURES.index("days_away"), FEATURES.index("attempts")))


def _moved(x: np.ndarray, days: np.ndarray, column: int, counts: int) -> np.ndarray:
    """later()'s value of one days-away `column` (k, m)."""
    moved = np.log1p(np.maximum(np.expm1(x[:, column])[:, None] + days, 0.0))
    return np.where((x[:, counts] > 0)[:, None], moved, x[:, None, column])


class Forecast:
    """terms(block, later(x, days)) of the rows `x` (k, F) at any `days`, the same but for rounding,
    without the (k, m, F) rows: only the two days-away columns move with time, so the other
    columns' terms (`still`) and what the moving ones need (expm1 of their values now) are computed
    once, and the two move together. A due time's search evaluates a forecast some forty times
    (app.online.knowledge), where each evaluation's few numpy calls are most of its cost."""

    def __init__(self, block: LearningTerms, x: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        columns, counts = [c for c, _ in _MOVING], [n for _, n in _MOVING]
        still = block.weights.copy()
        still[columns] = 0.0
        self.still = np.minimum(x, block.max) @ still                    # (k,)
        self.since = np.expm1(x[:, columns])[:, :, None]                 # (k, 2, 1)
        self.counts = (x[:, counts] > 0)[:, :, None]
        self.value = x[:, columns][:, :, None]
        self.max = block.max[columns][None, :, None]
        self.w0, self.w1 = block.weights[columns]
        now = np.minimum(x[:, columns], block.max[columns])
        self.now = self.w0 * now[:, 0] + self.w1 * now[:, 1]              # (k,) the moving terms now

    def days_terms(self, days: np.ndarray) -> np.ndarray:
        """The moving columns' terms `days` (k, m) later (later()'s values, clipped): (k, m)."""
        moved = np.log1p(np.maximum(self.since + np.asarray(days, dtype=np.float64)[:, None, :], 0.0))
        moved = np.minimum(np.where(self.counts, moved, self.value), self.max)
        return self.w0 * moved[:, 0] + self.w1 * moved[:, 1]

    def terms(self, days: np.ndarray) -> np.ndarray:
        """terms(block, later(x, days)): (k, m)."""
        return self.still[:, None] + self.days_terms(days)

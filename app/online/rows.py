"""Finding a learner's few history rows among many candidates (pure numpy).

A request has thousands of candidates and at most a few hundred distinct history rows. Searching
every candidate in the history costs O(k log h) per request (about 0.2 ms for 5,000 candidates);
with the candidates' rows sorted once per candidate list (ServingModel.lay_out keeps a RowIndex
beside the layout), each request looks up only its history's rows, once (`attempted`): O(h log k).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class RowIndex:
    """The candidates' rows in ascending order, and where each sits in the candidate list."""
    order: np.ndarray          # (k,) candidate positions, by row (stable: equal rows by position)
    sorted_rows: np.ndarray    # (k,) their rows, ascending (-1, not covered, first)

    @classmethod
    def of(cls, rows: np.ndarray) -> RowIndex:
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        return cls(order, rows[order])

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate whose row is one of `wanted` (distinct rows, each >= 0); a row listed
        twice among the candidates gives both. Returns (positions, which): each such candidate's
        position and the index in `wanted` of its row."""
        wanted = np.asarray(wanted, dtype=np.int64)
        lo = np.searchsorted(self.sorted_rows, wanted, side="left")
        hi = np.searchsorted(self.sorted_rows, wanted, side="right")
        n = hi - lo
        total = int(n.sum())
        if total == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
        which = np.repeat(np.arange(len(wanted)), n)
        # the t-th match overall is sorted position lo[j] + (t - the matches of the rows before j)
        start = np.repeat(lo - (np.cumsum(n) - n), n)
        return self.order[start + np.arange(total)], which


class Attempted(NamedTuple):
    """The candidates a learner attempted before, found once per request for every term that
    asks (the retry terms, item_attempts)."""
    positions: np.ndarray    # their positions among the candidates
    counts: np.ndarray       # each one's attempts at its item in the history
    last: np.ndarray         # each one's outcome at its most recent attempt (int8, 0/1)


def attempted(index: RowIndex, history_rows: np.ndarray, history_outcomes: np.ndarray) -> Attempted:
    """The candidates (of `index`) among the history's rows (oldest first), with their counts and
    last outcomes."""
    if not len(history_rows):
        return Attempted(np.empty(0, dtype=np.intp), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8))
    newest_first = np.asarray(history_rows)[::-1]
    rows, first, counts = np.unique(newest_first, return_index=True, return_counts=True)   # first: most recent
    positions, which = index.find(rows)
    last = np.asarray(history_outcomes, dtype=np.int8)[::-1][first]
    return Attempted(positions, counts[which], last[which])

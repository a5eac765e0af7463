"""The simple models every replay report sets beside the service (pure numpy and scipy).

- `item_difficulty`: each item's training success rate, shrunk towards the global rate.
- `elo`: Elo for learners and items (Pelanek 2016) with the usual constants, U(n) = 1 / (1 + 0.05 n).
- `elo_tuned`: the same with (alpha, beta) chosen on the dev learners' log-loss from ELO_GRID, so
  the service is compared with the best Elo, not a strawman; test uses dev's choice.
- `irt_live`: 1PL, difficulties by joint MAP on the training rows (jobs.training.irt.fit_1pl, the
  job's own 1PL fit), each replayed learner's ability by MAP from their earlier attempts only
  (as the service fits its learners live).
- `truth`: the generator's true probability, when the data has one (demo regimes): the ceiling.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs.training.irt import fit_1pl
from jobs.training.metrics import logloss

ELO_ALPHA, ELO_BETA = 1.0, 0.05      # U(n) = alpha / (1 + beta n)
ELO_GRID = tuple(itertools.product((0.25, 0.5, 1.0, 1.5, 2.5), (0.005, 0.02, 0.05, 0.15, 0.5)))
DIFFICULTY_PRIOR_WEIGHT = 5.0        # item_difficulty smoothing, as the training job's baseline
IRT_ITEM_SD = 1.0                    # prior sd of 1PL item difficulties (abilities: N(0, 1))
METHODS = ("item_difficulty", "elo", "elo_tuned", "irt_live")


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def item_difficulty(train_items: np.ndarray, train_y: np.ndarray, n_items: int, test_items: np.ndarray,
                    prior_weight: float = DIFFICULTY_PRIOR_WEIGHT) -> np.ndarray:
    """Each item's success rate among training attempts, shrunk towards the global rate by
    `prior_weight` pseudo-attempts; an item without training attempts gets the global rate."""
    attempts = np.bincount(train_items, minlength=n_items).astype(np.float64)
    correct = np.bincount(train_items, weights=train_y, minlength=n_items)
    overall = correct.sum() / max(attempts.sum(), 1.0)
    rate = (correct + prior_weight * overall) / (attempts + prior_weight)
    return rate[test_items]


@dataclass
class Elo:
    """Elo for students and items (Pelanek 2016): p = sigmoid(skill_s - difficulty_i); after an
    answer skill_s += U(n_s)(y - p), difficulty_i -= U(n_i)(y - p), U(n) = alpha / (1 + beta n),
    n the number of earlier updates of that student / item. Everyone starts at 0."""
    n_users: int
    n_items: int
    alpha: float = ELO_ALPHA
    beta: float = ELO_BETA

    def __post_init__(self):
        self.skill = np.zeros(self.n_users)
        self.difficulty = np.zeros(self.n_items)
        self.user_n = np.zeros(self.n_users, dtype=np.int64)
        self.item_n = np.zeros(self.n_items, dtype=np.int64)

    def run(self, users: np.ndarray, items: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Predict each attempt in order, then learn from it; returns the predictions."""
        skill, difficulty, user_n, item_n = self.skill, self.difficulty, self.user_n, self.item_n
        a, b = self.alpha, self.beta
        out = np.empty(len(users))
        for k, (u, i, o) in enumerate(zip(users.tolist(), items.tolist(), y.tolist())):
            p = 1.0 / (1.0 + math.exp(difficulty[i] - skill[u]))
            out[k] = p
            err = o - p
            skill[u] += a / (1.0 + b * user_n[u]) * err
            difficulty[i] -= a / (1.0 + b * item_n[i]) * err
            user_n[u] += 1
            item_n[i] += 1
        return out


def irt_live(b: np.ndarray, c: float, items: np.ndarray, y: np.ndarray, starts: np.ndarray,
             steps: int = 20, tol: float = 1e-8) -> np.ndarray:
    """Predictions of each attempt from the ability fitted (MAP, N(0, 1) prior, Newton) on the
    student's earlier attempts only. `starts` marks each student's first attempt (rows grouped by
    student, in order)."""
    out = np.empty(len(items))
    y = np.asarray(y, dtype=np.float64)
    offset = c - b[items]                          # logit = theta + offset
    bounds = np.r_[np.flatnonzero(starts), len(items)]
    for s, e in itertools.pairwise(bounds):
        theta = 0.0
        for t in range(s, e):
            if t > s:                              # refit on attempts s..t-1 (warm start)
                o, obs = offset[s:t], y[s:t]
                for _ in range(steps):
                    p = sigmoid(theta + o)
                    step = (np.sum(p - obs) + theta) / (np.sum(p * (1.0 - p)) + 1.0)
                    theta -= step
                    if abs(step) < tol:
                        break
            out[t] = 1.0 / (1.0 + math.exp(-(theta + offset[t])))
    return out


def tune_elo(trained: dict[tuple[float, float], Elo], users: np.ndarray, items: np.ndarray, y: np.ndarray
             ) -> tuple[tuple[float, float], list[dict]]:
    """The (alpha, beta) of `trained` (Elo states after the training pass) whose online run through
    the dev attempts has the lowest log-loss; and every candidate's dev log-loss."""
    table = []
    for constants, elo in trained.items():
        p = copy.deepcopy(elo).run(users, items, y)
        table.append({"alpha": constants[0], "beta": constants[1], "dev_logloss": round(logloss(y, p), 5)})
    best = min(table, key=lambda row: row["dev_logloss"])
    return (best["alpha"], best["beta"]), table


def baseline_predictions(train_df: pd.DataFrame, frames: dict[str, pd.DataFrame], item_codes: dict[str, int],
                         user_codes: dict[str, int], tune_on: str | None = "dev") -> tuple[dict, dict]:
    """({role: {method: p of each replayed row}}, {"elo_tuned": the choice and the dev table}).

    Fitted on `train_df` alone. `frames[role]` holds the role's learners' whole sequences (rows
    grouped by learner, in order) with a `replayed` column marking the rows to predict; earlier
    rows (attempts before a production cut, also in `train_df`) only inform the live ability.
    Elo runs one pass over `train_df` (learner order, then seq), then online through each role's
    replayed rows separately, from that state. `elo_tuned` takes its constants from the `tune_on`
    role's replay (None: the fixed constants).
    """
    n_items = len(item_codes)
    tr_items = train_df.problem_id.map(item_codes).to_numpy()
    tr_users = train_df.user_id.map(user_codes).to_numpy()
    tr_y = train_df.correct.to_numpy().astype(np.float64)
    n_train = int(train_df.user_id.nunique())
    train_codes = {u: k for k, u in enumerate(train_df.user_id.unique())}
    _, b, c = fit_1pl(train_df.user_id.map(train_codes).to_numpy(), tr_items, tr_y, n_train, n_items,
                      item_sd=IRT_ITEM_SD)

    grid = {(ELO_ALPHA, ELO_BETA), *ELO_GRID} if tune_on else {(ELO_ALPHA, ELO_BETA)}
    trained = {}
    for alpha, beta in sorted(grid):
        elo = Elo(len(user_codes), n_items, alpha, beta)
        elo.run(tr_users, tr_items, tr_y)
        trained[(alpha, beta)] = elo

    def replayed(role):
        f = frames[role][frames[role].replayed.to_numpy(dtype=bool)]
        return f.user_id.map(user_codes).to_numpy(), f.problem_id.map(item_codes).to_numpy(), \
            f.correct.to_numpy().astype(np.float64)

    info: dict = {"elo": {"alpha": ELO_ALPHA, "beta": ELO_BETA}}
    chosen = (ELO_ALPHA, ELO_BETA)
    if tune_on:
        chosen, table = tune_elo(trained, *replayed(tune_on))
        info["elo_tuned"] = {"alpha": chosen[0], "beta": chosen[1], "chosen_on": tune_on, "grid": table}

    out = {}
    for role, frame in frames.items():
        mask = frame.replayed.to_numpy(dtype=bool)
        users, items, y = replayed(role)
        all_items = frame.problem_id.map(item_codes).to_numpy()
        live = irt_live(b, c, all_items, frame.correct.to_numpy(), frame.pos.to_numpy() == 0)
        out[role] = {"item_difficulty": item_difficulty(tr_items, tr_y, n_items, items),
                     "elo": copy.deepcopy(trained[(ELO_ALPHA, ELO_BETA)]).run(users, items, y),
                     "elo_tuned": copy.deepcopy(trained[chosen]).run(users, items, y),
                     "irt_live": live[mask]}
        if "p_true" in frame:
            out[role]["truth"] = frame.p_true.to_numpy(dtype=np.float64)[mask]
    return out, info

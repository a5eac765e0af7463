"""Logistic knowledge-tracing baselines that count practice: PFA and Best-LR (pure numpy / scipy).

- `pfa` (Pavlik, Cen & Koedinger 2009): logit = intercept + item easiness + for each skill s of the
  item gamma_s log(1 + earlier successes in s) + rho_s log(1 + earlier failures in s).
- `best_lr` (Gervet et al. 2020, "When is deep learning the best approach to knowledge tracing?"):
  logit = intercept + item + skill(s) one-hots + per skill of the item log(1 + earlier attempts /
  successes / failures in s) (a weight per skill and count) + log(1 + earlier attempts / successes /
  failures at this item) + log(1 + earlier attempts / successes / failures in total) (three
  weights each, shared by all items and learners). No learner one-hot: the learners predicted
  are new (their own earlier attempts enter through the counts only).

"Earlier" is strictly before the attempt: an attempt's own outcome never enters its features.
Both are L2-regularised logistic regressions on a sparse design matrix, fitted by L-BFGS on the
training rows; the L2 weight is chosen from L2_GRID by the log-loss on the `tune_on` role's rows
(dev), and every role is predicted with that one choice. An item or skill absent from training
keeps weight 0 (the average). Skills: `skills_of[problem]` (names); an item without one counts
under a shared "(no skill)".
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize

from jobs.training.metrics import logloss

MODELS = ("best_lr", "pfa")
L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3)   # per-attempt L2 weight: loss = mean log-loss + l2 / 2 |w|^2
NO_SKILL = "(no skill)"
MAX_ITER = 500


class Encoding:
    """Items and skills as column numbers: item -> its skills as a CSR (indptr, skill codes)."""

    def __init__(self, skills_of: dict[str, list[str]]):
        self.items = {p: k for k, p in enumerate(sorted(skills_of))}
        names = sorted({s for ss in skills_of.values() for s in ss} | {NO_SKILL})
        self.skills = {s: k for k, s in enumerate(names)}
        lists = [[self.skills[s] for s in (skills_of[p] or [NO_SKILL])] for p in sorted(skills_of)]
        self.indptr = np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int64)
        self.skill_idx = np.fromiter((s for x in lists for s in x), dtype=np.int64, count=int(self.indptr[-1]))

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_skills(self) -> int:
        return len(self.skills)


def earlier(group: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(attempts, successes) before each row in its `group`, rows in time order within a group.

    group : (n,) int64 keys (e.g. learner * n_skills + skill); y : (n,) 0/1 outcomes."""
    order = np.argsort(group, kind="stable")          # groups together, time order kept inside
    g, yy = group[order], y[order].astype(np.float64)
    idx = np.arange(len(g))
    first = np.maximum.accumulate(np.where(np.r_[True, g[1:] != g[:-1]], idx, 0)) if len(g) else idx
    before = np.cumsum(yy) - yy                       # successes strictly before, over all rows
    attempts, successes = np.empty(len(g)), np.empty(len(g))
    attempts[order] = idx - first
    successes[order] = before - before[first]
    return attempts, successes


def _counts(attempts: np.ndarray, successes: np.ndarray) -> list[np.ndarray]:
    """log(1 + attempts), log(1 + successes), log(1 + failures)."""
    return [np.log1p(attempts), np.log1p(successes), np.log1p(attempts - successes)]


def design(model: str, frame: pd.DataFrame, enc: Encoding) -> sp.csr_matrix:
    """The (rows, columns) sparse features of `frame` (user_id, problem_id, correct; each learner's
    rows in time order) for `model` ("pfa" or "best_lr"); counts from the frame's earlier rows."""
    n, n_i, n_s = len(frame), enc.n_items, enc.n_skills
    users = pd.factorize(frame.user_id)[0].astype(np.int64)
    items = frame.problem_id.map(enc.items).to_numpy().astype(np.int64)
    y = frame.correct.to_numpy().astype(np.float64)
    per_row = enc.indptr[items + 1] - enc.indptr[items]
    row = np.repeat(np.arange(n), per_row)            # one (row, skill) pair per skill of the item
    within = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    skill = enc.skill_idx[enc.indptr[items][row] + within]
    s_att, s_succ = earlier(users[row] * n_s + skill, y[row])
    rows, cols, vals = [np.arange(n), np.arange(n)], [np.zeros(n, np.int64), 1 + items], [np.ones(n), np.ones(n)]
    base = 1 + n_i
    if model == "pfa":
        blocks = _counts(s_att, s_succ)[1:]           # successes, failures: gamma_s, rho_s
    elif model == "best_lr":
        rows.append(row)
        cols.append(base + skill)
        vals.append(np.ones(len(row)))
        base += n_s
        blocks = _counts(s_att, s_succ)
    else:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    for k, v in enumerate(blocks):                    # a weight per skill and count
        rows.append(row)
        cols.append(base + k * n_s + skill)
        vals.append(v)
    base += len(blocks) * n_s
    if model == "best_lr":                            # at this item, in total: shared weights
        shared = _counts(*earlier(users * n_i + items, y)) + _counts(*earlier(users, y))
        for k, v in enumerate(shared):
            rows.append(np.arange(n))
            cols.append(np.full(n, base + k))
            vals.append(v)
        base += len(shared)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, base))


def fit_logistic(X: sp.csr_matrix, y: np.ndarray, l2: float, w0: np.ndarray | None = None):
    """scipy's OptimizeResult of argmin_w mean(log-loss of sigmoid(X w)) + l2 / 2 |w[1:]|^2 (column
    0, the intercept, not penalised): the weights in `.x`, L-BFGS's iterations in `.nit`."""
    y = np.asarray(y, dtype=np.float64)
    n = max(len(y), 1)
    Xt = X.T.tocsr()
    penalised = np.ones(X.shape[1])
    penalised[0] = 0.0

    def loss(w):
        z = X @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) / n + 0.5 * l2 * float(np.sum(penalised * w * w))
        return value, Xt @ (p - y) / n + l2 * penalised * w

    start = np.zeros(X.shape[1]) if w0 is None else w0
    return minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER, "gtol": 1e-7})


def predict(X: sp.csr_matrix, w: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))


def kt_predictions(train_df: pd.DataFrame, frames: dict[str, pd.DataFrame], skills_of: dict[str, list[str]],
                   tune_on: str = "dev", grid: tuple[float, ...] = L2_GRID, models: tuple[str, ...] = MODELS
                   ) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """({role: {model: p of each replayed row}}, {model: the chosen L2 and the dev table}).

    Fitted on `train_df` alone (each learner's rows in time order). `frames[role]` holds the role's
    learners' whole sequences with a `replayed` column marking the rows to predict; earlier rows
    (e.g. before a production cut) only add to the counts. The L2 weight of each model is the
    grid value with the lowest log-loss on `frames[tune_on]`'s replayed rows; other roles are
    predicted once with it."""
    enc = Encoding(skills_of)
    y_train = train_df.correct.to_numpy().astype(np.float64)
    out: dict[str, dict[str, np.ndarray]] = {role: {} for role in frames}
    info: dict = {}
    for model in models:
        X_train = design(model, train_df, enc)
        X = {}
        for role, frame in frames.items():
            mask = frame.replayed.to_numpy(dtype=bool)
            X[role] = (design(model, frame, enc)[mask], frame.correct.to_numpy()[mask])
        fits, table, w = {}, [], None
        for l2 in sorted(grid, reverse=True):        # strongest first, each warm-starts the next
            fit = fit_logistic(X_train, y_train, l2, w)
            w = fits[l2] = fit.x
            table.append({"l2": l2, f"{tune_on}_logloss": round(logloss(X[tune_on][1], predict(X[tune_on][0], w)), 5),
                          "train_logloss": round(logloss(y_train, predict(X_train, w)), 5), "iterations": int(fit.nit)})
        chosen = min(table, key=lambda r: (r[f"{tune_on}_logloss"], -r["l2"]))["l2"]
        for role, (Xr, _) in X.items():
            out[role][model] = predict(Xr, fits[chosen])
        info[model] = {"l2": chosen, "chosen_on": tune_on, "features": X_train.shape[1],
                       "train_attempts": len(y_train), "grid": sorted(table, key=lambda r: r["l2"])}
    return out, info

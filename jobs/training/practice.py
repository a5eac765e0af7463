"""Practice models: candidates fitted on each learner's first attempt per item, evaluated the way
the service will use them (a live fit of held-out learners), chosen on the dev learners of the id
split (jobs.training.split), Platt-calibrated on them, and reported on its test learners, whom the
stored model never trains on. The candidates: LightFM embeddings with logistic loss (a small grid)
and the 1PL (jobs.training.irt), the simple model the service must never predict worse than; the
one with the lowest calibrated dev log-loss serves. The fitting and replay are in
jobs.training.practice_fit, the further choices on dev in jobs.training.practice_choices; this
module runs the steps. Pure numpy/scipy/LightFM: no SQL."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from app.model.artifact import Calibration
from app.online.fit import HISTORY_MAX, score
from app.online.learning import sequence_features
from jobs.training import calibration as cal
from jobs.training import split
from jobs.training.metrics import probability_metrics
from jobs.training.practice_choices import (
    HALF_LIVES,
    RECENCY_MARGIN,
    SKILL_TERMS,
    candidate_summary,
    choose_metadata_prior,
    choose_recency,
    choose_skill_terms,
    first_attempt_p,
    item_feature_table,
    metadata_shifts,
    prior_means,
    retry_calibration,
)
from jobs.training.practice_fit import (
    FittedModel,
    OnePL,
    Params,
    PracticeData,
    difficulty_baseline,
    fit,
    fold_in_predictions,
    replay_auc,
    skill_index,
    skill_replays,
)

# Names callers have long imported from here (the job, tests, benches).
__all__ = ["DEFAULT_GRID", "HALF_LIVES", "ONE_PL_GRID", "RECENCY_MARGIN", "SKILL_TERMS", "DevPredictions",
           "FittedModel", "OnePL", "Params", "PracticeData", "PracticeResult", "fit", "fold_in_predictions",
           "item_feature_table", "replay_auc", "retry_calibration", "skill_index", "skill_replays",
           "train_practice"]

# Tried in every unit beside the embedding grid (cheap: one L-BFGS fit and a 2-parameter replay).
ONE_PL_GRID = (OnePL(1.0), OnePL(2.0))


@dataclass
class PracticeResult:
    fitted: FittedModel
    params: Params
    calibration: Calibration
    metrics: dict                # held-out test learners: the model, uncalibrated ECE, the baseline
    search: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    test_users: np.ndarray | None = None      # user indices: the test learners the metrics describe
    dev_users: np.ndarray | None = None       # user indices: the dev learners tuning and calibration used
    trained_users: np.ndarray | None = None   # user indices: the learners `fitted` was trained on
    dev: DevPredictions | None = None         # the chosen candidate's calibrated dev predictions
    metadata_prior: dict | None = None        # {"tokens", "shifts", "indicators"}: a learner's prior from metadata


@dataclass
class DevPredictions:
    """Calibrated p of each replayed dev attempt of the chosen candidate (fitted on train learners
    only), by user and item index: what a child unit's model is compared with."""
    users: np.ndarray
    items: np.ndarray
    p: np.ndarray
    y: np.ndarray


# A small grid, ordered so the first trials are the likeliest winners: the tuner stops at the
# trial budget or the time budget, whichever comes first. On ASSISTments 2009 (validation
# learners, live fit from half their history) 32-64 components with little regularisation
# reached AUC 0.82, 16 components 0.80, 8 components 0.79; alpha 1e-4 fell to 0.69; 15 epochs
# at learning rate 0.1 matched 30 at 0.05 in half the time. The Gaussian prior of the live fit
# does the regularising that alpha would otherwise do.
DEFAULT_GRID = (
    Params(32, 15, 1e-6, 0.1), Params(48, 20, 1e-6, 0.08), Params(16, 15, 1e-6, 0.1),
    Params(32, 30, 1e-6, 0.05), Params(64, 20, 1e-6, 0.08), Params(32, 15, 1e-5, 0.1),
)


def train_practice(data: PracticeData, grid=DEFAULT_GRID, max_trials: int = 4, time_budget_s: float = 60.0,
                   seed: int = 0, threads: int = 2, refit_all: bool = True, max_eval_users: int = 1000,
                   split_seed: int = split.SEED, hold_out_test: bool = True,
                   one_pl_grid=ONE_PL_GRID, dev_sequences: Callable[[list[str]], PracticeData] | None = None
                   ) -> PracticeResult:
    """Choose a candidate on dev learners, calibrate it on them, report on test learners, then refit.

    Roles come from the learner ids (jobs.training.split with `split_seed`), so they agree with
    every other unit and with the benches. Candidates (the first `max_trials` of the embedding
    `grid` within the time budget, then every 1PL of `one_pl_grid`) fit the train learners; each is
    Platt-calibrated on the dev learners' replay and the lowest calibrated dev log-loss wins. The
    final refit (`refit_all`) adds the dev learners and, unless `hold_out_test`, the test learners
    too: held out, they stay unseen by every stored model, which keeps comparisons between models
    honest. Dev and test learners are replayed attempt by attempt (fold_in_predictions), so the
    calibration is fitted on, and the metrics describe, the predictions the service makes; at most
    `max_eval_users` of each, the ones with the smallest split keys. `dev_sequences`, given the
    dev learners' ids, returns all their attempts (repeats included); the chosen candidate then
    replays those and the calibration gains retry offsets (jobs.training.retry).
    """
    started = time.perf_counter()
    keys = split.split_keys(data.user_ids, split_seed)
    role = split.roles_of_keys(keys)
    train_rows = role[data.users] == split.TRAIN
    # Replaying learners costs a live fit per attempt: bound it on very large units.
    val_users, test_users = (split.first_by_key(np.flatnonzero(role == r), keys, max_eval_users)
                             for r in (split.DEV, split.TEST))

    search, best = search_candidates(data, [*grid[:max_trials], *one_pl_grid], train_rows, val_users, started,
                                     time_budget_s, seed, threads)
    params, fitted = best.params, best.fitted
    chosen = refine_on_dev(fitted, data, train_rows, val_users, best.replay, dev_sequences)
    metrics, dev = report(fitted, data, train_rows, test_users, chosen, params, search)
    error = item_error(fitted, chosen.calibration, dev)
    if error is not None:   # the knowledge interval's share for the item's own error (app.online.knowledge)
        chosen.calibration = replace(chosen.calibration, item_sd=error[0], item_slope_sd=error[1])
        metrics["item_error"] = {"sd": round(error[0], 4), "slope_sd": round(error[1], 4)}
    trained = role == split.TRAIN
    if refit_all:
        trained = (role != split.TEST) if hold_out_test else np.ones(len(role), dtype=bool)
        fitted = fit(data, params, trained[data.users], seed, threads)
    if chosen.metadata is not None:   # the shifts of the model that serves, regressed on the learners it trained on
        chosen.metadata["shifts"] = metadata_shifts(fitted, chosen.metadata["indicators"], trained)
    return PracticeResult(fitted, params, chosen.calibration, metrics, search, time.perf_counter() - started,
                          test_users, val_users, np.flatnonzero(trained), dev, chosen.metadata)


def item_error(fitted: FittedModel, calibration: Calibration, dev: DevPredictions) -> tuple[float, float] | None:
    """cal.item_error of the dev replay: each attempt's distance is the learner's calibrated logit
    on the item minus the population's (the prior mean's, Platt-calibrated), as the service
    computes it (app.online.knowledge.population_logits)."""
    population = calibration.a * score(fitted.prior_mean, fitted.item_vectors.astype(np.float64),
                                       fitted.item_biases.astype(np.float64)) + calibration.b
    q = np.clip(dev.p, 1e-9, 1 - 1e-9)
    return cal.item_error(dev.items, dev.p, dev.y, np.log(q) - np.log1p(-q) - population[dev.items])


@dataclass
class Candidate:
    """The best candidate so far on dev: its calibrated log-loss, parameters, fit, its dev replay
    (raw logits, row index, Platt calibration) and its row of the search table."""
    score: float
    params: Params | OnePL
    fitted: FittedModel
    replay: tuple
    trial: dict


def search_candidates(data: PracticeData, candidates: list, train_rows: np.ndarray, val_users: np.ndarray,
                      started: float, time_budget_s: float, seed: int, threads: int) -> tuple[list[dict], Candidate]:
    """Fit each candidate on the train learners, replay and Platt-calibrate it on the dev learners;
    the lowest calibrated dev log-loss wins. Embeddings stop at the time budget; the 1PL always runs."""
    search, best = [], None
    for i, params in enumerate(candidates):
        if i and isinstance(params, Params) and time.perf_counter() - started > time_budget_s:
            continue            # out of time for embeddings; the 1PL candidates still run
        t0 = time.perf_counter()
        fitted = fit(data, params, train_rows, seed, threads)
        raw, y, rows = fold_in_predictions(fitted, data, val_users)
        calibration = cal.fit_platt(raw, y)
        m = probability_metrics(y, cal.apply(calibration, raw)) if len(y) else {"auc": float("nan")}
        trial = {**asdict(params), "val_auc": m["auc"], "val_logloss": m.get("logloss"),
                 "seconds": round(time.perf_counter() - t0, 3)}
        search.append(trial)
        score = m.get("logloss", float("nan"))
        trial["chosen"] = False
        if best is None or (np.isfinite(score) and not score >= best.score):
            best = Candidate(score if np.isfinite(score) else np.inf, params, fitted, (raw, rows, calibration), trial)
    best.trial["chosen"] = True
    return search, best


@dataclass
class DevChoices:
    """What the dev replay chose beside the candidate, and the dev replay under those choices."""
    calibration: Calibration
    half_life: float | None
    recency: list[dict]
    skill: object
    skill_table: list[dict] | None
    metadata: dict | None
    metadata_info: dict | None
    retry_info: dict | None
    means: np.ndarray | None
    val_raw: np.ndarray
    val_rows: np.ndarray


def refine_on_dev(fitted: FittedModel, data: PracticeData, train_rows: np.ndarray, val_users: np.ndarray,
                  replay: tuple, dev_sequences: Callable[[list[str]], PracticeData] | None) -> DevChoices:
    """Recency, skill terms, a metadata prior, then the calibration of every attempt (retry and
    learning terms), each kept only when the dev replay says so."""
    half_life, recency, replays = choose_recency(fitted, data, val_users, replay)
    skill, skill_table, replay = choose_skill_terms(fitted, data, val_users, half_life, replays[half_life])
    metadata, metadata_info, (val_raw, val_rows, calibration) = choose_metadata_prior(
        fitted, data, train_rows, val_users, half_life, skill, replay)
    means = prior_means(fitted, metadata)
    retry_info = None
    if dev_sequences is not None and len(val_users):
        calibration, retry_info = retry_calibration(fitted, dev_sequences([data.user_ids[u] for u in val_users]),
                                                    calibration, half_life, skill, means)
    calibration = replace(calibration, half_life=half_life, skill=skill)
    return DevChoices(calibration, half_life, recency, skill, skill_table, metadata, metadata_info, retry_info,
                      means, val_raw, val_rows)


def report(fitted: FittedModel, data: PracticeData, train_rows: np.ndarray, test_users: np.ndarray,
           chosen: DevChoices, params: Params | OnePL, search: list[dict]) -> tuple[dict, DevPredictions]:
    """The test learners' figures (the model, its uncalibrated ECE, the item-difficulty baseline)
    and the calibrated dev predictions a child unit is compared with."""
    calibration = chosen.calibration
    test_raw, test_y, test_rows = fold_in_predictions(fitted, data, test_users, half_life=chosen.half_life,
                                                      skill=chosen.skill, prior_means=chosen.means)
    # with learning terms, a and b were fitted beside them: the first attempts are scored with them too
    # (their counts then count earlier first attempts; the service counts repeats as well)
    practice = sequence_features(data.users, data.items, data.outcomes, data.times, data.item_skills, HISTORY_MAX) \
        if calibration.learning is not None and data.times is not None else None
    baseline_p = difficulty_baseline(data, train_rows)
    metrics = {
        "model": probability_metrics(test_y, first_attempt_p(calibration, test_raw, practice, test_rows)),
        "model_uncalibrated_ece": probability_metrics(test_y, cal.sigmoid(test_raw))["ece"],
        "baseline": probability_metrics(data.outcomes[test_rows], baseline_p[data.items[test_rows]]),
        "baseline_name": "item_difficulty",
        "candidate": params.kind,
        "dev": candidate_summary(search),
        "recency": chosen.recency,
    }
    if chosen.skill_table:
        metrics["skill_terms"] = chosen.skill_table
    if chosen.metadata_info:
        metrics["metadata_prior"] = chosen.metadata_info
    if chosen.retry_info:
        metrics["dev_all_attempts"] = chosen.retry_info
    val_rows = chosen.val_rows
    dev = DevPredictions(data.users[val_rows], data.items[val_rows],
                         first_attempt_p(calibration, chosen.val_raw, practice, val_rows), data.outcomes[val_rows])
    return metrics, dev

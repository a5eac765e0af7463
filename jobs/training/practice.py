"""Practice models: candidates fitted on each learner's first attempt per item, evaluated the way
the service will use them (a live fit of held-out learners), chosen on the dev learners of the id
split (jobs.training.split), Platt-calibrated on them, and reported on its test learners, whom the
stored model never trains on. The candidates: LightFM embeddings with logistic loss (a small grid)
and the 1PL (jobs.training.irt), the simple model the service must never predict worse than; the
one with the lowest calibrated dev log-loss serves. Pure numpy/scipy/LightFM: no SQL."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from app.model.artifact import Calibration, ItemFeatures, SkillTerms
from app.online.fit import HISTORY_MAX, fit_user, prior_from_users, recency_weights, skill_offsets
from app.online.learning import sequence_features
from app.online.metadata import fit_metadata_prior
from app.online.scoring import calibrated
from jobs.training import calibration as cal
from jobs.training import split
from jobs.training.features import FeatureSet, token_columns, token_indicators
from jobs.training.irt import ABILITY_SD, fit_1pl
from jobs.training.learning import choose_learning_terms
from jobs.training.metrics import probability_metrics
from jobs.training.retry import fit_retry_calibration, last_outcomes


@dataclass
class PracticeData:
    """First attempts under one unit, rows grouped by user and in time order within a user."""
    user_ids: list[str]
    item_ids: list[str]          # every item under the unit, attempted or not
    users: np.ndarray            # (n,) int32 user index of each attempt
    items: np.ndarray            # (n,) int32 item index
    outcomes: np.ndarray         # (n,) int8 1 correct, 0 wrong
    item_features: FeatureSet | None = None
    user_features: FeatureSet | None = None
    item_skills: np.ndarray | None = None   # (n_items,) each item's skill index (-1 none); None: one skill
    learner_share: float = 1.0   # the share of the unit's learners loaded (TrainConfig.max_attempts)
    times: np.ndarray | None = None   # (n,) float64 epoch seconds of each attempt (all-attempt sequences)


def skill_index(items: list[dict]) -> tuple[np.ndarray | None, list[str]]:
    """Each item's skill: its first direct unit (units sorted by id), as an index into the returned
    unit ids; (None, []) when the unit's items span fewer than two skills (nothing to trace)."""
    first = [(i.get("units") or [None])[0] for i in items]
    names = sorted({u for u in first if u is not None})
    if len(names) < 2:
        return None, []
    position = {u: k for k, u in enumerate(names)}
    return np.array([position.get(u, -1) for u in first], dtype=np.int32), names


@dataclass(frozen=True)
class Params:
    """An embedding candidate (LightFM, logistic loss)."""
    no_components: int = 16
    epochs: int = 20
    alpha: float = 1e-5          # item_alpha and user_alpha (L2 per sample)
    learning_rate: float = 0.05
    kind: str = "embedding"


@dataclass(frozen=True)
class OnePL:
    """A 1PL candidate: logit = ability + easiness; item difficulties ~ N(0, item_sd^2)."""
    item_sd: float = 1.0
    kind: str = "1pl"


# Recency half-lives (in attempts) the dev replay chooses from; None: no recency weighting.
HALF_LIVES = (None, 30, 150)
RECENCY_MARGIN = 0.001     # dev log-loss recency or skill terms must gain to be used
# Per-skill learner offsets the dev replay chooses from (fit.skill_offsets): the prior sd of an
# offset and the half-life (in attempts at that skill) of its recency weights. On the ASSISTments
# dev learners (all attempts, root model) sd 0.6 / half-life 5 cut log-loss 0.434 -> 0.427 and
# raised AUC 0.850 -> 0.856; sd 1.0 / half-life 10 came close; without recency, less.
SKILL_TERMS = (SkillTerms(0.6, 5), SkillTerms(1.0, 10))
COLD_ATTEMPTS = 10     # a metadata prior is judged on each dev learner's first attempts, where it matters
# Tried in every unit beside the embedding grid (cheap: one L-BFGS fit and a 2-parameter replay).
ONE_PL_GRID = (OnePL(1.0), OnePL(2.0))


@dataclass
class FittedModel:
    item_vectors: np.ndarray     # (n_items, d) float32
    item_biases: np.ndarray      # (n_items,) float32
    prior_mean: np.ndarray       # (d + 1,) over [u, b_u]
    prior_cov: np.ndarray        # (d + 1, d + 1)
    item_feature_vectors: np.ndarray | None = None   # (n_item_features, d): hybrid modes, for new items
    item_feature_biases: np.ndarray | None = None
    user_vectors: np.ndarray | None = None   # (n_users, d) rows as data.user_ids; only trained rows mean anything
    user_biases: np.ndarray | None = None    # (n_users,)


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


def fit(data: PracticeData, params: Params | OnePL, rows: np.ndarray, seed: int = 0, threads: int = 2
        ) -> FittedModel:
    """Fit the candidate `params` on the attempts selected by the boolean mask `rows`."""
    if isinstance(params, OnePL):
        return fit_one_pl(data, params, rows)
    return fit_embedding(data, params, rows, seed, threads)


def fit_one_pl(data: PracticeData, params: OnePL, rows: np.ndarray) -> FittedModel:
    """The 1PL as a FittedModel the service serves unchanged: one zero item dimension, item bias
    c - difficulty, the learner's bias their ability with the fit's own prior N(0, ABILITY_SD^2)."""
    n_users, n_items = len(data.user_ids), len(data.item_ids)
    theta, difficulty, c = fit_1pl(data.users[rows], data.items[rows], data.outcomes[rows], n_users, n_items,
                                   item_sd=params.item_sd)
    prior_cov = np.diag([1.0, ABILITY_SD ** 2])     # [unused vector dimension, ability]
    return FittedModel(np.zeros((n_items, 1), dtype=np.float32), (c - difficulty).astype(np.float32),
                       np.zeros(2), prior_cov, user_vectors=np.zeros((n_users, 1), dtype=np.float32),
                       user_biases=theta.astype(np.float32))


def fit_embedding(data: PracticeData, params: Params, rows: np.ndarray, seed: int = 0, threads: int = 2
                  ) -> FittedModel:
    """Train LightFM on the attempts selected by the boolean mask `rows`."""
    n_users, n_items = len(data.user_ids), len(data.item_ids)
    labels = np.where(data.outcomes[rows] > 0, 1.0, -1.0).astype(np.float32)
    matrix = sp.coo_matrix((labels, (data.users[rows], data.items[rows])), shape=(n_users, n_items))
    item_x = data.item_features.matrix if data.item_features else None
    user_x = data.user_features.matrix if data.user_features else None
    model = LightFM(loss="logistic", no_components=params.no_components, learning_rate=params.learning_rate,
                    item_alpha=params.alpha, user_alpha=params.alpha, random_state=seed)
    model.fit(matrix, user_features=user_x, item_features=item_x, epochs=params.epochs, num_threads=threads)
    item_biases, item_vectors = model.get_item_representations(item_x)
    user_biases, user_vectors = model.get_user_representations(user_x)

    trained_items = np.zeros(n_items, dtype=bool)
    trained_items[data.items[rows]] = True
    if item_x is None and (~trained_items).any() and trained_items.any():
        # An item nobody attempted has only LightFM's random start: serve the population's
        # average item instead. (In hybrid modes its features give it a real vector.)
        item_vectors[~trained_items] = item_vectors[trained_items].mean(axis=0)
        item_biases[~trained_items] = item_biases[trained_items].mean()
    trained_users = np.unique(data.users[rows])
    mean, cov = prior_from_users(user_vectors[trained_users], user_biases[trained_users])
    fitted = FittedModel(item_vectors.astype(np.float32), item_biases.astype(np.float32), mean, cov,
                         user_vectors=user_vectors, user_biases=user_biases)
    if item_x is not None:
        # Per-feature embeddings give an item added after this training its vector from its metadata.
        fitted.item_feature_vectors = model.item_embeddings.astype(np.float32)
        fitted.item_feature_biases = model.item_biases.astype(np.float32)
    return fitted


def fold_in_predictions(fitted: FittedModel, data: PracticeData, users: np.ndarray, history_max: int = HISTORY_MAX,
                        half_life: float | None = None, skill: SkillTerms | None = None,
                        prior_means: np.ndarray | None = None, learner_biases: list | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay each user's attempts in order as the service would: predict attempt t from a live
    fit of the attempts before it (the most recent `history_max`, weighted by recency with
    `half_life` attempts when given), then reveal it. With `skill` terms
    and `data.item_skills`, the prediction adds the learner's offset in the item's skill, fitted
    on the same window as the service does (fit.skill_offsets). `prior_means` ((n_users, d + 1)):
    each learner's own prior mean (their metadata's, choose_metadata_prior) instead of the model's.

    Returns (raw logits, outcomes, row index) of every predicted attempt.
    """
    raws, rows = skill_replays(fitted, data, users, (skill,) if skill else (), history_max, half_life, prior_means,
                               learner_biases)
    return raws[-1], data.outcomes[rows].astype(np.int8), rows


def skill_replays(fitted: FittedModel, data: PracticeData, users: np.ndarray, grid: tuple = (),
                  history_max: int = HISTORY_MAX, half_life: float | None = None,
                  prior_means: np.ndarray | None = None, learner_biases: list | None = None
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """One replay (fold_in_predictions) scored without skill terms and with each of `grid`: the skill
    offsets add to a prediction but do not move the live fit, so one pass of fits serves them all.
    Returns ([raw logits without, then with each of grid], row index of every predicted attempt)."""
    skills = data.item_skills if grid else None
    precision = np.linalg.inv(fitted.prior_cov)
    wanted = np.zeros(len(data.user_ids), dtype=bool)
    wanted[users] = True
    starts = np.flatnonzero(np.r_[True, data.users[1:] != data.users[:-1]])
    ends = np.r_[starts[1:], len(data.users)]
    V, b = fitted.item_vectors.astype(np.float64), fitted.item_biases.astype(np.float64)
    raws: list[list[float]] = [[] for _ in range(1 + len(grid))]
    rows = []
    for s, e in zip(starts, ends):
        if not wanted[data.users[s]]:
            continue
        mean = fitted.prior_mean if prior_means is None else prior_means[data.users[s]]
        theta = mean
        for t in range(s, e):
            item = data.items[t]
            raw = float(V[item] @ theta[:-1] + theta[-1] + b[item])
            raws[0].append(raw)
            if learner_biases is not None:    # the live fit's own bias at this prediction (retry terms)
                learner_biases.append(float(theta[-1]))
            if skills is not None:
                same = np.empty(0, dtype=np.int64)
                if skills[item] >= 0:
                    window = max(s, t - history_max)     # the attempts the service would see
                    same = np.flatnonzero(skills[data.items[window:t]] == skills[item]) + window
                seen = data.items[same]
                seen_raw = V[seen] @ theta[:-1] + theta[-1] + b[seen]
                one_skill = np.zeros(len(same), dtype=np.int64)
                for k, terms in enumerate(grid, start=1):
                    raws[k].append(raw + skill_offsets(seen_raw, data.outcomes[same], one_skill, 1, terms.sd,
                                                       terms.half_life)[0])
            rows.append(t)
            lo = max(s, t + 1 - history_max)
            seen = data.items[lo:t + 1]
            # warm start from the previous estimate: one attempt moves it little, 3 steps suffice
            weights = recency_weights(len(seen), half_life) if half_life else None
            theta = fit_user(V[seen], b[seen], data.outcomes[lo:t + 1], mean, precision,
                             weights=weights, steps=3, start=theta)
    if skills is None:      # a unit of one skill: nothing to add
        raws[1:] = [raws[0]] * len(grid)
    return [np.array(r, dtype=np.float64) for r in raws], np.array(rows, dtype=np.int64)


def difficulty_baseline(data: PracticeData, train_rows: np.ndarray, prior_weight: float = 5.0) -> np.ndarray:
    """The item-difficulty baseline: each item's smoothed success rate among training attempts."""
    n_items = len(data.item_ids)
    attempts = np.bincount(data.items[train_rows], minlength=n_items)
    correct = np.bincount(data.items[train_rows], weights=data.outcomes[train_rows], minlength=n_items)
    overall = correct.sum() / max(attempts.sum(), 1)
    return (correct + prior_weight * overall) / (attempts + prior_weight)


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

    candidates = [*grid[:max_trials], *one_pl_grid]
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
        if best is None or (np.isfinite(score) and not score >= best[0]):
            best = (score if np.isfinite(score) else np.inf, params, fitted, calibration, raw, rows, trial)
    _, params, fitted, calibration, val_raw, val_rows, chosen = best
    chosen["chosen"] = True
    half_life, recency, replays = choose_recency(fitted, data, val_users, (val_raw, val_rows, calibration))
    val_raw, val_rows, calibration = replays[half_life]
    skill, skill_table, (val_raw, val_rows, calibration) = choose_skill_terms(
        fitted, data, val_users, half_life, (val_raw, val_rows, calibration))
    metadata, metadata_info, (val_raw, val_rows, calibration) = choose_metadata_prior(
        fitted, data, train_rows, val_users, half_life, skill, (val_raw, val_rows, calibration))
    means = prior_means(fitted, metadata)
    retry_info = None
    if dev_sequences is not None and len(val_users):
        calibration, retry_info = retry_calibration(fitted, dev_sequences([data.user_ids[u] for u in val_users]),
                                                    calibration, half_life, skill, means)
    calibration = replace(calibration, half_life=half_life, skill=skill)

    test_raw, test_y, test_rows = fold_in_predictions(fitted, data, test_users, half_life=half_life, skill=skill,
                                                      prior_means=means)
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
        "recency": recency,
    }
    if skill_table:
        metrics["skill_terms"] = skill_table
    if metadata_info:
        metrics["metadata_prior"] = metadata_info
    if retry_info:
        metrics["dev_all_attempts"] = retry_info
    dev = DevPredictions(data.users[val_rows], data.items[val_rows],
                         first_attempt_p(calibration, val_raw, practice, val_rows),
                         data.outcomes[val_rows])
    trained = role == split.TRAIN
    if refit_all:
        trained = (role != split.TEST) if hold_out_test else np.ones(len(role), dtype=bool)
        fitted = fit(data, params, trained[data.users], seed, threads)
    if metadata is not None:   # the shifts of the model that serves, regressed on the learners it trained on
        metadata["shifts"] = metadata_shifts(fitted, metadata["indicators"], trained)
    return PracticeResult(fitted, params, calibration, metrics, search, time.perf_counter() - started, test_users,
                          val_users, np.flatnonzero(trained), dev, metadata)


def choose_recency(fitted: FittedModel, data: PracticeData, users: np.ndarray, equal_weights: tuple
                   ) -> tuple[float | None, list[dict], dict]:
    """The live fit may weigh recent attempts more (learners learn and forget): replay the dev
    `users` with each half-life of HALF_LIVES (in attempts), Platt-calibrate each, and keep the
    lowest dev log-loss if it beats equal weights (`equal_weights`: their (raw, rows, calibration),
    already replayed) by more than RECENCY_MARGIN: a difference in the noise decides nothing.
    Returns (half-life or None, each one's dev log-loss, {half-life: (raw, rows, calibration)})."""
    replays = {None: equal_weights}
    for half_life in HALF_LIVES:
        if half_life is not None:
            raw, _, rows = fold_in_predictions(fitted, data, users, half_life=half_life)
            replays[half_life] = (raw, rows, cal.fit_platt(raw, data.outcomes[rows]))
    losses = {h: probability_metrics(data.outcomes[rows], cal.apply(platt, raw))["logloss"] if len(rows) else np.nan
              for h, (raw, rows, platt) in replays.items()}
    table = [{"half_life": h, "val_logloss": losses[h]} for h in replays]
    tried = {h: v for h, v in losses.items() if h is not None and np.isfinite(v)}
    best = min(tried, key=tried.get, default=None)
    bar = losses[None] if np.isfinite(losses[None]) else np.inf
    return (best if best is not None and tried[best] < bar - RECENCY_MARGIN else None), table, replays


def choose_skill_terms(fitted: FittedModel, data: PracticeData, users: np.ndarray, half_life: float | None,
                       without: tuple) -> tuple[SkillTerms | None, list[dict], tuple]:
    """Per-skill learner offsets (knowledge tracing): replay the dev `users` with each of
    SKILL_TERMS and keep the lowest calibrated dev log-loss if it beats none (`without`: the replay
    without them, (raw, rows, calibration)) by more than RECENCY_MARGIN. A unit whose items span
    fewer than two skills has nothing to trace. Returns (terms or None, each one's dev log-loss,
    the chosen replay)."""
    if data.item_skills is None or not len(users):
        return None, [], without
    replays = {None: without}
    raws, rows = skill_replays(fitted, data, users, SKILL_TERMS, half_life=half_life)
    for k, raw in enumerate(raws[1:]):
        replays[k] = (raw, rows, cal.fit_platt(raw, data.outcomes[rows]))
    losses = {k: probability_metrics(data.outcomes[rows], cal.apply(platt, raw))["logloss"] if len(rows) else np.nan
              for k, (raw, rows, platt) in replays.items()}
    table = [{**(SKILL_TERMS[k].to_json() if k is not None else {"sd": 0}), "val_logloss": losses[k]}
             for k in replays]
    tried = {k: v for k, v in losses.items() if k is not None and np.isfinite(v)}
    best = min(tried, key=tried.get, default=None)
    bar = losses[None] if np.isfinite(losses[None]) else np.inf
    if best is None or not tried[best] < bar - RECENCY_MARGIN:
        return None, table, without
    return SKILL_TERMS[best], table, replays[best]


def item_feature_table(fitted: FittedModel, data: PracticeData) -> ItemFeatures | None:
    """The metadata tokens' embeddings of a hybrid embedding model (ids and text left out), for the
    service to build a vector for an item that joined the catalogue after this training."""
    if fitted.item_feature_vectors is None or data.item_features is None:
        return None
    cols = token_columns(data.item_features, len(data.item_ids))
    if not cols:
        return None
    return ItemFeatures([data.item_features.names[k] for k in cols], fitted.item_feature_vectors[cols],
                        fitted.item_feature_biases[cols])


def metadata_indicators(data: PracticeData) -> tuple[list[str], np.ndarray] | None:
    """The learners' categorical metadata tokens (the hybrid modes' user features, without ids and
    text) as 0/1 indicators (n_users, T); None in mf mode or when no learner has any."""
    return token_indicators(data.user_features, len(data.user_ids))


def metadata_shifts(fitted: FittedModel, indicators: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Each token's shift of the prior mean, regressed on the fitted [u, b_u] of `users` (a mask)."""
    theta = np.hstack([fitted.user_vectors, fitted.user_biases[:, None]]).astype(np.float64)
    return fit_metadata_prior(theta[users], indicators[users])


def prior_means(fitted: FittedModel, metadata: dict | None) -> np.ndarray | None:
    """Each learner's prior mean under `metadata` ({"tokens", "shifts", "indicators"}), None without it."""
    if metadata is None:
        return None
    return fitted.prior_mean + metadata["indicators"] @ metadata["shifts"]


def choose_metadata_prior(fitted: FittedModel, data: PracticeData, train_rows: np.ndarray, users: np.ndarray,
                          half_life: float | None, skill: SkillTerms | None, without: tuple
                          ) -> tuple[dict | None, dict | None, tuple]:
    """Cold start from metadata (hybrid modes): a learner's prior mean shifted by their tokens
    (a ridge regression of the train learners' fitted vectors on their tokens). A prior matters
    while a learner has few attempts, so it is judged there: used when the dev `users`, replayed
    from their own prior, beat the population prior (`without`) on their first COLD_ATTEMPTS
    attempts by more than RECENCY_MARGIN in log-loss, and are no worse over all their attempts.
    Returns (the shifts or None, the comparison, the chosen replay)."""
    found = metadata_indicators(data)
    if found is None or not len(users):
        return None, None, without
    tokens, indicators = found
    trained = np.zeros(len(data.user_ids), dtype=bool)
    trained[data.users[train_rows]] = True
    metadata = {"tokens": tokens, "shifts": metadata_shifts(fitted, indicators, trained), "indicators": indicators}
    raw, _, rows = fold_in_predictions(fitted, data, users, half_life=half_life, skill=skill,
                                       prior_means=prior_means(fitted, metadata))
    replay = (raw, rows, cal.fit_platt(raw, data.outcomes[rows]))
    position = attempt_positions(data.users)

    def losses(raw, rows, platt):
        if not len(rows):
            return np.nan, np.nan
        y, p = data.outcomes[rows], cal.apply(platt, raw)
        early = position[rows] < COLD_ATTEMPTS
        return probability_metrics(y, p)["logloss"], probability_metrics(y[early], p[early])["logloss"]

    (loss, early), (base, base_early) = losses(*replay), losses(*without)
    used = bool(np.isfinite(early) and np.isfinite(base_early) and early < base_early - RECENCY_MARGIN
                and loss <= base)
    info = {"tokens": len(tokens), "val_logloss": loss, "population_val_logloss": base,
            "first_attempts": COLD_ATTEMPTS, "val_logloss_first": early, "population_val_logloss_first": base_early,
            "used": used}
    return (metadata, info, replay) if used else (None, info, without)


def attempt_positions(users: np.ndarray) -> np.ndarray:
    """Each row's position in its learner's sequence (rows grouped by learner, in order): 0, 1, ..."""
    n = len(users)
    if not n:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(n)
    starts = np.r_[True, users[1:] != users[:-1]]
    return index - np.maximum.accumulate(np.where(starts, index, 0))


MIN_RETRIES = 20     # fewer dev retries than this: no retry offsets (the Platt pair alone)
MIN_LEARNING_ATTEMPTS = 200   # fewer dev attempts than this: no learning terms (nothing to cross-fit on)


def first_attempt_p(calibration: Calibration, raw: np.ndarray, practice: np.ndarray | None, rows: np.ndarray
                    ) -> np.ndarray:
    """Calibrated p of first attempts (no retry terms apply): with the learning terms when the
    calibration has them and `practice` (FEATURES of every row of the data) is given."""
    if practice is None:
        return cal.apply(calibration, raw)
    return calibrated(calibration, raw, None, practice[rows])


def retry_calibration(fitted: FittedModel, sequences: PracticeData, platt: Calibration,
                      half_life: float | None = None, skill: SkillTerms | None = None, means: np.ndarray | None = None
                      ) -> tuple[Calibration, dict]:
    """The calibration with retry offsets, fitted on the replay of every dev attempt in
    `sequences` (repeats included, as the service sees them), and its dev figures beside the
    Platt pair's on the same attempts. Too few retries: the Platt pair, unchanged. When the
    sequences carry times, the learning terms (practice and time away, jobs.training.learning)
    join it if they predict held-out dev learners better."""
    learner_biases: list[float] = []
    raw, y, rows = fold_in_predictions(fitted, sequences, np.unique(sequences.users), half_life=half_life,
                                       skill=skill, prior_means=means, learner_biases=learner_biases)
    starts = np.r_[True, sequences.users[1:] != sequences.users[:-1]] if len(sequences.users) else np.empty(0, bool)
    previous = last_outcomes(sequences.items, sequences.outcomes, starts)[rows]
    biases = np.column_stack([fitted.item_biases[sequences.items[rows]].astype(np.float64),
                              np.asarray(learner_biases, dtype=np.float64)]) if len(rows) else np.zeros((0, 2))
    retries = int((previous >= 0).sum())
    info = {"attempts": len(y), "retries": retries, "platt_logloss": None, "logloss": None}

    def without(mask: np.ndarray) -> Calibration:
        return fit_retry_calibration(raw[mask], previous[mask], y[mask], biases=biases[mask]) \
            if retries >= MIN_RETRIES else cal.fit_platt(raw[mask], y[mask])

    calibration = without(np.ones(len(y), dtype=bool)) if retries >= MIN_RETRIES else platt
    practice = None
    if sequences.times is not None and len(y) >= MIN_LEARNING_ATTEMPTS:
        practice = sequence_features(sequences.users, sequences.items, sequences.outcomes, sequences.times,
                                     sequences.item_skills, HISTORY_MAX)[rows]
        chosen, info["learning"] = choose_learning_terms(raw, previous, y, practice, sequences.users[rows], without,
                                                         biases)
        calibration = chosen or calibration
    if retries < MIN_RETRIES and calibration.learning is None:
        return platt, info
    info["platt_logloss"] = probability_metrics(y, cal.apply(platt, raw))["logloss"]
    info["logloss"] = probability_metrics(y, calibrated(calibration, raw, previous, practice, biases))["logloss"]
    is_retry = previous >= 0
    if retries:
        info["retries_platt_logloss"] = probability_metrics(y[is_retry], cal.apply(platt, raw[is_retry]))["logloss"]
        retry_practice = None if practice is None else practice[is_retry]
        info["retries_logloss"] = probability_metrics(y[is_retry], calibrated(
            calibration, raw[is_retry], previous[is_retry], retry_practice, biases[is_retry]))["logloss"]
    return calibration, info


def candidate_summary(search: list[dict]) -> dict:
    """The best embedding and the best 1PL on dev (calibrated log-loss and AUC), for the model's
    metrics: what `adaptrec models` shows as the comparison behind the choice."""
    out = {}
    for kind in ("embedding", "1pl"):
        tried = [t for t in search if t["kind"] == kind and t["val_logloss"] is not None
                 and np.isfinite(t["val_logloss"])]
        if tried:
            top = min(tried, key=lambda t: t["val_logloss"])
            out[kind] = {"logloss": top["val_logloss"], "auc": top["val_auc"]}
    return out


def replay_auc(item_ids: list[str], item_vectors: np.ndarray, item_biases: np.ndarray, prior_mean: np.ndarray,
               prior_cov: np.ndarray, data: PracticeData, users: np.ndarray) -> float:
    """AUC of another model (e.g. a parent unit's) replaying `users` of `data`; items it does not
    cover count as its average item, as in the service."""
    index = {item_id: i for i, item_id in enumerate(item_ids)}
    rows = np.array([index.get(i, -1) for i in data.item_ids])
    covered = rows >= 0
    vectors = np.empty((len(rows), item_vectors.shape[1]), dtype=np.float64)
    biases = np.empty(len(rows), dtype=np.float64)
    vectors[covered], biases[covered] = item_vectors[rows[covered]], item_biases[rows[covered]]
    vectors[~covered], biases[~covered] = item_vectors.mean(axis=0), item_biases.mean()
    other = FittedModel(vectors, biases, np.asarray(prior_mean, np.float64), np.asarray(prior_cov, np.float64))
    raw, y, _ = fold_in_predictions(other, data, users)
    return float(probability_metrics(y, raw)["auc"]) if len(y) else float("nan")

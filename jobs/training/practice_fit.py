"""Fitting practice candidates and replaying learners as the service predicts them: the unit's
first attempts (PracticeData), the candidates (LightFM embeddings, Params; the 1PL, OnePL), the
fitted arrays (FittedModel) and the replay of held-out learners attempt by attempt
(fold_in_predictions, skill_replays). Pure numpy/scipy/LightFM: no SQL."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from app.model.artifact import SkillTerms
from app.online.fit import HISTORY_MAX, fit_user, prior_from_users, recency_weights, skill_offsets
from jobs.training.features import FeatureSet
from jobs.training.irt import ABILITY_SD, fit_1pl
from jobs.training.metrics import probability_metrics


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

"""What the dev replay decides for a practice model beside its candidate: recency, per-skill
learner offsets, a metadata prior, and the calibration of every attempt (retry and learning
terms). Each is kept only when it beats going without on the dev learners by a margin. Pure
numpy/scipy: no SQL."""
from __future__ import annotations

import numpy as np

from app.model.artifact import Calibration, ItemFeatures, SkillTerms
from app.online.fit import HISTORY_MAX
from app.online.learning import sequence_features
from app.online.metadata import fit_metadata_prior
from app.online.scoring import calibrated
from jobs.training import calibration as cal
from jobs.training.features import token_columns, token_indicators
from jobs.training.learning import choose_learning_terms
from jobs.training.metrics import probability_metrics
from jobs.training.practice_fit import FittedModel, PracticeData, fold_in_predictions, skill_replays
from jobs.training.retry import fit_retry_calibration, last_outcomes

# Recency half-lives (in attempts) the dev replay chooses from; None: no recency weighting.
HALF_LIVES = (None, 30, 150)
RECENCY_MARGIN = 0.001     # dev log-loss recency or skill terms must gain to be used
# Per-skill learner offsets the dev replay chooses from (fit.skill_offsets): the prior sd of an
# offset and the half-life (in attempts at that skill) of its recency weights. On the ASSISTments
# dev learners (all attempts, root model) sd 0.6 / half-life 5 cut log-loss 0.434 -> 0.427 and
# raised AUC 0.850 -> 0.856; sd 1.0 / half-life 10 came close; without recency, less.
SKILL_TERMS = (SkillTerms(0.6, 5), SkillTerms(1.0, 10))
COLD_ATTEMPTS = 10     # a metadata prior is judged on each dev learner's first attempts, where it matters


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

"""Scoring candidates for one learner (pure numpy): the live fit for practice models, the
fold-in blend for engagement models. Works on a ServingModel: a stored model plus what is
worth precomputing once per worker (the item index, the prior precision, unit vectors)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.online import learning
from app.online.fit import fit_user, posterior_sample, recency_weights, score, skill_offsets
from app.online.metadata import item_tokens, metadata_tokens, prior_shift, vector_from_features
from app.online.rows import Attempted, RowIndex, attempted
from app.online.similar import normalised

if TYPE_CHECKING:
    from app.model.artifact import Blend, Calibration, RetryTerms


@dataclass(frozen=True)
class CandidateRows:
    """A candidate list laid out for one model, built once and reused by every request for that
    list (app.catalogue.candidates caches it): no per-request gather of 5,000 vectors."""
    rows: np.ndarray             # (k,) each candidate's row in the model, -1 when not covered
    vectors: np.ndarray | None   # (k, d) their vectors; an uncovered one gets the average item's (None: not kept,
    #                              read from the model's rows: app.online.knowledge.UnitLayout)
    biases: np.ndarray | None    # (k,); None with vectors None
    skills: np.ndarray | None    # (k,) skill index, -1 none (models with skill terms)
    index: RowIndex | None = None    # the rows sorted, to find a learner's history among them


@dataclass
class ServingModel:
    model_id: int
    unit_id: str
    objective: str
    mode: str
    tag: str
    item_ids: list[str]
    item_vectors: np.ndarray          # (n, d) float64 for the fit
    item_biases: np.ndarray           # (n,)
    prior_mean: np.ndarray            # (d + 1,)
    prior_precision: np.ndarray       # (d + 1, d + 1)
    calibration: Calibration
    blend: Blend | None               # engagement models: EASE's weights (CSR top-k, or dense: older) and WARP's share
    index: dict = field(default_factory=dict)       # item_id -> row
    unit_vectors: np.ndarray | None = None          # rows of unit length, for similar items
    mean_vector: np.ndarray | None = None           # the population's average item
    mean_bias: float = 0.0
    item_skills: np.ndarray | None = None           # each row's skill index (-1 none), for skill offsets
    n_skills: int = 0
    user_prior_index: dict = field(default_factory=dict)    # metadata token -> row of user_prior_shifts
    user_prior_shifts: np.ndarray | None = None              # (T, d + 1) prior-mean shift per token
    feature_index: dict = field(default_factory=dict)       # metadata token -> row of feature_vectors
    feature_vectors: np.ndarray | None = None                # (F, d) hybrid item-feature embeddings
    user_token_index: dict = field(default_factory=dict)     # engagement: metadata token -> row below
    user_token_shifts: np.ndarray | None = None              # (T, d) engagement: a token's shift of the mean user
    user_token_mean: np.ndarray | None = None                # (d,) the mean folded-in user
    feature_biases: np.ndarray | None = None
    unbuildable: set = field(default_factory=set)           # newer items none of whose tokens it knows
    foldin_start: tuple | None = None                        # engagement: engagement.foldin_start, once
    item_attempts: np.ndarray | None = None    # practice: first attempts trained on, per row (None: learns none)
    # the item difficulty learned since training (app.online.item_offsets, kept current by
    # app.serving.item_learning): per row, and for items the model does not cover; None: none yet
    item_offsets: np.ndarray | None = None
    new_item_offsets: dict = field(default_factory=dict)
    offsets_version: int = 0
    offsets_checked: float = float("-inf")
    offsets_spread: float | None = None    # item_offsets.difficulty_spread, once
    identity: str = ""     # app.model.store.model_identity: unique even across a database restored or reset

    @classmethod
    def from_stored(cls, stored) -> ServingModel:
        """From a stored model (app.model.store.StoredModel: its identity and its ModelArtifact)."""
        a, e = stored.artifact, stored.artifact.embedding
        vectors = np.asarray(e.item_vectors, dtype=np.float64)
        m = cls(stored.model_id, stored.unit_id, stored.objective, stored.mode, stored.tag, e.item_ids,
                vectors, np.asarray(e.item_biases, dtype=np.float64), np.asarray(e.prior_mean, dtype=np.float64),
                np.linalg.inv(np.asarray(e.prior_cov, dtype=np.float64)), a.calibration, a.blend)
        m.index = {item_id: i for i, item_id in enumerate(e.item_ids)}
        m.identity = stored.identity
        m.unit_vectors = normalised(vectors)
        m.mean_vector = vectors.mean(axis=0) if len(vectors) else np.zeros(vectors.shape[1])
        m.mean_bias = float(m.item_biases.mean()) if len(vectors) else 0.0
        if a.skills is not None:
            m.item_skills, m.n_skills = a.skills.item_skills, a.skills.n_skills
        if a.item_attempts is not None and stored.objective == "practice":
            m.item_attempts = a.item_attempts
        if a.metadata_prior is not None:
            m.user_prior_index = {t: k for k, t in enumerate(a.metadata_prior.tokens)}
            m.user_prior_shifts = a.metadata_prior.shifts
        if a.user_tokens is not None:
            m.user_token_index = {t: k for k, t in enumerate(a.user_tokens.tokens)}
            m.user_token_shifts, m.user_token_mean = a.user_tokens.shifts, a.user_tokens.mean
        if a.item_features is not None:
            m.feature_index = {t: k for k, t in enumerate(a.item_features.tokens)}
            m.feature_vectors, m.feature_biases = a.item_features.vectors, a.item_features.biases
        return m

    def prior_mean_for(self, attrs: dict | None) -> np.ndarray:
        """The learner's prior mean: the population's, shifted by their metadata when the model
        learned shifts (hybrid modes, when that predicted the job's dev learners better)."""
        if self.user_prior_shifts is None or not attrs:
            return self.prior_mean
        shift = prior_shift(metadata_tokens(attrs), self.user_prior_index, self.user_prior_shifts)
        return self.prior_mean if shift is None else self.prior_mean + shift

    def add_items(self, items: list[dict]) -> int:
        """Give items newer than the model (dicts of item_id, kind, units, attrs) rows built from
        their metadata tokens' embeddings (hybrid modes); an item none of whose tokens the model
        knows stays uncovered (scored as the average item). Returns how many were added. Arrays
        are replaced before the index, so a concurrent reader never sees a row without data."""
        if self.feature_vectors is None:
            return 0
        built = [(i["item_id"], vector_from_features(item_tokens(i.get("kind"), i.get("units"), i.get("attrs")),
                                                     self.feature_index, self.feature_vectors, self.feature_biases))
                 for i in items if i["item_id"] not in self.index]
        self.unbuildable.update(item_id for item_id, vb in built if vb is None)   # not asked again
        built = [(item_id, vb) for item_id, vb in built if vb is not None]
        if not built:
            return 0
        vectors = np.array([vb[0] for _, vb in built])
        self.item_vectors = np.vstack([self.item_vectors, vectors])
        self.item_biases = np.r_[self.item_biases, [vb[1] for _, vb in built]]
        self.unit_vectors = np.vstack([self.unit_vectors, normalised(vectors)])
        if self.item_skills is not None:
            self.item_skills = np.r_[self.item_skills, np.full(len(built), -1, dtype=np.int64)]
        if self.item_attempts is not None:   # never trained on; their learned offsets are read again
            self.item_attempts = np.r_[self.item_attempts, np.zeros(len(built), dtype=np.int64)]
            self.item_offsets, self.offsets_version, self.offsets_checked = None, 0, float("-inf")
        start = len(self.item_ids)
        self.item_ids = [*self.item_ids, *(item_id for item_id, _ in built)]
        self.index = {**self.index, **{item_id: start + k for k, (item_id, _) in enumerate(built)}}
        self.foldin_start = None   # computed again for the grown item side
        return len(built)

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Row of each item in this model, -1 when the model does not cover it."""
        return np.array([self.index.get(i, -1) for i in item_ids], dtype=np.int64)

    def lay_out(self, rows: np.ndarray) -> CandidateRows:
        """The candidates of `rows` laid out for scoring (see CandidateRows)."""
        covered = rows >= 0
        vectors = np.empty((len(rows), self.item_vectors.shape[1]))
        vectors[covered] = self.item_vectors[rows[covered]]
        vectors[~covered] = self.mean_vector
        biases = np.where(covered, self.item_biases[np.where(covered, rows, 0)], self.mean_bias)
        skills = None if self.item_skills is None else \
            np.where(covered, self.item_skills[np.where(covered, rows, 0)], -1)
        return CandidateRows(rows, vectors, biases, skills, RowIndex.of(rows))


def calibrated(calibration: Calibration, raw: np.ndarray, previous: np.ndarray | None = None,
               practice: np.ndarray | None = None, biases: np.ndarray | None = None,
               practice_terms: np.ndarray | None = None, at: np.ndarray | None = None,
               offsets: np.ndarray | None = None) -> np.ndarray:
    """p = sigmoid(a * raw + b), plus the calibration's retry terms (if it has them) for candidates
    the learner attempted before: `previous` is the last outcome there (-1 none, 0 wrong, 1 right);
    plus its learning terms (if it has them): `practice` holds each candidate's row of
    app.online.learning.FEATURES (practice and time away), or `practice_terms` those rows' terms
    already computed (learning.candidate_terms); `biases` (k, 2) each candidate's item bias and
    the learner's, for retry terms that weigh them. `at`: when `previous` and `biases` describe
    only some candidates (the few the learner attempted), their positions in `raw`; the others
    have no retry term. `offsets`: each candidate's item difficulty learned since training
    (app.online.item_offsets), added to the logit."""
    z = calibration.a * raw + calibration.b
    if offsets is not None:
        z = z + offsets
    if calibration.retry is not None and previous is not None and at is None:
        z = z + retry_terms(calibration.retry, raw, previous, biases)
    elif calibration.retry is not None and previous is not None:
        z[at] += retry_terms(calibration.retry, raw[at], previous, biases)
    if calibration.learning is not None and practice_terms is not None:
        z = z + practice_terms
    elif calibration.learning is not None and practice is not None:
        z = z + learning.terms(calibration.learning, practice)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def retry_terms(retry: RetryTerms | None, raw: np.ndarray, previous: np.ndarray, biases: np.ndarray | None = None
                ) -> np.ndarray:
    """The logit terms of a calibration's retry terms (jobs.training.retry) for candidates with
    logits `raw` whose previous outcome at the item is `previous` (-1 none, 0, 1): an offset and a
    slope per kind of retry; zeros without them. A model stored before the slopes has slopes 0."""
    if retry is None:
        return np.zeros(len(previous))
    mistake = retry.after_mistake + retry.slope_after_mistake * raw
    success = retry.after_success + retry.slope_after_success * raw
    if biases is not None and retry.biases_after_mistake is not None:   # item and learner bias, apart
        mistake = mistake + biases @ retry.biases_after_mistake
        success = success + biases @ retry.biases_after_success
    return np.where(previous == 0, mistake, np.where(previous == 1, success, 0.0))


def previous_outcomes(history_rows: np.ndarray, history_outcomes: np.ndarray, candidate_rows: np.ndarray,
                      found: Attempted | None = None) -> np.ndarray:
    """For each candidate row, the outcome of the learner's last attempt at it in the history
    (rows oldest first), -1 when none (or the candidate is not covered). `found`: the candidates
    the learner attempted (app.online.rows.attempted), when already known."""
    out = np.full(len(candidate_rows), -1, dtype=np.int8)
    if not len(history_rows):
        return out
    found = found or attempted(RowIndex.of(candidate_rows), history_rows, history_outcomes)
    out[found.positions] = found.last
    return out


def practice_probabilities(model: ServingModel, history_rows: np.ndarray, history_outcomes: np.ndarray,
                           candidate_rows: np.ndarray | CandidateRows, half_life: float | None = None,
                           explore: np.random.Generator | None = None, prior_mean: np.ndarray | None = None,
                           history_times: np.ndarray | None = None, now: float | None = None,
                           theta: np.ndarray | None = None, item_offsets: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Calibrated p(correct) for each candidate row (-1: not covered, scored as the average item);
    the candidates as rows, or laid out already (ServingModel.lay_out: the same answers, faster).

    history_rows / history_outcomes : the learner's attempts on the model's items, oldest first.
    explore : when given, also p under a learner vector drawn from the live fit's posterior
    (posterior_sample: Thompson sampling), from the same fit.
    prior_mean : the learner's own prior mean (ServingModel.prior_mean_for), else the population's.
    history_times, now : the attempts' times and the prediction's (epoch seconds), for a
    calibration with learning terms (app.online.learning: practice and time away); without them
    those terms are left out.
    item_offsets : each candidate's item difficulty learned since training (app.serving.item_learning.
    candidate_offsets), added to its calibrated logit; None: none.
    When the calibration has skill terms (chosen on dev by the job), each candidate's logit also
    gets the learner's offset in its skill (fit.skill_offsets) around the overall fit.
    theta : the live fit of this same history and prior, when a step of the request already made it
    (a mastery recommendation scores its candidates and then what the learner knows): not fitted again.
    Returns (p, theta, explored p or None).
    """
    laid = candidate_rows if isinstance(candidate_rows, CandidateRows) else None
    candidate_rows = laid.rows if laid is not None else candidate_rows
    found = None   # the candidates the learner attempted: once, for the retry and the learning terms
    if len(history_rows) and (model.calibration.retry is not None or model.calibration.learning is not None):
        index = laid.index if laid is not None and laid.index is not None else RowIndex.of(candidate_rows)
        found = attempted(index, history_rows, history_outcomes)
    weights = recency_weights(len(history_rows), half_life)
    V, b = model.item_vectors[history_rows], model.item_biases[history_rows]
    mean = model.prior_mean if prior_mean is None else prior_mean
    if theta is None:
        theta = fit_user(V, b, history_outcomes, mean, model.prior_precision, weights=weights)
    offsets = _skill_terms(model, theta, V, b, history_rows, history_outcomes, candidate_rows,
                           None if laid is None else laid.skills)
    practice = None   # the learning terms of each candidate (k,), computed once per skill
    if model.calibration.learning is not None and history_times is not None and now is not None:
        practice = learning.candidate_terms(model.calibration.learning, history_rows, history_outcomes,
                                            history_times, now, candidate_rows, model.item_skills,
                                            None if laid is None else laid.skills, found)
    # retry terms: only for the candidates the learner attempted (the others' are 0)
    retry = model.calibration.retry
    at = found.positions if retry is not None and found is not None else None
    previous = found.last if at is not None else None
    biases = None
    if at is not None and retry.biases_after_mistake is not None:
        biases = np.column_stack([model.item_biases[candidate_rows[at]], np.full(len(at), theta[-1])])
    p = calibrated(model.calibration, _raw_scores(model, theta, candidate_rows, laid) + offsets, previous,
                   biases=biases, practice_terms=practice, at=at, offsets=item_offsets)
    explored = None
    if explore is not None:
        draw = posterior_sample(theta, V, b, history_outcomes, model.prior_precision, explore, weights)
        explored = calibrated(model.calibration, _raw_scores(model, draw, candidate_rows, laid) + offsets, previous,
                              biases=biases, practice_terms=practice, at=at, offsets=item_offsets)
    return p, theta, explored


def _skill_terms(model: ServingModel, theta: np.ndarray, V: np.ndarray, b: np.ndarray, history_rows: np.ndarray,
                 history_outcomes: np.ndarray, candidate_rows: np.ndarray,
                 skills: np.ndarray | None = None) -> np.ndarray | float:
    """Each candidate's skill offset for this learner (0 without skill terms or skill); `skills`:
    the candidates' skills when already known (CandidateRows)."""
    terms = model.calibration.skill
    if terms is None or model.item_skills is None or not len(history_rows):
        return 0.0
    delta = skill_offsets(score(theta, V, b), history_outcomes, model.item_skills[history_rows], model.n_skills,
                          terms.sd, terms.half_life)
    if skills is None:
        skills = np.where(candidate_rows >= 0, model.item_skills[candidate_rows], -1)
    return np.take(np.append(delta, 0.0), skills)   # skill -1 (none): the 0 appended


def _raw_scores(model: ServingModel, theta: np.ndarray, candidate_rows: np.ndarray,
                laid: CandidateRows | None = None) -> np.ndarray:
    """Logits of the candidates for learner vector `theta`; an uncovered one (-1) is the average item."""
    if laid is not None and laid.vectors is not None:
        return score(theta, laid.vectors, laid.biases)
    covered = candidate_rows >= 0
    if 4 * len(candidate_rows) > len(model.item_biases):   # most of the model's items: scoring all is cheaper
        every = score(theta, model.item_vectors, model.item_biases)   # than gathering the candidates' vectors
        return np.where(covered, every[np.where(covered, candidate_rows, 0)],
                        model.mean_vector @ theta[:-1] + theta[-1] + model.mean_bias)
    raw = np.empty(len(candidate_rows))
    raw[covered] = score(theta, model.item_vectors[candidate_rows[covered]], model.item_biases[candidate_rows[covered]])
    raw[~covered] = model.mean_vector @ theta[:-1] + theta[-1] + model.mean_bias
    return raw


def cold_user_scores(model: ServingModel, attrs: dict | None, candidate_rows: np.ndarray) -> np.ndarray | None:
    """Ranking scores for a user with no positives, from their metadata tokens: the mean folded-in
    user moved by their tokens' shifts (a hybrid engagement model's `user_tokens`, jobs.training.
    engagement.cold_user_shifts); None when the model has none or knows none of the user's tokens."""
    if model.user_token_shifts is None or not attrs:
        return None
    shift = prior_shift(metadata_tokens(attrs), model.user_token_index, model.user_token_shifts)
    if shift is None:
        return None
    all_scores = model.item_vectors.astype(np.float64) @ (model.user_token_mean + shift) + model.item_biases
    out = np.full(len(candidate_rows), all_scores.min() - 1.0)   # uncovered candidates rank last
    covered = candidate_rows >= 0
    out[covered] = all_scores[candidate_rows[covered]]
    return out


def engagement_scores(model: ServingModel, positive_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
    """Ranking scores of candidates from the user's positives (EASE + folded-in WARP blend)."""
    # Imported on first use: scipy (sparse matrices, L-BFGS) costs a worker about 40 MB, and a
    # service with practice models only never needs it.
    from app.online.engagement import EngagementModel, foldin_start

    blend = model.blend
    start = model.foldin_start
    if start is None and model.item_vectors is not None and blend.weight > 0:
        start = model.foldin_start = foldin_start(model.item_vectors, model.item_biases)
    engagement = EngagementModel(blend.item_weights, model.item_vectors, model.item_biases,
                                 foldin_reg=float(blend.foldin_reg), weight=float(blend.weight), start=start)
    all_scores = np.asarray(engagement.score(np.unique(positive_rows)), dtype=np.float64)
    out = np.full(len(candidate_rows), -np.inf)
    covered = candidate_rows >= 0
    out[covered] = all_scores[candidate_rows[covered]]
    if (~covered).any():  # uncovered candidates rank below every covered one, by nothing else
        out[~covered] = all_scores.min() - 1.0 if len(all_scores) else 0.0
    return out

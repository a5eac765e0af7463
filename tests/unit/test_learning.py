"""Practice and time in a prediction (app.online.learning, jobs.training.learning): the features
from earlier attempts only, the same in the job's replay and the service, kept by the job only
where learners really improve or forget, and applied by the service as the replay measured."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from app.catalogue import history as hist
from app.model.artifact import Calibration, Embedding, LearningTerms, ModelArtifact, Skills
from app.model.store import StoredModel
from app.online.learning import DAY_S, FEATURES, features, sequence_features, terms
from app.online.scoring import ServingModel, calibrated
from app.serving.context import Learner, RequestContext
from app.serving.pipeline import score_candidates
from jobs.training.practice import FittedModel, PracticeData, fold_in_predictions, retry_calibration
from jobs.training.retry import last_outcomes

T0 = 1.7e9   # any epoch second: nothing here reads the clock


def column(name: str) -> int:
    return FEATURES.index(name)


def test_features_count_earlier_attempts_per_skill_item_and_in_all_and_the_time_away():
    item_skills = np.array([0, 0, 1, -1])
    h_rows = np.array([0, 1, 0, 2])                     # skill 0, 0, 0, 1
    h_out = np.array([1, 0, 1, 1])
    h_times = T0 + np.array([0.0, 60.0, 3 * DAY_S, 3 * DAY_S + 60])
    now = T0 + 10 * DAY_S
    x = features(h_rows, h_out, h_times, now, np.array([0, 2, 3, -1]), item_skills)
    assert x.shape == (4, len(FEATURES))
    # item 0, skill 0: three attempts there, two right, two at the item itself, 7 days since skill 0
    assert x[0, column("skill_attempts")] == pytest.approx(np.log1p(3))
    assert x[0, column("skill_successes")] == pytest.approx(np.log1p(2))
    assert x[0, column("item_attempts")] == pytest.approx(np.log1p(2))
    assert x[0, column("skill_days_away")] == pytest.approx(np.log1p(7.0))
    # item 2, skill 1: one attempt, 10 days minus a minute away from the skill
    assert x[1, column("skill_attempts")] == pytest.approx(np.log1p(1))
    assert x[1, column("skill_days_away")] == pytest.approx(np.log1p(7.0 - 60 / DAY_S))
    # no skill, or not covered: the learner's overall figures stand for the skill's
    for k in (2, 3):
        assert x[k, column("skill_attempts")] == pytest.approx(np.log1p(4))
        assert x[k, column("item_attempts")] == 0.0
    assert np.all(x[:, column("attempts")] == pytest.approx(np.log1p(4)))
    assert np.all(x[:, column("successes")] == pytest.approx(np.log1p(3)))
    assert np.all(x[:, column("days_away")] == pytest.approx(np.log1p(7.0 - 60 / DAY_S)))
    assert x[:, column("new_skill")].tolist() == [0, 0, 0, 0]
    fresh = features(h_rows, h_out, h_times, now, np.array([0]), np.array([0, 0, 1, 2]))
    assert fresh[0, column("new_skill")] == 0
    unseen = features(np.array([0]), np.array([1]), np.array([T0]), T0 + 1, np.array([2]), np.array([0, 0, 1]))
    assert unseen[0, column("new_skill")] == 1 and unseen[0, column("skill_days_away")] == 0


def _sequence(rng, n_users: int, n_items: int, length: int, n_skills: int = 3):
    users = np.repeat(np.arange(n_users), length).astype(np.int32)
    items = rng.integers(0, n_items, len(users)).astype(np.int32)
    outcomes = rng.integers(0, 2, len(users)).astype(np.int8)
    gaps = rng.choice([30.0, 600.0, DAY_S, 9 * DAY_S], len(users))
    times = T0 + np.cumsum(gaps)
    item_skills = (np.arange(n_items) % n_skills).astype(np.int32)
    item_skills[::7] = -1
    return users, items, outcomes, times, item_skills


def test_the_replay_computes_for_each_attempt_what_the_service_computes_for_every_candidate():
    rng = np.random.default_rng(3)
    users, items, outcomes, times, item_skills = _sequence(rng, 4, 30, 60)
    window = 25
    replayed = sequence_features(users, items, outcomes, times, item_skills, window)
    every_item = np.arange(30)
    for t in range(len(items)):
        start = max(np.flatnonzero(users == users[t])[0], t - window)
        served = features(items[start:t], outcomes[start:t], times[start:t], float(times[t]), every_item,
                          item_skills, item_skills[every_item])
        assert np.allclose(served[items[t]], replayed[t]), t
    # an attempt never sees itself or a later one
    assert replayed[np.flatnonzero(np.r_[True, users[1:] != users[:-1]]), column("attempts")].tolist() == [0] * 4


def test_terms_clip_each_feature_to_what_the_job_saw():
    block = LearningTerms(FEATURES, [0.0] * 7 + [-0.5], [9.0] * 7 + [np.log1p(30)])
    x = np.zeros((2, len(FEATURES)))
    x[:, column("days_away")] = [np.log1p(3), np.log1p(700)]     # 3 days, then two years away
    assert terms(block, x) == pytest.approx([-0.5 * np.log1p(3), -0.5 * np.log1p(30)])
    assert terms(None, x) == 0.0


def _learners(rng, n_users: int, n_items: int, gain: float, forget: float):
    """1PL learners who gain `gain` logits per attempt in a skill (growing as log practice) and lose
    `forget` logits per log-day away from it; sessions hours to weeks apart."""
    easiness = rng.normal(0, 1, n_items)
    item_skills = (np.arange(n_items) % 4).astype(np.int32)
    users, items, ys, times = [], [], [], []
    for u in range(n_users):
        base, now = rng.normal(0, 1), T0
        practised, last = np.zeros(4), np.full(4, np.nan)
        for _session in range(6):
            now += rng.choice([3600.0, DAY_S, 4 * DAY_S, 14 * DAY_S])
            for i in rng.integers(0, n_items, 12):
                s = item_skills[i]
                away = 0.0 if np.isnan(last[s]) else (now - last[s]) / DAY_S
                z = base + easiness[i] + gain * np.log1p(practised[s]) - forget * np.log1p(away)
                users.append(u)
                items.append(i)
                ys.append(rng.random() < 1 / (1 + np.exp(-z)))
                times.append(now)
                practised[s] += 1
                last[s] = now
                now += 40.0
    data = PracticeData([f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)],
                        np.array(users, np.int32), np.array(items, np.int32), np.array(ys, np.int8),
                        item_skills=item_skills, times=np.array(times))
    # the item side as the nightly job would have it: the truth's easiness, one learner dimension
    fitted = FittedModel(np.zeros((n_items, 1)), easiness.astype(np.float64), np.zeros(2), np.diag([1e-6, 1.0]))
    return data, fitted


@pytest.mark.slow   # two replays of 36,000 synthetic attempts: about 14 s together
@pytest.mark.parametrize("gain, forget, kept", [(0.0, 0.0, False), (0.8, 0.5, True)])
def test_the_job_keeps_learning_terms_only_where_learners_improve_or_forget(gain, forget, kept):
    data, fitted = _learners(np.random.default_rng(5), 500, 60, gain, forget)
    calibration, info = retry_calibration(fitted, data, Calibration())
    assert info["learning"]["used"] == kept, info["learning"]
    assert (calibration.learning is not None) == kept
    if kept:
        weights = info["learning"]["weights"]
        assert weights["skill_attempts"] > 0.1       # practice in the skill raises p beyond the fixed fit
        assert weights["skill_days_away"] < -0.1     # time away from it lowers it
        assert info["learning"]["cross_fitted_logloss"] < info["learning"]["cross_fitted_logloss_without"] - 0.005


def test_the_service_applies_the_learning_terms_the_replay_measured():
    data, fitted = _learners(np.random.default_rng(8), 300, 60, 0.8, 0.5)
    calibration, _ = retry_calibration(fitted, data, Calibration())
    assert calibration.learning is not None
    embedding = Embedding(data.item_ids, fitted.item_vectors, fitted.item_biases, fitted.prior_mean, fitted.prior_cov)
    model = ServingModel.from_stored(StoredModel(1, "u", "practice", "mf", "default",
                                                 ModelArtifact(embedding, calibration, Skills(data.item_skills))))
    learner = np.flatnonzero(data.users == 7)
    learner_biases: list[float] = []
    raw, _, _ = fold_in_predictions(fitted, data, np.array([7]), learner_biases=learner_biases)
    biases = np.column_stack([fitted.item_biases[data.items[learner]], learner_biases])
    starts = np.r_[True, np.zeros(len(learner) - 1, bool)]
    previous = last_outcomes(data.items[learner], data.outcomes[learner], starts)
    practice = sequence_features(data.users[learner], data.items[learner], data.outcomes[learner],
                                 data.times[learner], data.item_skills, 500)
    replayed = calibrated(calibration, raw, previous, practice, biases)
    assert calibration.retry.biases_after_mistake is not None
    for t in (5, 30, len(learner) - 1):
        events = [hist.Event(data.item_ids[data.items[r]], "attempt", int(data.outcomes[r]), None,
                             datetime.fromtimestamp(data.times[r], UTC)) for r in learner[:t][::-1]]  # newest first
        at = datetime.fromtimestamp(data.times[learner[t]], UTC)
        asked = [data.item_ids[data.items[learner[t]]]]
        served = score_candidates(RequestContext(None, "default", None, None, now=at), model, asked,
                                  Learner("7", events, "given"), practice=True).scores[0]
        # the replay warm-starts 3 Newton steps per attempt, the service solves from the prior: close, not equal
        assert served == pytest.approx(replayed[t], abs=3e-3), t
        timeless = score_candidates(RequestContext(None, "default", None, None, now=at.replace(year=at.year + 1)),
                                    model, asked, Learner("7", events, "given"), practice=True).scores[0]
        assert timeless < served            # a year later the same learner has forgotten some


def test_models_verbose_says_whether_the_learning_terms_serve_and_their_weights():
    from cli.models import choice_lines

    learning = {"cross_fitted_logloss": 0.501, "cross_fitted_logloss_without": 0.523, "used": True,
                "weights": {"skill_attempts": 0.31, "skill_days_away": -0.12}}
    lines = choice_lines({"dev_all_attempts": {"logloss": 0.5, "platt_logloss": 0.52, "attempts": 900,
                                                "retries": 40, "learning": learning}})
    assert any("learning terms" in line and "0.501 vs 0.523" in line and "used" in line
               and "skill_attempts +0.31" in line and "skill_days_away -0.12" in line for line in lines), lines
    unused = choice_lines({"dev_all_attempts": {"logloss": None, "learning": {**learning, "used": False,
                                                                              "weights": None}}})
    assert any("not used" in line for line in unused), unused


def test_models_verbose_shows_the_item_error_the_knowledge_intervals_use():
    from cli.models import choice_lines

    lines = choice_lines({"item_error": {"sd": 0.412, "slope_sd": 0.231}})
    assert any("item error" in line and "sd 0.412" in line and "0.231 per logit" in line for line in lines), lines
    assert not any("item error" in line for line in choice_lines({}))

"""Cold start in the hybrid modes: a new learner's prior from their metadata, a question newer than
the model scored from its metadata. The maths without a database (the service on a trained demo:
tests/slow/test_cold_start.py)."""
from __future__ import annotations

import numpy as np
import pytest

from app.model.artifact import Embedding, ModelArtifact
from app.model.store import StoredModel
from app.online.fit import sigmoid
from app.online.metadata import fit_metadata_prior, item_tokens, prior_shift, vector_from_features
from app.online.scoring import ServingModel
from jobs.training.features import user_features
from jobs.training.practice import PracticeData


def test_the_metadata_prior_recovers_known_shifts_and_ignores_unknown_tokens():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 3, 3000)
    indicators = np.eye(3)[groups]
    true_shift = np.array([[-0.5, -1.0], [0.0, 0.0], [0.5, 1.0]])      # (token, [u, b_u])
    theta = true_shift[groups] + rng.normal(0, 0.3, (3000, 2))
    shifts = fit_metadata_prior(theta, indicators, ridge=1.0)
    centred = true_shift - true_shift[groups].mean(axis=0)
    assert shifts == pytest.approx(centred, abs=0.05)
    index = {"grade:9": 0, "grade:10": 1, "grade:12": 2}
    assert prior_shift(["grade:12", "country:x"], index, shifts) == pytest.approx(shifts[2])
    assert prior_shift(["country:x"], index, shifts) is None


def test_a_new_items_vector_is_its_known_tokens_as_lightfm_weighs_them():
    index = {"kind:question": 0, "unit:s1": 1}
    vectors, biases = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.3, -0.6])
    tokens = item_tokens("question", ["s1"], {"difficulty_label": "hard", "true_difficulty": 1.2})
    assert tokens == ["kind:question", "unit:s1", "difficulty_label:hard"]          # ground truth never a token
    vector, bias = vector_from_features(tokens, index, vectors, biases)
    assert vector == pytest.approx([0.25, 0.5]) and bias == pytest.approx(-0.075)   # 4 features with its own id
    assert vector_from_features(["unit:other"], index, vectors, biases) is None


def _serving(extra: dict) -> ServingModel:
    embedding = Embedding(["a", "b"], np.array([[1.0], [-1.0]]), np.array([0.0, 0.5]), np.zeros(2), np.eye(2))
    artifact = ModelArtifact.from_json(embedding, {"a": 1.0, "b": 0.0}, extra, "practice")
    return ServingModel.from_stored(StoredModel(1, "u", "practice", "partial", "default", artifact))


def test_the_serving_model_shifts_a_learners_prior_and_adds_new_items_from_features():
    model = _serving({"user_prior": {"tokens": ["grade:12"], "shifts": [[0.0, 0.8]]},
                      "item_features": {"tokens": ["unit:s1"], "vectors": [[2.0]], "biases": [1.0]}})
    assert model.prior_mean_for({"grade": 12}) == pytest.approx([0.0, 0.8])
    assert model.prior_mean_for({"grade": 9}) == pytest.approx([0.0, 0.0])
    assert model.prior_mean_for(None) == pytest.approx([0.0, 0.0])
    added = model.add_items([{"item_id": "new", "kind": "question", "units": ["s1"], "attrs": {}},
                             {"item_id": "stranger", "kind": "video", "units": ["s9"], "attrs": {}},
                             {"item_id": "a", "kind": "question", "units": ["s1"], "attrs": {}}])
    assert added == 1 and model.rows(["new", "stranger", "a"]).tolist() == [2, -1, 0]
    assert model.unbuildable == {"stranger"}                       # not read again for this model
    assert model.item_vectors[2] == pytest.approx([2.0 / 3]) and model.item_biases[2] == pytest.approx(1.0 / 3)
    assert len(model.unit_vectors) == len(model.item_ids) == 3
    plain = _serving({})
    assert plain.add_items([{"item_id": "new", "kind": "question", "units": ["s1"], "attrs": {}}]) == 0
    assert plain.prior_mean_for({"grade": 12}) == pytest.approx([0.0, 0.0])


def _learners_with_grades(n_users: int, n_items: int, length: int, grade_effect: float, seed: int = 0):
    """1PL learners whose ability moves with their grade, first attempts only, with user features."""
    rng = np.random.default_rng(seed)
    easiness = rng.normal(0, 1, n_items)
    grades = rng.integers(9, 13, n_users)
    users, items, y = [], [], []
    for u in range(n_users):
        ability = rng.normal() + grade_effect * (grades[u] - 10.5)
        for i in rng.permutation(n_items)[:length]:
            users.append(u)
            items.append(i)
            y.append(rng.random() < sigmoid(ability + easiness[i]))
    ids = [f"u{u}" for u in range(n_users)]
    data = PracticeData(ids, [f"i{i}" for i in range(n_items)], np.array(users, np.int32),
                        np.array(items, np.int32), np.array(y, np.int8))
    data.user_features = user_features([{"user_id": u, "attrs": {"grade": int(g)}} for u, g in zip(ids, grades)],
                                       "partial")
    return data


@pytest.mark.parametrize("grade_effect, used", [(0.0, False), (1.0, True)])
def test_the_job_uses_a_metadata_prior_only_when_it_predicts_its_dev_learners_better(grade_effect, used):
    from jobs.training.practice import train_practice

    data = _learners_with_grades(500, 80, 12, grade_effect)   # short histories: the prior matters
    result = train_practice(data, max_trials=0, threads=1, max_eval_users=60)    # the 1PL candidates only
    info = result.metrics["metadata_prior"]
    assert info["used"] is used, info
    assert (result.metadata_prior is not None) is used
    if used:
        shifts = dict(zip(result.metadata_prior["tokens"], result.metadata_prior["shifts"][:, -1]))
        assert shifts["grade:12"] > shifts["grade:9"] + 1.5          # ability bias: 3 grades x 1.0

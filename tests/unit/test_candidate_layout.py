"""The request path's candidates laid out once per list (ServingModel.lay_out) give the answers of
the reference live fit on plain rows: same probabilities, with skill terms, retry terms,
uncovered candidates and exploration."""
from __future__ import annotations

import numpy as np

from app.model.artifact import Embedding, ModelArtifact
from app.model.store import StoredModel
from app.online.scoring import ServingModel, practice_probabilities


def _model(rng, n_items=400, d=8, skills=True, retry=True) -> ServingModel:
    calibration = {"a": 1.1, "b": -0.2}
    extra = {}
    if skills:
        calibration["skill"] = {"sd": 0.6, "half_life": 5.0}
        extra["item_skills"] = [int(s) for s in rng.integers(-1, 12, n_items)]
    if retry:
        calibration["retry"] = {"after_mistake": -0.3, "after_success": 0.4, "slope_after_mistake": 0.1,
                                "slope_after_success": -0.05}
    cov = np.cov(rng.normal(size=(200, d + 1)), rowvar=False) + 0.1 * np.eye(d + 1)
    embedding = Embedding([f"i{k}" for k in range(n_items)], rng.normal(scale=0.5, size=(n_items, d)),
                          rng.normal(size=n_items), rng.normal(scale=0.2, size=d + 1), cov)
    return ServingModel.from_stored(StoredModel(7, "u", "practice", "mf", "default",
                                                ModelArtifact.from_json(embedding, calibration, extra, "practice")))


def test_laid_out_candidates_score_as_the_reference_fit():
    rng = np.random.default_rng(11)
    for trial in range(40):
        model = _model(rng, skills=trial % 2 == 0, retry=trial % 3 != 0)
        rows = rng.integers(0, 400, 600)
        rows[rng.random(600) < 0.1] = -1            # candidates the model does not cover
        laid = model.lay_out(rows)
        n = int(rng.integers(0, 300))
        history = rng.integers(0, 400, n)
        outcomes = rng.integers(0, 2, n).astype(float)
        half_life = None if trial % 4 else 20.0
        ref = practice_probabilities(model, history, outcomes, rows, half_life, np.random.default_rng(trial))
        fast = practice_probabilities(model, history, outcomes, laid, half_life, np.random.default_rng(trial))
        np.testing.assert_allclose(fast[0], ref[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast[1], ref[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast[2], ref[2], rtol=0, atol=1e-12)

"""Users without positives in a hybrid engagement model: their metadata is used only when it beats
popularity on the job's own pseudo-new users by two standard errors (jobs.training.engagement)."""
from __future__ import annotations

import numpy as np
import pytest

from jobs.training import features
from jobs.training.engagement import EngagementData, WarpConfig, _fit_hybrid_warp, choose_cold_users


def platform(predictive: bool, seed: int = 0) -> EngagementData:
    """300 users of three languages, 60 items in three topics; each user likes 8 items. When
    `predictive`, 90 % of them are in their language's topic; otherwise everyone likes the same
    popular items (Zipf) whatever their language, so popularity is what there is to know."""
    rng = np.random.default_rng(seed)
    langs = rng.choice(["en", "fr", "de"], size=300)
    items = [{"item_id": f"i{j}", "kind": "content", "units": [f"topic{j % 3}"], "attrs": {}} for j in range(60)]
    zipf = 1.0 / np.arange(1, 61)
    users, liked = [], []
    for u, lang in enumerate(langs):
        if predictive:
            taste = ["en", "fr", "de"].index(lang)
            chosen = [int(j) * 3 + (taste if rng.random() < 0.9 else int(rng.integers(3)))
                      for j in rng.choice(20, size=8, replace=False)]
        else:
            chosen = rng.choice(60, size=8, replace=False, p=zipf / zipf.sum()).tolist()
        users += [u] * len(set(chosen))
        liked += sorted(set(chosen))
    user_rows = [{"user_id": f"u{u}", "attrs": {"lang": lang}} for u, lang in enumerate(langs)]
    return EngagementData([f"u{u}" for u in range(300)], [i["item_id"] for i in items],
                          np.array(users, dtype=np.int32), np.array(liked, dtype=np.int32),
                          features.item_features(items, "partial"), features.user_features(user_rows, "partial"))


@pytest.mark.parametrize("predictive", [True, False])
def test_metadata_serves_new_users_only_when_it_beats_popularity(predictive):
    data = platform(predictive)
    X = data.matrix()
    model = _fit_hybrid_warp(data, X, WarpConfig(16, 0.05, epochs=20), seed=0, threads=1)
    chosen = choose_cold_users(model, data, X, seed=0)
    assert chosen["used"] is predictive, chosen
    best = max(m["precision_at_10"] for m in chosen["metadata"])
    if predictive:   # a German speaker's topic shows: far above the most-liked items overall
        assert best > chosen["popularity"]["precision_at_10"] + 0.2


def test_a_big_unit_is_tuned_and_evaluated_on_a_sample_of_its_users(monkeypatch):
    """Above EVAL_USERS users the engagement job scores a seeded sample of them (every fit still
    uses all): the metrics say how many, the model still beats popularity where metadata and taste
    carry signal, and the prior and metadata shifts come out of the sampled users."""
    from jobs.training import engagement

    assert engagement.eval_rows(300, seed=0) is None
    monkeypatch.setattr(engagement, "EVAL_USERS", 120)
    rows = engagement.eval_rows(300, seed=0)
    assert len(rows) == 120 and np.array_equal(rows, np.unique(rows))
    assert np.array_equal(rows, engagement.eval_rows(300, seed=0))
    result = engagement.train_engagement(platform(True), seed=0, threads=1)
    assert result.metrics["evaluated_users"] == 120
    assert result.metrics["model"]["precision_at_10"] > result.metrics["baseline"]["precision_at_10"]
    assert result.metrics["cold_users"]["users"] == 24   # 20 % of the sample plays new users
    assert np.isfinite(result.prior_mean).all() and result.prior_cov.shape[0] == result.prior_mean.shape[0]

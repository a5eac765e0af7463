"""The engagement top-N family without a database: EASE, the blend, WARP and its fold-in."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from app.model.artifact import UNCALIBRATED, Blend, Embedding, ModelArtifact
from app.model.store import StoredModel
from app.online.engagement import (
    EngagementModel,
    blend_scores,
    ease_scores,
    fold_in,
    fold_in_one,
    foldin_start,
    positives_matrix,
    standardise,
    warp_scores,
)
from app.online.scoring import ServingModel
from bench.topn.data import read_ratings
from bench.topn.item_cold_start import genre_popularity
from bench.topn_job import held_out_positives, serving_scores, write_ratings
from jobs.importers import movielens
from jobs.importers.common import csv_rows
from jobs.training.ease import fit_ease, top_k_neighbours
from jobs.training.engagement import split_pairs
from jobs.training.engagement_fit import WarpConfig, fit_engagement, tune_engagement

SMALL_WARP = WarpConfig(no_components=8, learning_rate=0.05, alpha=1e-5, max_sampled=10, epochs=20)


def clustered_positives(n_users=90, n_items=30, groups=3, p_in=0.6, p_out=0.03, seed=0) -> sp.csr_matrix:
    """Users of group g mostly like the items of group g: a structure every model should find."""
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % groups
    item_group = np.arange(n_items) % groups
    p = np.where(user_group[:, None] == item_group[None, :], p_in, p_out)
    X = (rng.random((n_users, n_items)) < p).astype(np.float32)
    X[np.arange(n_users), user_group] = 1.0        # nobody is empty
    return sp.csr_matrix(X)


def test_ease_has_a_zero_diagonal_and_ranks_the_co_occurring_item_first():
    # items 0 and 1 always go together, 2 and 3 together, 4 is popular with everyone
    X = sp.csr_matrix(np.array([[1, 1, 0, 0, 1],
                                [1, 1, 0, 0, 1],
                                [1, 1, 0, 0, 0],
                                [0, 0, 1, 1, 1],
                                [0, 0, 1, 1, 1],
                                [0, 0, 1, 1, 0]], dtype=np.float32))
    B = fit_ease(X, l2=0.5)
    assert B.shape == (5, 5) and B.dtype == np.float32
    np.testing.assert_array_equal(np.diag(B), 0.0)
    assert np.argmax(ease_scores(np.array([1, 0, 0, 0, 0]), B)) == 1
    assert np.argmax(ease_scores(np.array([0, 0, 1, 0, 0]), B)) == 3
    rows = ease_scores(X[[0, 3]], B)                      # sparse rows give the same as dense ones
    np.testing.assert_allclose(rows, X[[0, 3]].toarray() @ B, rtol=1e-5)


def test_ease_matches_the_constrained_least_squares_solution():
    X = clustered_positives(n_users=40, n_items=8)
    l2 = 3.0
    B = fit_ease(X, l2).astype(np.float64)
    G = (X.T @ X).toarray() + l2 * np.eye(8)
    # for each column j: argmin ||X_j - X b||^2 + l2 ||b||^2 with b_j = 0 is a ridge on the other columns
    for j in range(8):
        others = [i for i in range(8) if i != j]
        expected = np.linalg.solve(G[np.ix_(others, others)], (X.T @ X).toarray()[others, j])
        np.testing.assert_allclose(B[others, j], expected, rtol=1e-4, atol=1e-6)


def test_top_k_keeps_each_items_largest_weights_and_never_the_item_itself():
    X = clustered_positives(n_users=60, n_items=12)
    B = fit_ease(X, 2.0)
    S = top_k_neighbours(B, 3)
    assert sp.isspmatrix_csr(S) and S.dtype == np.float32 and S.shape == (12, 12)
    csc = S.tocsc()
    for i in range(12):
        kept = csc.indices[csc.indptr[i]:csc.indptr[i + 1]]
        others = np.delete(np.arange(12), i)
        assert len(kept) == 3 and i not in kept
        assert B[kept, i].min() >= np.sort(B[others, i])[-3]         # the three largest of the column
        np.testing.assert_array_equal(csc[kept, i].toarray().ravel(), B[kept, i])


def test_top_k_of_every_item_scores_exactly_as_the_dense_weights():
    X = clustered_positives(n_users=60, n_items=12)
    B = fit_ease(X, 2.0)
    for k in (12, 11, 50):                      # k >= n_items - 1 keeps every off-diagonal weight
        S = top_k_neighbours(B, k)
        assert S.nnz == 12 * 11
        np.testing.assert_array_equal(S.toarray(), B)
        np.testing.assert_allclose(ease_scores(X, S), ease_scores(X, B), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ease_scores(X[3].toarray()[0], S), ease_scores(X[3].toarray()[0], B),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        top_k_neighbours(B, 0)


def test_a_sparse_ease_model_scores_one_user_as_the_batch_and_ranks_their_group_first():
    X = clustered_positives()
    model, _ = fit_engagement(X, 10.0, SMALL_WARP, weight=0.3, seed=0, neighbours=5)
    assert sp.isspmatrix_csr(model.B) and model.B.nnz == 30 * 5 and model.params["ease_neighbours"] == 5
    positives = X[4].indices
    np.testing.assert_allclose(model.score(positives), model.score_rows(X)[4], atol=1e-3)
    ease_only = EngagementModel(model.B, None, None, weight=0.0)
    top = ease_only.recommend(positives, k=3)
    assert not set(top) & set(positives) and np.all(top % 3 == 4 % 3)


def test_standardise_gives_zero_mean_unit_deviation_rows_and_zero_for_constant_rows():
    rng = np.random.default_rng(0)
    z = standardise(rng.normal(3, 5, (4, 50)))
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(standardise(np.full((2, 6), 7.0)), 0.0)
    one = rng.normal(size=10)
    np.testing.assert_allclose(standardise(one), standardise(one[None, :])[0])


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.7])
def test_blend_is_monotone_in_each_input_when_the_other_is_constant(weight):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    constant = np.full((3, 40), 2.5)
    # with the other input constant, the blend ranks exactly as the varying one (an increasing map)
    for varying, blended in ((a, blend_scores(a, constant, weight)), (b, blend_scores(constant, b, 1 - weight))):
        for row, out in zip(varying, blended):
            order = np.argsort(row)
            assert np.all(np.diff(out[order]) > 0)
    # raising one item's score in one input, the other fixed, raises that item's blend and no rank falls
    base = blend_scores(a, b, weight)
    bumped_a, bumped_b = a.copy(), b.copy()
    bumped_a[0, 5] += 1.0
    bumped_b[0, 5] += 1.0
    cases = ((blend_scores(bumped_a, b, weight), weight < 1), (blend_scores(a, bumped_b, weight), weight > 0))
    for out, has_a_say in cases:
        if not has_a_say:
            np.testing.assert_allclose(out, base)
            continue
        assert out[0, 5] > base[0, 5]
        assert (out[0] > out[0, 5]).sum() <= (base[0] > base[0, 5]).sum()
        np.testing.assert_allclose(out[1:], base[1:])


def test_warp_fold_in_of_a_training_user_ranks_like_the_trained_vector():
    X = clustered_positives()
    model, trained = fit_engagement(X, None, SMALL_WARP, weight=1.0, seed=0)
    folded = fold_in(X, model.item_vectors, model.item_biases, reg=1.0)
    s_trained = warp_scores(trained, model.item_vectors, model.item_biases)
    s_folded = warp_scores(folded, model.item_vectors, model.item_biases)
    correlations = [spearmanr(s_trained[u], s_folded[u])[0] for u in range(X.shape[0])]
    assert np.median(correlations) > 0.8
    # and it finds the user's group: the top unseen item is mostly of the user's own group
    group_hits = []
    for u in range(X.shape[0]):
        s = s_folded[u].copy()
        s[X[u].indices] = -np.inf
        group_hits.append(np.argmax(s) % 3 == u % 3)
    assert np.mean(group_hits) > 0.8


def test_fold_in_of_one_user_matches_the_batch_and_an_empty_history_gives_item_biases():
    X = clustered_positives()
    model, _ = fit_engagement(X, None, SMALL_WARP, weight=1.0, seed=0)
    batch = fold_in(X, model.item_vectors, model.item_biases, 2.0)
    single = fold_in(X[7], model.item_vectors, model.item_biases, 2.0)
    np.testing.assert_allclose(single[0], batch[7], atol=2e-3)
    empty = model.score(np.array([], dtype=np.int64))
    np.testing.assert_allclose(empty, model.item_biases, atol=1e-4)


def test_newton_fold_in_of_one_user_reaches_the_minimum_l_bfgs_approaches():
    X = clustered_positives()
    model, _ = fit_engagement(X, None, SMALL_WARP, weight=1.0, seed=0)
    V, b = model.item_vectors.astype(np.float64), model.item_biases.astype(np.float64)
    batch = fold_in(X, V, b, 2.0)
    start = foldin_start(V, b)
    for u in range(X.shape[0]):
        newton = fold_in_one(X[u].indices, V, b, 2.0, start)
        np.testing.assert_allclose(newton, batch[u], atol=2e-3)
        # a minimum: the gradient of the fold-in loss vanishes there (L-BFGS stops near it)
        x = newton.astype(np.float64)
        p = np.exp(V @ x + b - (V @ x + b).max())
        p /= p.sum()
        gradient = len(X[u].indices) * (p @ V) - V[X[u].indices].sum(axis=0) + 4.0 * x
        assert np.abs(gradient).max() < 1e-4
    # without the model's start it computes the same one; duplicates count once; no positives: u = 0
    np.testing.assert_allclose(fold_in_one(np.r_[X[3].indices, X[3].indices], V, b, 2.0),
                               fold_in_one(X[3].indices, V, b, 2.0, start), atol=1e-6)
    np.testing.assert_array_equal(fold_in_one(np.array([], dtype=np.int64), V, b, 2.0), np.zeros(V.shape[1]))


def test_fit_and_scores_are_deterministic_with_a_fixed_seed():
    X = clustered_positives()
    first, u1 = fit_engagement(X, 10.0, SMALL_WARP, weight=0.5, seed=3)
    second, u2 = fit_engagement(X, 10.0, SMALL_WARP, weight=0.5, seed=3)
    np.testing.assert_array_equal(first.B, second.B)
    np.testing.assert_array_equal(first.item_vectors, second.item_vectors)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(first.score_rows(X), second.score_rows(X))
    other, _ = fit_engagement(X, 10.0, SMALL_WARP, weight=0.5, seed=4)
    assert not np.array_equal(first.item_vectors, other.item_vectors)


def test_topn_model_scores_a_user_from_positives_and_never_recommends_them():
    X = clustered_positives()
    model, _ = fit_engagement(X, 10.0, SMALL_WARP, weight=0.3, seed=0)
    positives = X[4].indices
    np.testing.assert_allclose(model.score(positives), model.score_rows(X)[4], atol=1e-3)
    top = model.recommend(positives, k=5)
    assert len(top) == 5 and not set(top) & set(positives)
    assert top[0] % 3 == 4 % 3 and np.sum(top[:3] % 3 == 4 % 3) >= 2    # user 4 is in group 1
    ease_only = EngagementModel(model.B, None, None, weight=0.0)
    np.testing.assert_allclose(ease_only.score(positives), ease_scores(X[4], model.B)[0])


def test_positives_matrix_is_binary_even_with_duplicate_pairs():
    X = positives_matrix(np.array([0, 0, 1]), np.array([2, 2, 0]), 2, 3)
    np.testing.assert_array_equal(X.toarray(), [[0, 0, 1], [1, 0, 0]])


def test_tune_topn_picks_values_from_its_grid_and_logs_every_trial():
    X = clustered_positives(seed=1)
    rng = np.random.default_rng(0)
    held = sp.csr_matrix(X.multiply(rng.random(X.shape) < 0.2))
    fit = sp.csr_matrix(X - held)
    fit.eliminate_zeros()
    held.eliminate_zeros()
    grid = {"l2": (1.0, 10.0), "warp": (SMALL_WARP,), "epochs": (5, 10), "foldin_reg": (1.0,),
            "weight": (0.0, 0.5)}
    out = tune_engagement(fit, held, grid=grid, seed=0, k=5)
    assert out["l2"] in grid["l2"] and out["warp"].epochs in grid["epochs"] and out["weight"] in grid["weight"]
    assert len(out["search"]) == 2 + 2 + 1 + 2
    assert all(0.0 <= s["precision_at_5"] <= 1.0 for s in out["search"])


def test_genre_popularity_scores_an_item_by_the_known_items_of_its_genres():
    genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 0], [0, 1]])
    popularity = np.array([4.0, 2.0, 10.0, 99.0, 99.0, 99.0])      # only known items' counts may matter
    known = np.array([True, True, True, False, False, False])
    # genre 0: known items 0, 1 -> mean 3; genre 1: known item 2 -> 10
    np.testing.assert_allclose(genre_popularity(genres, popularity, known), [3.0, 3.0, 10.0, 6.5, 0.0, 10.0])


# Run in a fresh interpreter: this test process has already imported jobs/ and LightFM.
SERVING_ONLY = """
import sys
import numpy as np
import app.api.factory
from app.model.artifact import UNCALIBRATED, Blend
from app.online.scoring import ServingModel, engagement_scores

rng = np.random.default_rng(0)
n, d = 6, 3
model = ServingModel(1, "unit", "engagement", "mf", "default", [str(i) for i in range(n)],
                     rng.normal(size=(n, d)), rng.normal(size=n), np.zeros(d + 1), np.eye(d + 1), UNCALIBRATED,
                     Blend(0.5, 5.0, rng.normal(size=(n, n)).astype(np.float32)))
scores = engagement_scores(model, np.array([0, 1]), np.array([2, 3, -1]))
assert np.isfinite(scores).all() and scores[2] < scores[:2].min()
import scipy.sparse as sp
model.blend = Blend(0.5, 5.0, sp.csr_matrix(model.blend.item_weights))   # top-k weights, as stored since issue 15
assert np.allclose(engagement_scores(model, np.array([0, 1]), np.array([2, 3, -1])), scores, atol=1e-5)
print(sorted({m.split(".")[0] for m in sys.modules} & {"jobs", "lightfm", "bench", "cli"}))
"""


def test_serving_scores_engagement_without_importing_training_code():
    # app/ never imports jobs/ (nor LightFM through it): a gunicorn worker carries only serving code.
    done = subprocess.run([sys.executable, "-c", SERVING_ONLY], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def some_ratings(n=400, seed=0) -> np.ndarray:
    """(n, 4) rows of u.data: user, item, stars 1-5, timestamp."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(1, 30, n), rng.integers(1, 50, n), rng.integers(1, 6, n),
                            874_000_000 + rng.integers(0, 10**6, n)]).astype(np.int64)


def test_held_out_positives_are_ratings_of_4_or_more_drawn_like_the_random_split():
    ratings = some_ratings()
    positive, held = held_out_positives(ratings, seed=3)
    np.testing.assert_array_equal(positive, ratings[:, 2] >= 4)
    assert held.sum() == round(0.2 * positive.sum()) and not (held & ~positive).any()
    # the same draw as bench.topn's random split of the filtered pairs, so the two rows share test pairs
    np.testing.assert_array_equal(held[positive], split_pairs(int(positive.sum()), 3, 0.2))
    again, other = held_out_positives(ratings, seed=3)[1], held_out_positives(ratings, seed=4)[1]
    np.testing.assert_array_equal(held, again)
    assert not np.array_equal(held, other)
    every, held_any = held_out_positives(ratings, seed=3, min_rating=1)
    assert every.all() and held_any.sum() == round(0.2 * len(ratings))


def test_written_ratings_read_back_in_the_layout_the_movielens_importer_parses(tmp_path):
    ratings = some_ratings(n=20)
    path = tmp_path / "train.data"
    write_ratings(path, ratings)
    np.testing.assert_array_equal(read_ratings(str(path)), ratings)
    rows = [row for _, row in csv_rows(path, False, movielens.ENCODING, 4, **movielens.TABS)]
    assert rows == [[str(v) for v in r] for r in ratings]


@pytest.mark.parametrize("layout", ["dense", "top_k"])
def test_serving_scores_come_in_the_callers_item_order_whatever_the_models_order(layout):
    rng = np.random.default_rng(2)
    model_ids, d = ["f", "c", "a", "e", "b", "d"], 3
    V, b = rng.normal(size=(6, d)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    B = rng.normal(size=(6, 6)).astype(np.float32)
    np.fill_diagonal(B, 0.0)
    B = B if layout == "dense" else top_k_neighbours(B, 2)
    stored = StoredModel(1, "unit", "engagement", "mf", "default", ModelArtifact(
        Embedding(model_ids, V, b, np.zeros(d + 1), np.eye(d + 1)), UNCALIBRATED, blend=Blend(0.4, 5.0, B)))
    caller_ids = ["a", "b", "c", "d", "e", "f", "g"]          # "g" is not in the model
    scores = serving_scores(ServingModel.from_stored(stored), [np.array([0, 2]), np.array([6])], caller_ids)
    topn = EngagementModel(B, V, b, foldin_reg=5.0, weight=0.4)
    in_model_order = [2, 4, 1, 5, 3, 0]                        # a, b, c, d, e, f
    np.testing.assert_allclose(scores[0, :6], topn.score(np.array([2, 1]))[in_model_order], rtol=1e-6)
    # an uncovered positive is left out of the history, an uncovered candidate ranks last
    np.testing.assert_allclose(scores[1, :6], topn.score(np.array([], dtype=np.int64))[in_model_order], rtol=1e-6)
    assert (scores[:, 6] < scores[:, :6].min(axis=1)).all()

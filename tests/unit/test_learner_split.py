"""The learner split (jobs/training/split.py) and the practice trainer's use of it: a learner's role
follows from their id alone, so it is the same in every unit, in the job and in the benches."""
from __future__ import annotations

import numpy as np
import pytest

from jobs.training import split
from jobs.training.practice import Params, PracticeData, train_practice

IDS = [f"learner-{i}" for i in range(10_000)]


def test_a_learners_role_is_stable_across_calls_and_the_lists_it_appears_in():
    everyone = split.roles(IDS)
    assert np.array_equal(everyone, split.roles(IDS))
    # "another unit": a shuffled subset holds the same learners in the same roles
    subset = np.random.default_rng(1).permutation(len(IDS))[:700]
    assert np.array_equal(split.roles([IDS[i] for i in subset]), everyone[subset])
    assert [split.role(IDS[i]) for i in range(50)] == [split.ROLE_NAMES[r] for r in everyone[:50]]
    by_role = split.ids_by_role(reversed(IDS + IDS[:10]))
    assert {u for name in split.ROLE_NAMES for u in by_role[name]} == set(IDS)
    assert all(split.role(u) == name for name in split.ROLE_NAMES for u in by_role[name][:100])


def test_roles_are_80_10_10_within_tolerance_and_keys_lie_in_the_unit_interval():
    keys = split.split_keys(IDS)
    assert ((keys >= 0) & (keys < 1)).all()
    fractions = np.bincount(split.roles_of_keys(keys), minlength=3) / len(IDS)
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.015)   # 5 standard errors of a 10 % share
    assert split.roles_of_keys(np.array([0.0, 0.7999, 0.8, 0.8999, 0.9, 0.99999])).tolist() == [0, 0, 1, 1, 2, 2]


def test_a_different_seed_gives_a_different_split():
    a, b = split.roles(IDS, seed=0), split.roles(IDS, seed=1)
    changed = np.mean(a != b)
    assert 0.25 < changed < 0.45        # independent draws change about 1 - (0.64 + 0.01 + 0.01) = 34 %
    assert np.bincount(b, minlength=3) / len(IDS) == pytest.approx([0.8, 0.1, 0.1], abs=0.015)


def test_a_cap_keeps_the_learners_with_the_smallest_keys_so_caps_nest():
    keys = split.split_keys(IDS)
    test = np.flatnonzero(split.roles_of_keys(keys) == split.TEST)
    capped = split.first_by_key(test, keys, 100)
    assert len(capped) == 100 and np.all(np.diff(capped) > 0)
    assert keys[capped].max() < np.delete(keys[test], np.searchsorted(test, capped)).min()
    assert set(split.first_by_key(test, keys, 40)) <= set(capped)
    assert np.array_equal(split.first_by_key(test, keys, None), test)


def _synthetic(n_users: int = 240, n_items: int = 30, per_user: int = 12, seed: int = 0) -> PracticeData:
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(size=n_users), rng.normal(size=n_items)
    users = np.repeat(np.arange(n_users), per_user).astype(np.int32)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)]).astype(np.int32)
    p = 1 / (1 + np.exp(-(ability[users] - difficulty[items])))
    return PracticeData(user_ids=[f"u{u:04d}" for u in range(n_users)], item_ids=[f"q{i}" for i in range(n_items)],
                        users=users, items=items, outcomes=(rng.random(len(users)) < p).astype(np.int8))


@pytest.mark.slow  # fits LightFM
def test_the_practice_trainer_tunes_on_dev_reports_on_test_and_never_trains_on_test_learners():
    data = _synthetic()
    roles = split.roles(data.user_ids)
    grid = (Params(4, 3, 1e-6, 0.1),)
    result = train_practice(data, grid=grid, max_trials=1, threads=1, max_eval_users=1000)
    assert result.dev_users.tolist() == np.flatnonzero(roles == split.DEV).tolist()
    assert result.test_users.tolist() == np.flatnonzero(roles == split.TEST).tolist()
    assert result.trained_users.tolist() == np.flatnonzero(roles != split.TEST).tolist()
    assert result.metrics["model"]["n"] == int(np.isin(data.users, result.test_users).sum())

    capped = train_practice(data, grid=grid, max_trials=1, threads=1, max_eval_users=5)
    keys = split.split_keys(data.user_ids)
    assert capped.test_users.tolist() == split.first_by_key(result.test_users, keys, 5).tolist()
    assert len(capped.dev_users) == 5 and set(capped.dev_users) <= set(result.dev_users)

    everyone = train_practice(data, grid=grid, max_trials=1, threads=1, hold_out_test=False)
    assert everyone.trained_users.tolist() == list(range(len(data.user_ids)))
    reseeded = train_practice(data, grid=grid, max_trials=1, threads=1, split_seed=7)
    assert reseeded.test_users.tolist() == np.flatnonzero(split.roles(data.user_ids, 7) == split.TEST).tolist()

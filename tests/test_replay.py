"""The replay benchmark's pure parts (bench/replay.py): the split, halves, the baselines, the dev /
test report."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.replay import (
    ROLES,
    Elo,
    baseline_predictions,
    dev_test_table,
    fit_irt,
    format_table,
    irt_live,
    item_difficulty,
    read_attempts,
    replay_frame,
    second_half_mask,
    service_slices,
    skills_by_problem,
    write_attempts,
)
from jobs.training import split
from jobs.training.metrics import auc


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "seq", "problem_id", "correct", "skills"]).astype(
        {"seq": np.int64, "correct": np.int8})


def test_students_take_their_role_from_the_training_jobs_learner_split():
    ids = [str(i) for i in range(1000, 0, -1)] * 2          # repeats, unsorted
    roles = split.ids_by_role(ids)
    assert list(roles) == ["train", "dev", "test"]
    members = [u for name in roles for u in roles[name]]
    assert sorted(members) == sorted(set(ids)) and len(members) == 1000          # a partition
    assert all(split.role(u) == name for name in roles for u in roles[name])      # the job's roles
    assert [len(roles[name]) / 1000 for name in roles] == pytest.approx([0.8, 0.1, 0.1], abs=0.04)
    for name in roles:                                       # replay order: split-key order
        assert np.all(np.diff(split.split_keys(roles[name])) > 0)
    assert split.ids_by_role(list(reversed(ids))) == roles
    assert split.ids_by_role(ids, seed=1) != roles


def test_test_frame_orders_students_as_given_and_attempts_by_seq():
    df = _frame([("a", 2, "p1", 1, "s"), ("b", 0, "p2", 0, "s"), ("a", 0, "p3", 0, "s"), ("a", 1, "p1", 1, "s")])
    out = replay_frame(df, ["b", "a"])
    assert out.user_id.tolist() == ["b", "a", "a", "a"] and out.seq.tolist() == [0, 0, 1, 2]
    assert out.pos.tolist() == [0, 0, 1, 2] and out.n.tolist() == [1, 3, 3, 3]


def test_second_half_is_the_attempts_after_floor_half_and_needs_two_attempts():
    pos = np.array([0, 0, 1, 2, 0, 1, 2, 3])
    n = np.array([1, 3, 3, 3, 4, 4, 4, 4])
    assert second_half_mask(pos, n).tolist() == [False, False, True, True, False, False, True, True]


def test_files_round_trip_and_skills_are_the_union_over_rows(tmp_path):
    df = _frame([("7", 0, "p1", 1, "A|B"), ("7", 1, "p2", 0, ""), ("8", 0, "p1", 0, "B|C"),
                 ("8", 1, "p3", 1, "Order of Operations +,-,/,* () positive reals")])
    path = tmp_path / "a.csv.gz"
    write_attempts(df, path)
    back = read_attempts(path)
    pd.testing.assert_frame_equal(back, df.sort_values(["user_id", "seq"]).reset_index(drop=True))
    assert skills_by_problem(back) == {"p1": ["A", "B", "C"], "p2": [],
                                       "p3": ["Order of Operations +,-,/,* () positive reals"]}


def test_item_difficulty_shrinks_to_the_global_rate_and_unseen_items_get_it():
    items = np.array([0, 0, 0, 0, 1])
    y = np.array([1, 1, 1, 1, 0], dtype=float)
    p = item_difficulty(items, y, 3, np.array([0, 1, 2]), prior_weight=5.0)
    overall = 0.8
    assert p == pytest.approx([(4 + 5 * overall) / 9, (0 + 5 * overall) / 6, overall])


def test_elo_predicts_before_learning_with_the_uncertainty_function():
    elo = Elo(n_users=1, n_items=2, alpha=1.0, beta=0.5)
    p = elo.run(np.array([0, 0, 0]), np.array([0, 1, 0]), np.array([1.0, 0.0, 1.0]))
    assert p[0] == pytest.approx(0.5)                         # everyone starts at 0
    # after the first answer: skill +1 * 0.5, difficulty of item 0 -0.5
    assert elo.user_n.tolist() == [3] and elo.item_n.tolist() == [2, 1]
    assert p[1] == pytest.approx(1 / (1 + math.exp(-(0.5 - 0.0))))
    skill_after_2 = 0.5 + 1 / (1 + 0.5) * (0 - p[1])
    assert p[2] == pytest.approx(1 / (1 + math.exp(-(skill_after_2 + 0.5))))


def test_elo_learns_which_items_are_hard_on_synthetic_data():
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 10
    ability, difficulty = rng.normal(size=n_users), np.linspace(-2, 2, n_items)
    users = np.repeat(np.arange(n_users), 20)
    items = rng.integers(0, n_items, len(users))
    y = (rng.random(len(users)) < 1 / (1 + np.exp(-(ability[users] - difficulty[items])))).astype(float)
    elo = Elo(n_users, n_items)
    p = elo.run(users, items, y)
    assert np.corrcoef(elo.difficulty, difficulty)[0, 1] > 0.95
    assert auc(y[len(y) // 2:], p[len(y) // 2:]) > 0.7


def test_irt_fit_recovers_difficulties_and_live_ability_uses_only_earlier_attempts():
    rng = np.random.default_rng(1)
    n_users, n_items = 400, 15
    ability, difficulty = rng.normal(size=n_users), np.linspace(-1.5, 1.5, n_items)
    users = np.repeat(np.arange(n_users), 30)
    items = rng.integers(0, n_items, len(users))
    y = (rng.random(len(users)) < 1 / (1 + np.exp(-(0.5 + ability[users] - difficulty[items])))).astype(float)
    theta, b, c = fit_irt(users, items, y, n_users, n_items, item_sd=3.0)
    assert np.corrcoef(b, difficulty)[0, 1] > 0.97 and np.corrcoef(theta, ability)[0, 1] > 0.8
    assert c - b.mean() == pytest.approx(0.5, abs=0.25)

    t_items = np.array([0, 1, 2, 3, 0, 1])
    t_y = np.array([1, 1, 0, 1, 0, 0])
    starts = np.array([True, False, False, False, True, False])
    p = irt_live(b, c, t_items, t_y, starts)
    assert p[0] == pytest.approx(1 / (1 + math.exp(-(c - b[0]))))   # no history: ability 0
    assert p[4] == pytest.approx(1 / (1 + math.exp(-(c - b[0]))))   # a new student starts again
    assert p[1] > 1 / (1 + math.exp(-(c - b[1])))                    # a success raises the estimate
    flipped = irt_live(b, c, t_items, np.array([1, 1, 0, 0, 0, 0]), starts)
    assert np.allclose(flipped[:4], p[:4])                            # a later outcome changes nothing before it
    # the live ability is the MAP: sum(y - p) = theta on the earlier attempts
    z = c - b[t_items[:3]]
    theta3 = math.log(p[3] / (1 - p[3])) - (c - b[t_items[3]])
    assert np.sum(t_y[:3] - 1 / (1 + np.exp(-(theta3 + z)))) == pytest.approx(theta3, abs=1e-6)


def _replay(rows):
    return replay_frame(_frame(rows), list(dict.fromkeys(r[0] for r in rows)))


def test_baselines_replay_each_role_from_the_trained_state_alone():
    train = _frame([("t1", 0, "p1", 1, ""), ("t1", 1, "p2", 0, ""), ("t2", 0, "p1", 1, ""), ("t2", 1, "p2", 1, "")])
    dev = _replay([("d1", 0, "p1", 0, ""), ("d1", 1, "p1", 0, ""), ("d1", 2, "p2", 0, "")])
    test = _replay([("s1", 0, "p2", 1, ""), ("s1", 1, "p1", 1, "")])
    items = {"p1": 0, "p2": 1}
    both = baseline_predictions(train, {"dev": dev, "test": test}, items, {u: k for k, u in enumerate(
        ["t1", "t2", "d1", "s1"])})
    alone = baseline_predictions(train, {"test": test}, items, {u: k for k, u in enumerate(["t1", "t2", "s1"])})
    assert set(both) == {"dev", "test"} and set(both["test"]) == {"item_difficulty", "elo", "irt_live"}
    for name, p in alone["test"].items():                    # the dev replay leaves test untouched
        np.testing.assert_allclose(both["test"][name], p)
    assert both["dev"]["elo"][1] < both["dev"]["elo"][0]     # Elo still learns online within a role


def test_service_slices_split_first_and_repeated_attempts_and_history_length():
    frame = _replay([("a", k, f"p{k % 3}", k % 2, "") for k in range(12)])
    p = np.linspace(0.2, 0.8, 12)
    slices = service_slices(frame, p)
    assert slices["first_attempts_only"]["n"] == 3 and slices["repeated_attempts"]["n"] == 9
    assert slices["no_history (pos 0)"]["n"] == 1 and slices["pos 1-9"]["n"] == 9 and slices["pos 10-49"]["n"] == 2
    assert slices["pos >= 50"] == {"n": 0}


def test_the_dev_test_table_puts_each_metric_on_dev_beside_test():
    def block(shift):
        m = {"auc": 0.7 + shift, "logloss": 0.5, "accuracy": 0.7, "ece": 0.01, "n": 10}
        return {"service": m, "baselines": {b: {**m, "auc": 0.6 + shift} for b in ("item_difficulty", "elo",
                                                                                    "irt_live")}}
    rows = dev_test_table({"dev": block(0.0), "test": block(0.1)})
    assert ROLES == ("dev", "test") and [r["method"] for r in rows] == ["service", "item_difficulty", "elo",
                                                                         "irt_live"]
    assert rows[0]["auc_dev"] == pytest.approx(0.7) and rows[0]["auc_test"] == pytest.approx(0.8)
    assert rows[2]["auc_dev"] == pytest.approx(0.6) and rows[2]["n_test"] == 10
    text = format_table(rows)
    assert "auc dev" in text and "0.8000" in text and len(text.splitlines()) == 5

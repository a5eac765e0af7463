"""The replay benchmark's pure parts (bench.attempts, bench.baselines, bench.compare, bench.replay):
the split, regimes, the production cut, halves, the baselines, slices, intervals, the dev / test
report."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.attempts import (
    FEW_ATTEMPTS,
    REGIMES,
    annotate,
    demo_attempts,
    describe,
    few_attempts_slice,
    production_cut,
    read_attempts,
    regime_attempts,
    replay_frame,
    second_half_mask,
    skills_by_problem,
    slice_masks,
    with_training_counts,
    write_attempts,
)
from bench.baselines import Elo, baseline_predictions, irt_live, item_difficulty, tune_elo
from bench.compare import ROLES, bootstrap_difference, dev_test_table, format_table, slice_table
from bench.replay.phases import knowledge_calibration, service_vs_baselines
from bench.replay.service import knowledge_p, knowledge_requests
from bench.replay.setup import learner_rows
from bench.replay.training import parent_summary, unit_outcomes
from jobs.training import split
from jobs.training.irt import fit_1pl
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
    theta, b, c = fit_1pl(users, items, y, n_users, n_items, item_sd=3.0)
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
    return replay_frame(_frame(rows), list(dict.fromkeys(r[0] for r in rows))).assign(replayed=True)


def test_baselines_replay_each_role_from_the_trained_state_alone():
    train = _frame([("t1", 0, "p1", 1, ""), ("t1", 1, "p2", 0, ""), ("t2", 0, "p1", 1, ""), ("t2", 1, "p2", 1, "")])
    dev = _replay([("d1", 0, "p1", 0, ""), ("d1", 1, "p1", 0, ""), ("d1", 2, "p2", 0, "")])
    test = _replay([("s1", 0, "p2", 1, ""), ("s1", 1, "p1", 1, "")])
    items = {"p1": 0, "p2": 1}
    both, info = baseline_predictions(train, {"dev": dev, "test": test}, items, {u: k for k, u in enumerate(
        ["t1", "t2", "d1", "s1"])})
    alone, _ = baseline_predictions(train, {"dev": dev, "test": test}, items, {u: k for k, u in enumerate(
        ["t1", "t2", "s1", "d1"])})
    assert set(both) == {"dev", "test"} and set(both["test"]) == {"item_difficulty", "elo", "elo_tuned", "irt_live"}
    for name, p in alone["test"].items():                    # the dev replay leaves test untouched
        np.testing.assert_allclose(both["test"][name], p)
    assert both["dev"]["elo"][1] < both["dev"]["elo"][0]     # Elo still learns online within a role
    assert info["elo_tuned"]["chosen_on"] == "dev" and len(info["elo_tuned"]["grid"]) >= 25
    chosen = min(info["elo_tuned"]["grid"], key=lambda r: r["dev_logloss"])
    assert (info["elo_tuned"]["alpha"], info["elo_tuned"]["beta"]) == (chosen["alpha"], chosen["beta"])


def test_baselines_predict_only_replayed_rows_and_earlier_rows_inform_the_live_ability():
    """Production protocol: a returning learner's attempts before the cut are training rows and
    history, never predicted; the live 1PL's ability already knows them at the first replayed row."""
    rows = [("r", k, f"p{k % 2}", 1, "") for k in range(6)]
    full = _replay(rows)
    full["replayed"] = full.pos >= 3
    train = pd.concat([_frame([("t", k, f"p{k % 2}", k % 2, "") for k in range(6)]), _frame(rows[:3])])
    out, _ = baseline_predictions(train, {"dev": full, "test": full}, {"p0": 0, "p1": 1}, {"t": 0, "r": 1},
                                  tune_on=None)
    assert all(len(p) == 3 for p in out["dev"].values())
    fresh, _ = baseline_predictions(train, {"dev": full.assign(replayed=True), "test": full}, {"p0": 0, "p1": 1},
                                    {"t": 0, "r": 1}, tune_on=None)
    np.testing.assert_allclose(out["dev"]["irt_live"], fresh["dev"]["irt_live"][3:])
    assert out["dev"]["irt_live"][0] > fresh["dev"]["irt_live"][1]   # three successes already seen


def test_elo_tuning_picks_the_lowest_dev_logloss():
    users, items = np.zeros(30, dtype=int), np.arange(30) % 3
    y = np.ones(30)                                    # one learner who always succeeds
    trained = {(a, 0.05): Elo(1, 3, a, 0.05) for a in (0.1, 2.0)}
    (alpha, beta), table = tune_elo(trained, users, items, y)
    assert alpha == 2.0 and beta == 0.05 and len(table) == 2     # the faster learner fits a streak better
    assert trained[(2.0, 0.05)].user_n.tolist() == [0]           # tuning leaves the trained state alone


def test_slices_split_attempts_by_item_history_and_history_length():
    frame = _replay([("a", k, f"p{k % 3}", k % 2, "") for k in range(12)])
    p = np.linspace(0.2, 0.8, 12)
    masks = slice_masks(frame)
    assert masks["first attempt at the item"].sum() == 3
    # p0 at 0 (y0), 3 (y1), 6 (y0), 9 (y1): repeats at 3 and 9 follow a mistake, 6 follows a success
    after_mistake = np.flatnonzero(masks["repeat after a mistake"])
    assert frame.problem_id[3] == "p0" and 3 in after_mistake and 6 not in after_mistake
    assert masks["repeat after a mistake"].sum() + masks["repeat after a success"].sum() == 9
    assert masks["history 0"].sum() == 1 and masks["history 1-9"].sum() == 9 and masks["history 10-49"].sum() == 2
    assert masks["history 200+"].sum() == 0 and "returning learners" not in masks
    table = slice_table(frame, {"service": p, "skill": np.where(np.arange(12) < 6, np.nan, p)})
    assert table["history 200+"]["service"] == {"n": 0}
    assert table["history 1-9"]["service"]["n"] == 9 and table["history 1-9"]["skill"]["n"] == 4


def test_the_few_attempts_slice_counts_each_items_attempts_in_the_rows_trained_on():
    train = _frame([(f"t{k}", 0, "common", 1, "") for k in range(FEW_ATTEMPTS)]
                   + [(f"t{k}", 1, "rare", 1, "") for k in range(FEW_ATTEMPTS - 1)])
    frame = with_training_counts(_replay([("a", 0, "common", 1, ""), ("a", 1, "rare", 0, ""), ("a", 2, "unseen", 1, ""),
                                          ("a", 3, "common", 0, "")]), train)
    assert frame.item_attempts_at_training.tolist() == [FEW_ATTEMPTS, FEW_ATTEMPTS - 1, 0, FEW_ATTEMPTS]
    name = few_attempts_slice()
    assert str(FEW_ATTEMPTS) in name                          # the report names its threshold
    assert slice_masks(frame)[name].tolist() == [False, True, True, False]
    assert name not in slice_masks(frame.drop(columns="item_attempts_at_training"))
    table = slice_table(frame, {"service": np.full(4, 0.5), "pfa": np.full(4, 0.6)})
    assert table[name]["service"]["n"] == 2 and table[name]["pfa"]["n"] == 2


def test_units_the_job_did_not_activate_are_reported_by_why():
    from jobs.training.job import UnitOutcome

    outcomes = [UnitOutcome("root", "practice", "activated", 1), UnitOutcome("s1", "practice", "parent_serves", 2),
                UnitOutcome("s2", "practice", "failed", reason="boom"), UnitOutcome("s3", "practice", "skipped"),
                UnitOutcome("s4", "practice", "kept_previous", 3, reason="worse")]
    out = unit_outcomes(outcomes)
    assert out["units_served_by_ancestor"] == ["s1"] and out["units_skipped"] == ["s3"]
    assert [(m["unit_id"], m["status"], m["reason"]) for m in out["models_failed"]] == [
        ("s2", "failed", "boom"), ("s4", "kept_previous", "worse")]


def test_the_service_is_compared_with_every_strong_baseline():
    rng = np.random.default_rng(3)
    frame = _frame([(f"u{u}", k, "p", int(rng.random() < 0.6), "") for u in range(20) for k in range(10)])
    base = {m: rng.random(len(frame)) for m in ("item_difficulty", "elo_tuned", "irt_live", "best_lr", "pfa")}
    out = service_vs_baselines(frame, rng.random(len(frame)), base, "item_difficulty")
    assert set(out) == {f"service - {m}" for m in base}
    assert all(set(v) >= {"auc", "logloss"} for v in out.values())


def test_the_production_cut_puts_new_learners_after_it_and_halves_the_others():
    df = annotate(_frame([(f"u{u}", k, f"p{k}", 1, "") for u in range(200) for k in range(u % 7 + 1)]))
    cut = production_cut(df)
    per_user = cut.groupby("user_id").agg(n=("n", "first"), before=("before", "sum"), returning=("returning", "first"))
    new = per_user.before == 0
    assert (per_user.before[~new] == per_user.n[~new] // 2).all()
    assert not per_user.returning[new].any() and per_user.returning[~new].all()
    assert 0.2 < (new & (per_user.n >= 2)).sum() / (per_user.n >= 2).sum() < 0.35     # about a fifth join later
    # each learner's attempts: those before the cut, then those after it
    assert cut.groupby("user_id").before.apply(lambda b: not (b.astype(int).diff() > 0).any()).all()
    assert production_cut(df).equals(cut)
    assert {"returning learners", "new learners"} <= set(slice_masks(cut))


def test_learner_rows_follow_the_protocol():
    df = annotate(_frame([(f"u{u}", k, f"p{k}", 1, "") for u in range(300) for k in range(4)]))
    ids = split.ids_by_role(df.user_id)
    train, frames = learner_rows(df, "learner", ids, ids)
    assert set(train.user_id) == set(ids["train"]) and all(f.replayed.all() for f in frames.values())
    train, frames = learner_rows(df, "production", ids, ids)
    assert set(train.user_id) - set(ids["train"])              # returning dev / test learners are trained on
    for role in ROLES:
        f = frames[role]
        assert set(f.user_id) == set(ids[role]) and (f.replayed == ~f.before).all()
        assert not train.merge(f[f.replayed], on=["user_id", "seq"]).shape[0]   # no replayed row is trained on


def test_regimes_subsample_filter_and_generate(tmp_path):
    rows = [(f"u{u}", k, f"p{k % 9}", (u + k) % 2, "s") for u in range(400) for k in range(u % 5 + 1)]
    rows += [("long", k, "p1", 1, "s") for k in range(300)]
    path = tmp_path / "a.csv.gz"
    write_attempts(_frame(rows), path)
    few = regime_attempts(REGIMES["250-learners"], path)
    assert few.user_id.nunique() == 250 and regime_attempts(REGIMES["250-learners"], path).equals(few)
    assert set(regime_attempts(REGIMES["300-attempts"], path).user_id) == {"long"}
    demo = demo_attempts(40, 4000, first_chapters=True)
    assert set(demo.columns) >= {"user_id", "seq", "problem_id", "correct", "skills", "p_true"}
    assert demo.problem_id.str.split(".").str[2].eq("1").all()          # <root>.<subject>.1.<section>.q<n>
    assert (demo.groupby("user_id").seq.apply(lambda s: list(s) == list(range(len(s))))).all()
    assert demo.skills.str.count(r"\.").eq(3).all() and demo.p_true.between(0, 1).all()
    shape = describe(demo)
    assert shape["attempts"] == len(demo) and shape["items"] <= 12 * 30 and 0 < shape["repeat_share"] < 1


def test_bootstrap_intervals_cover_the_difference_and_resample_learners():
    rng = np.random.default_rng(0)
    frame = _frame([(f"u{u}", k, "p", int(rng.random() < 0.6), "") for u in range(60) for k in range(20)])
    y = frame.correct.to_numpy()
    good = np.clip(0.6 + 0.3 * (y - 0.6) + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    flat = np.full(len(y), 0.6)
    out = bootstrap_difference(frame, good, flat, resamples=50)
    assert out["learners"] == 60 and out["auc"]["difference"] > 0.2
    assert out["auc"]["ci95"][0] <= out["auc"]["difference"] <= out["auc"]["ci95"][1]
    assert out["logloss"]["ci95"][1] < 0                                 # clearly better: the interval excludes 0
    same = bootstrap_difference(frame, good, good, resamples=20)
    assert same["auc"] == {"difference": 0.0, "ci95": [0.0, 0.0]}


def test_parent_summary_counts_only_honest_comparisons_it_can_read():
    from jobs.training.job import UnitOutcome

    def outcome(unit, own, parent, honest=True, objective="practice"):
        metrics = {"model": {"auc": own}}
        if parent is not None:
            metrics["parent"] = {"auc": parent, "attempts": 100, "learners": 5, "held_out_from_both": honest}
        return UnitOutcome(unit, objective, "activated", 1, metrics)

    out = parent_summary([outcome("a", 0.7, 0.8), outcome("b", 0.9, 0.8, honest=False), outcome("root", 0.8, None),
                          outcome("c", float("nan"), 0.8), outcome("e", 0.5, 0.9, objective="engagement")])
    assert out["units_compared"] == 2 and out["held_out_from_both"] == 1
    assert out["child_better"] == 1 and out["parent_better"] == 1 and out["median_auc_child_minus_parent"] == 0.0
    assert parent_summary([]) == {"units_compared": 0}


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


def test_knowledge_is_asked_before_first_attempts_only_for_every_skill_of_the_item():
    df = annotate(_frame([("a", 0, "p1", 1, "s1|s2"), ("a", 1, "p1", 0, "s1|s2"), ("a", 2, "p2", 0, ""),
                          ("a", 3, "p3", 1, "s2"), ("b", 0, "p1", 0, "s1|s2")]))
    skills = {"p1": ["s1", "s2", "s1"], "p2": [], "p3": ["s2"]}
    assert knowledge_requests(df, skills) == [("skill:s1", "skill:s2"), (), (), ("skill:s2",),
                                              ("skill:s1", "skill:s2")]


def test_knowledge_p_reads_each_units_p_and_attempts_from_the_endpoints_answer():
    answer = {"units": [{"unit_id": "skill:b", "p": 0.25, "attempts": 3},
                        {"unit_id": "skill:a", "p": None, "attempts": 0}]}
    out = knowledge_p(answer, ("skill:a", "skill:b"))
    assert math.isnan(out[0][0]) and out[0][1] == 0 and out[1] == (0.25, 3)


def test_knowledge_calibration_pairs_each_skills_p_with_the_attempts_outcome():
    y = np.array([1, 0, 1, 0, 1])
    p_item = np.array([0.9, 0.2, 0.5, 0.1, 0.8])
    known = pd.DataFrame({"row": [0, 0, 1, 3, 4, 4], "unit": ["s1", "s2", "s1", "s1", "s2", "s3"],
                          "rank": [0, 1, 0, 0, 0, 1], "p": [0.7, 0.6, 0.3, 0.4, np.nan, 0.9],
                          "attempts": [0, 2, 1, 12, 60, 0]})
    out = knowledge_calibration(y, p_item, known)
    assert out["attempts"] == 4                                       # rows 0, 1, 3, 4 (row 4 via s3)
    every, first = out["every_skill"], out["first_skill"]
    assert every["n"] == 5 and first["n"] == 3                          # the NaN p (row 4, s2) left out
    assert every["mean_p"] == pytest.approx(np.mean([0.7, 0.6, 0.3, 0.4, 0.9]), abs=1e-4)
    assert every["mean_outcome"] == pytest.approx(np.mean([1, 1, 0, 0, 1]))
    assert first["mean_outcome"] == pytest.approx(np.mean([1, 0, 0]), abs=1e-4)
    assert every["auc"] == pytest.approx(auc(np.array([1, 1, 0, 0, 1]), np.array([0.7, 0.6, 0.3, 0.4, 0.9])), abs=1e-4)
    item = out["item_level_same_attempts"]
    assert item["n"] == 4 and item["mean_p"] == pytest.approx(np.mean([0.9, 0.2, 0.1, 0.8]), abs=1e-4)
    bands = out["by_skill_attempts"]
    assert list(bands) == ["0", "1-9", "10-49", "50+"]
    assert [bands[b]["n"] for b in bands] == [2, 2, 1, 0]
    assert sum(r["n"] for r in out["reliability"]) == 5


def test_knowledge_calibration_of_a_perfectly_calibrated_p_has_an_ece_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    known = pd.DataFrame({"row": np.arange(p.size), "unit": "s", "rank": 0, "p": p, "attempts": 1})
    out = knowledge_calibration(y, np.minimum(p + 0.2, 0.99), known)        # the item p: 0.2 too high
    assert out["every_skill"]["ece"] < 0.02 and out["item_level_same_attempts"]["ece"] > 0.1

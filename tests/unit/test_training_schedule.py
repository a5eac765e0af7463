"""The orchestrator's order of tasks (jobs.train.run_tasks), with a runner that runs nothing: it
records what was submitted when and answers as told: a practice unit below others is fitted ahead
of them and compared with them only once they have finished. The real runners are tested with real
processes and Postgres in test_training_pool.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs import train
from jobs.train import run_tasks
from jobs.training.job import TrainConfig, UnitOutcome, UnitResult
from jobs.training.runners import Done
from jobs.training.tasks import DevPredictions, TaskResult

# demo ── a ── a1        (b's branch runs while a's does)
#     └── b
ABOVE = {"demo": [], "a": ["demo"], "a1": ["a", "demo"], "b": ["demo"]}
TODO = [("demo", "engagement", "mf"), ("demo", "practice", "mf"), ("a", "practice", "mf"), ("b", "practice", "mf"),
        ("a1", "practice", "mf")]


@dataclass
class Fitted:
    """What a fit_ahead task hands back (practice_job.Trained), as far as the orchestrator looks."""
    key: tuple
    attempts: int = 100
    seconds: float = 1.0


class ScriptedRunner:
    """Two slots; finishes the oldest running task at each wait, dying where `deaths` says. The log
    names each task's kind: run (whole), fit (ahead of its ancestors) or finish (a fitted unit)."""

    capacity = 2

    def __init__(self, deaths: dict | None = None):
        self.deaths = dict(deaths or {})
        self.running_keys: list = []
        self.specs: dict = {}
        self.log: list = []
        self.fitted: dict = {}

    @property
    def running(self) -> int:
        return len(self.running_keys)

    def submit(self, key, spec) -> None:
        kind = "fit" if spec.fit_ahead else "finish" if spec.trained is not None else "run"
        if kind == "finish":
            assert spec.trained is self.fitted[key]   # the unit its fit returned
        self.log.append(("start", key, kind, spec.ancestor[0] if spec.ancestor else None))
        self.running_keys.append(key)
        self.specs[key] = spec

    def wait(self) -> list[Done]:
        key = self.running_keys.pop(0)
        self.log.append(("end", key))
        if self.deaths.get(key, 0) > 0:
            self.deaths[key] -= 1
            return [Done(key, died="worker died (exit -9)")]
        if self.specs[key].fit_ahead:
            self.fitted[key] = Fitted(key)
            return [Done(key, output=TaskResult(None, trained=self.fitted[key]))]
        unit_id, objective = key
        entry = DevPredictions(np.array(["u1"]), np.array([f"q-{unit_id}"]), np.array([0.5])) \
            if objective == "practice" else None
        return [Done(key, output=TaskResult(UnitResult(UnitOutcome(unit_id, objective, "activated")), entry))]

    def starts(self, kind: str | None = None) -> list:
        return [e for e in self.log if e[0] == "start" and kind in (None, e[2])]


def run(runner: ScriptedRunner) -> dict:
    return run_tasks(runner, "postgresql://unused", TrainConfig(), TODO, ABOVE, finished=lambda o: o)


def final_end(runner: ScriptedRunner, key) -> int:
    """Where in the log `key`'s last task ended (its outcome)."""
    return max(n for n, e in enumerate(runner.log) if e == ("end", key))


def test_a_unit_is_fitted_while_its_ancestors_train_and_compared_once_they_have():
    runner = ScriptedRunner()
    outcomes = run(runner)
    assert {k: o.status for k, o in outcomes.items()} == {(u, o): "activated" for u, o, _ in TODO}
    # the root's two objectives first (its engagement model holds nothing back), then a fit ahead
    assert [e[1:3] for e in runner.starts()[:3]] == [(("demo", "engagement"), "run"), (("demo", "practice"), "run"),
                                                     (("a", "practice"), "fit")]
    for _, key, kind, ancestor in runner.starts():
        if kind == "fit":
            assert ancestor is None   # nothing from above yet
            continue
        start = runner.log.index(("start", key, kind, ancestor))
        for above in ABOVE[key[0]]:   # compared only once every unit above has its outcome
            assert final_end(runner, (above, key[1])) < start
    fitted_ahead = {e[1] for e in runner.starts("fit")}
    assert fitted_ahead and fitted_ahead == {e[1] for e in runner.starts("finish")}
    assert ("demo", "practice") not in fitted_ahead
    compared = {e[1]: e[3] for e in runner.starts() if e[2] != "fit"}
    assert compared[("a1", "practice")] == "a" and compared[("b", "practice")] == "demo"
    assert runner.specs[("a1", "practice")].ancestor[1].items.tolist() == ["q-a"]


def test_a_fit_ahead_waits_for_no_one_but_a_comparison_for_every_unit_above():
    runner = ScriptedRunner()
    run(runner)
    # a1 (two levels down) is fitted while the root still trains, but compared only after a
    a1_fit = runner.log.index(next(e for e in runner.starts("fit") if e[1] == ("a1", "practice")))
    assert a1_fit < final_end(runner, ("a", "practice"))
    a1_compared = runner.log.index(next(e for e in runner.starts() if e[1] == ("a1", "practice") and e[2] != "fit"))
    assert a1_compared > final_end(runner, ("a", "practice"))


def test_fits_ahead_stop_while_the_parked_units_hold_the_most_attempts(monkeypatch):
    monkeypatch.setattr(train, "PARKED_ATTEMPTS", 100)   # one Fitted
    runner = ScriptedRunner()
    outcomes = run(runner)
    assert {o.status for o in outcomes.values()} == {"activated"}
    parked = 0
    for e in runner.log:
        if e[0] == "start" and e[2] == "fit":
            assert parked == 0, runner.log   # never a second unit parked beside the first
            parked += 1
        elif e[0] == "start" and e[2] == "finish":
            parked -= 1


def test_a_task_whose_worker_dies_runs_once_more_and_then_fails_alone():
    runner = ScriptedRunner(deaths={("a", "practice"): 2, ("b", "practice"): 1})
    outcomes = run(runner)
    a, b = outcomes[("a", "practice")], outcomes[("b", "practice")]
    assert a.status == "failed" and a.retried and a.reason == "worker died (exit -9); retried once"
    assert b.status == "activated" and b.retried and "on the first attempt; retried once" in b.reason
    assert len([e for e in runner.starts() if e[1] == ("a", "practice")]) == 2
    # a1 still trains, compared with the root's model since a has no model tonight
    assert outcomes[("a1", "practice")].status == "activated"
    assert runner.specs[("a1", "practice")].ancestor[0] == "demo"


def test_units_that_are_each_others_ancestors_still_run():
    runner = ScriptedRunner()
    todo = [("x", "practice", "mf"), ("y", "practice", "mf")]
    outcomes = run_tasks(runner, "postgresql://unused", TrainConfig(), todo, {"x": ["y"], "y": ["x"]},
                         finished=lambda o: o)
    assert {o.status for o in outcomes.values()} == {"activated"}
    # the loop's order: x compared with nothing, then y with x
    assert [(e[1][0], e[3]) for e in runner.starts() if e[2] != "fit"] == [("x", None), ("y", "x")]

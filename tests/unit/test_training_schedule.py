"""The orchestrator's order of tasks (jobs.train.run_tasks), with a runner that runs nothing: it
records what was submitted when and answers as told. The real runners are tested with real
processes and Postgres in test_training_pool.py."""
from __future__ import annotations

import numpy as np

from jobs.train import run_tasks
from jobs.training.job import TrainConfig, UnitOutcome, UnitResult
from jobs.training.runners import Done
from jobs.training.tasks import DevPredictions, TaskResult

# demo ── a ── a1        (b's branch runs while a's does)
#     └── b
ABOVE = {"demo": [], "a": ["demo"], "a1": ["a", "demo"], "b": ["demo"]}
TODO = [("demo", "engagement", "mf"), ("demo", "practice", "mf"), ("a", "practice", "mf"), ("b", "practice", "mf"),
        ("a1", "practice", "mf")]


class ScriptedRunner:
    """Two slots; finishes the oldest running task at each wait, dying where `deaths` says."""

    capacity = 2

    def __init__(self, deaths: dict | None = None):
        self.deaths = dict(deaths or {})
        self.running_keys: list = []
        self.specs: dict = {}
        self.log: list = []

    @property
    def running(self) -> int:
        return len(self.running_keys)

    def submit(self, key, spec) -> None:
        self.log.append(("start", key, spec.ancestor[0] if spec.ancestor else None))
        self.running_keys.append(key)
        self.specs[key] = spec

    def wait(self) -> list[Done]:
        key = self.running_keys.pop(0)
        self.log.append(("end", key))
        if self.deaths.get(key, 0) > 0:
            self.deaths[key] -= 1
            return [Done(key, died="worker died (exit -9)")]
        unit_id, objective = key
        entry = DevPredictions(np.array(["u1"]), np.array([f"q-{unit_id}"]), np.array([0.5])) \
            if objective == "practice" else None
        return [Done(key, output=TaskResult(UnitResult(UnitOutcome(unit_id, objective, "activated")), entry))]


def run(runner: ScriptedRunner) -> dict:
    return run_tasks(runner, "postgresql://unused", TrainConfig(), TODO, ABOVE, finished=lambda o: o)


def test_a_unit_starts_after_its_ancestors_and_gets_the_nearest_ones_dev_predictions():
    runner = ScriptedRunner()
    outcomes = run(runner)
    assert {k: o.status for k, o in outcomes.items()} == {(u, o): "activated" for u, o, _ in TODO}
    starts = [(e[1], e[2]) for e in runner.log if e[0] == "start"]
    ends = [e[1] for e in runner.log if e[0] == "end"]
    # the root's engagement model does not hold its practice children back
    assert starts[:2] == [(("demo", "engagement"), None), (("demo", "practice"), None)]
    for (unit_id, objective), ancestor in starts:
        for above in ABOVE[unit_id]:
            if (above, objective) in outcomes:
                assert runner.log.index(("end", (above, objective))) < runner.log.index(
                    ("start", (unit_id, objective), ancestor))
    assert dict(starts)[("a1", "practice")] == "a" and dict(starts)[("b", "practice")] == "demo"
    assert ends.index(("b", "practice")) < ends.index(("a1", "practice"))  # branches overlap
    assert runner.specs[("a1", "practice")].ancestor[1].items.tolist() == ["q-a"]


def test_a_task_whose_worker_dies_runs_once_more_and_then_fails_alone():
    runner = ScriptedRunner(deaths={("a", "practice"): 2, ("b", "practice"): 1})
    outcomes = run(runner)
    a, b = outcomes[("a", "practice")], outcomes[("b", "practice")]
    assert a.status == "failed" and a.retried and a.reason == "worker died (exit -9); retried once"
    assert b.status == "activated" and b.retried and "on the first attempt; retried once" in b.reason
    assert [e for e in runner.log if e[0] == "start" and e[1] == ("a", "practice")] == \
        [("start", ("a", "practice"), "demo")] * 2
    # a1 still trains, compared with the root's model since a has no model tonight
    assert outcomes[("a1", "practice")].status == "activated"
    assert runner.specs[("a1", "practice")].ancestor[0] == "demo"


def test_units_that_are_each_others_ancestors_still_run():
    runner = ScriptedRunner()
    todo = [("x", "practice", "mf"), ("y", "practice", "mf")]
    outcomes = run_tasks(runner, "postgresql://unused", TrainConfig(), todo, {"x": ["y"], "y": ["x"]},
                         finished=lambda o: o)
    assert {o.status for o in outcomes.values()} == {"activated"}

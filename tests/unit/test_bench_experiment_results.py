"""bench.experiment_results' routing: the service's own rule, and a broken one that moves a share
of variant b's learners to a (what the sample-ratio-mismatch guardrail must catch)."""
from __future__ import annotations

import numpy as np
import pytest

from app.serving.experiments import assign
from bench.experiment_results import VARIANTS, parse_args, routed


def test_without_skew_the_learners_are_routed_as_the_service_routes_them():
    got = routed(500, 0.0, np.random.default_rng(0))
    assert got == [assign("bench", f"l{g}", VARIANTS)["name"] for g in range(500)]
    assert 200 < got.count("b") < 300


def test_a_skew_moves_that_share_of_bs_learners_to_a_and_no_others():
    plain = routed(20_000, 0.0, np.random.default_rng(1))
    skewed = routed(20_000, 0.05, np.random.default_rng(1))
    moved = [k for k, (p, s) in enumerate(zip(plain, skewed)) if p != s]
    assert all(plain[k] == "b" and skewed[k] == "a" for k in moved)
    assert len(moved) / plain.count("b") == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("argv", [["--skew", "1"], ["--skew", "-0.1"], ["--learners", "10", "--attempts", "5"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "must" in capsys.readouterr().err

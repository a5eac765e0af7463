"""The live model's own cost, in process: `python -m bench.live_fit [--json OUT]`.

What one practice request costs in numpy alone, without HTTP, Redis or Postgres: the live MAP
fit on a learner's history plus calibrated p for every candidate (`app.online.scoring.
practice_probabilities`), for the serving model's variants side by side, interleaved in one run
(so a noisy machine slows them alike): plain (fit + Platt), + retry terms (each candidate's last
outcome looked up), + per-skill offsets (knowledge tracing), + both, + a metadata prior, and
exploring (a posterior draw as well). Synthetic model: --dim components, --items items in
--skills skills; histories of --history attempts; --candidates candidates. One thread
(OPENBLAS_NUM_THREADS=1 is set before numpy loads, as the service's workers run).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import sys
import time
from datetime import date

import numpy as np

from app.model.artifact import Calibration, Embedding, ModelArtifact, Skills
from app.model.store import StoredModel
from app.online.scoring import ServingModel, practice_probabilities
from harness.report import emit

RETRY = {"after_mistake": 0.8, "after_success": 0.3, "slope_after_mistake": -1.2, "slope_after_success": -0.6}
SKILL = {"sd": 0.6, "half_life": 5}


def model(dim: int, items: int, skills: int, seed: int = 0, calibration: dict | None = None) -> ServingModel:
    """A synthetic practice model; `calibration`: terms as stored (the calibration JSON's keys)."""
    rng = np.random.default_rng(seed)
    artifact = ModelArtifact(
        Embedding([f"i{k}" for k in range(items)], rng.normal(0, 0.3, (items, dim)), rng.normal(0, 1, items),
                  np.zeros(dim + 1), np.eye(dim + 1) * 0.5),
        Calibration.from_json({"a": 1.2, "b": -0.05, **(calibration or {})}), Skills(np.arange(items) % skills))
    return ServingModel.from_stored(StoredModel(1, "bench", "practice", "mf", "default", artifact))


def run(dim: int = 32, items: int = 5000, skills: int = 100, history: int = 500, candidates: int = 5000,
        repeats: int = 300, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    variants = {
        "plain": (model(dim, items, skills, seed), {}),
        "retry": (model(dim, items, skills, seed, {"retry": RETRY}), {}),
        "skill": (model(dim, items, skills, seed, {"skill": SKILL}), {}),
        "retry+skill": (model(dim, items, skills, seed, {"retry": RETRY, "skill": SKILL}), {}),
        "retry+skill+metadata prior": (model(dim, items, skills, seed, {"retry": RETRY, "skill": SKILL}),
                                       {"prior_mean": np.full(dim + 1, 0.1)}),
        "retry+skill, exploring": (model(dim, items, skills, seed, {"retry": RETRY, "skill": SKILL}),
                                   {"explore": True}),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for k in range(repeats):
        h_rows = rng.integers(0, items, history)
        h_out = (rng.random(history) < 0.65).astype(np.float64)
        c_rows = rng.choice(items, candidates, replace=False)
        for name, (m, extra) in variants.items():        # interleaved: the same noise for all
            kwargs = dict(extra)
            if kwargs.pop("explore", False):
                kwargs["explore"] = np.random.default_rng(k)
            t0 = time.perf_counter()
            practice_probabilities(m, h_rows, h_out, c_rows, None, **kwargs)
            seconds[name].append(time.perf_counter() - t0)
    out = {}
    for name, values in seconds.items():
        ms = np.asarray(values[10:]) * 1e3                # the first calls warm caches
        out[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
                     "mean_ms": round(float(ms.mean()), 3)}
    base = out["plain"]["p50_ms"]
    for name in out:
        out[name]["p50_vs_plain"] = round(out[name]["p50_ms"] / base, 2)
    return {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "config": {"dim": dim, "items": items, "skills": skills, "history": history, "candidates": candidates,
                       "repeats": repeats, "threads": os.environ.get("OPENBLAS_NUM_THREADS")},
            "variants": out}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.live_fit", description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--skills", type=int, default=100)
    ap.add_argument("--history", type=int, default=500)
    ap.add_argument("--candidates", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args(argv)
    for name in ("dim", "items", "skills", "history", "candidates", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.candidates > args.items:
        ap.error("--candidates cannot exceed --items")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    emit(run(args.dim, args.items, args.skills, args.history, args.candidates, args.repeats), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench.replay's training: rows imported through the real importer with the whole catalogue, the
real nightly job run on them, and what it did per unit (activated, failed, served by an ancestor,
skipped) with its honest parent comparison."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from app.access.tenants import DEFAULT
from bench.attempts import write_attempts
from bench.replay.setup import ROOT


def import_catalogue(conn, skills_of: dict[str, list[str]]) -> dict:
    """Stage the catalogue (no attempts) with the importer's own code and merge it."""
    from jobs.importers import assistments
    from jobs.importers.common import Loader

    with conn:
        loader = Loader(conn, tenant=DEFAULT)
        assistments._stage_catalogue(loader, skills_of, "")
        return loader.finish()


def import_and_train(url: str, conn, rows: pd.DataFrame, skills_of: dict[str, list[str]], config,
                     units: list[str] | None, workdir: Path, name: str, on_result=None) -> dict:
    """Import `rows` through the real importer, add the whole catalogue, run the training job
    (`on_result` goes to run_training: it receives each unit's fitted arrays)."""
    from jobs.importers import run_import
    from jobs.train import run_training

    path = workdir / f"{name}.csv.gz"
    write_attempts(rows, path)
    t0 = time.perf_counter()
    reports = run_import(conn, "assistments", [path], progress=False)
    catalogue = import_catalogue(conn, skills_of)
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = run_training(url, config, units=units, progress=False, on_result=on_result)
    train_s = time.perf_counter() - t0
    if report.locked_out:
        raise RuntimeError("another training job holds the lock on the scratch database")
    root = next((o for o in report.outcomes if o.unit_id == ROOT and o.objective == "practice"), None)
    if root is None or root.status != "activated":
        raise RuntimeError(f"the root model was not activated: {root and (root.status, root.reason)}")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT m.hyperparams, a.calibration FROM models m JOIN model_arrays a USING (model_id) "
                    "WHERE m.model_id = %s", (root.model_id,))
        hyperparams, calibration = cur.fetchone()
    search = hyperparams.pop("search", [])
    return {"rows_imported": reports[0].rows_read, "items_added_by_catalogue": catalogue.get("items", 0),
            "import_seconds": round(import_s, 2), "train_seconds": round(train_s, 2),
            "models_activated": sum(o.status == "activated" for o in report.outcomes),
            **unit_outcomes(report.outcomes),
            "root_model_id": root.model_id,
            "root_hyperparams": hyperparams, "root_calibration": calibration,
            "root_search": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()} for t in search],
            "root_job_metrics": {k: round(root.metrics["model"][k], 4) for k in ("auc", "ece")}
            | {"baseline_auc": round(root.metrics["baseline"]["auc"], 4)},
            "parent_comparison": parent_summary(report.outcomes)}


def unit_outcomes(outcomes) -> dict:
    """The units the job did not activate, by why (jobs.training.job.UnitOutcome.status):
    `models_failed` (failed: an error; kept_previous: the new model failed the sanity rule against
    the active one), `units_served_by_ancestor` (parent_serves: trained, but its ancestor's model
    predicts its dev learners as well, so that one serves it, by choice), `units_skipped` (no
    model trained: no attempts, or no training learner, under the unit)."""
    def of(*statuses):
        return [o.unit_id for o in outcomes if o.status in statuses]
    return {"models_failed": [{"unit_id": o.unit_id, "objective": o.objective, "status": o.status, "reason": o.reason}
                              for o in outcomes if o.status in ("failed", "kept_previous")],
            "units_served_by_ancestor": of("parent_serves"), "units_skipped": of("skipped")}


def parent_summary(outcomes) -> dict:
    """The job's parent comparison over every practice model below the root: its own held-out
    AUC against its parent's on the same learners (honest when neither trained on them)."""
    rows = []
    for o in outcomes:
        parent = (o.metrics or {}).get("parent") if o.objective == "practice" else None
        own = ((o.metrics or {}).get("model") or {}).get("auc")
        if parent and own is not None and math.isfinite(own):
            rows.append((o.unit_id, own, parent["auc"], parent["attempts"], parent["held_out_from_both"]))
    if not rows:
        return {"units_compared": 0}
    own, par, attempts = (np.array([r[k] for r in rows], dtype=np.float64) for k in (1, 2, 3))
    diff = own - par
    return {"units_compared": len(rows), "held_out_from_both": int(sum(r[4] for r in rows)),
            "child_better": int((diff > 0).sum()), "parent_better": int((diff < 0).sum()),
            "median_auc_child_minus_parent": round(float(np.median(diff)), 4),
            "attempt_weighted_auc": {"child": round(float(np.average(own, weights=attempts)), 4),
                                     "parent": round(float(np.average(par, weights=attempts)), 4)},
            "attempts_compared": int(attempts.sum())}


def root_practice_result(into: dict):
    """An on_result for run_training that keeps the root's practice UnitResult in `into["root"]`:
    the job stores only item vectors, and a full retrain predicts with the users' own."""
    def keep(result) -> None:
        if result.outcome.unit_id == ROOT and result.outcome.objective == "practice":
            into["root"] = result
    return keep

"""GET /v1/experiments/{name}/results (no Flask): an experiment version's variants judged by how
much their learners learned (app.online.experiment_stats), with the guardrails and a verdict.

Read per version of the variants (experiment_versions, migration 011): the learners whose first
answer in the version's window was routed to a variant, and their attempts from then to the
version's end (the views experiment_exposures and experiment_attempts). The item side is frozen
at the version's start: for each unit the version's answers named, the practice model (tag
`default`) of the nearest unit at or above it that was active then, else the first activated
after; an item takes its logit from the nearest such model that holds it. Every variant is
measured with the same yardstick, whichever model tag it serves with.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from app.errors import NotFound
from app.infra import queries as q
from app.online import experiment_stats as es
from app.serving import experiments
from app.serving.knowledge import MasterySettings, inherited_settings, mastery_settings

if TYPE_CHECKING:
    from app.serving.context import RequestContext

LEARNING = ("learning", "attempts_to_mastery", "retention", "calibration")


@dataclass(frozen=True)
class VariantResults:
    variant: str
    weight: float
    learners: int
    answers: int
    result: es.VariantResult
    versus_first: dict[str, es.Interval] | None    # this variant minus the first, per measure

    def as_json(self) -> dict:
        m = self.result.measures
        rate = m["success_rate"]
        return {"variant": self.variant, "weight": self.weight, "learners": self.learners, "answers": self.answers,
                "attempts": self.result.attempts,
                "success_rate": None if rate.estimate is None else round(rate.estimate, 6),
                "success_rate_interval": rate.as_json(),
                **{k: m[k].as_json() for k in LEARNING},
                "versus_first": None if self.versus_first is None
                else {k: v.as_json() for k, v in self.versus_first.items()}}


@dataclass(frozen=True)
class ExperimentResults:
    experiment: str
    version: int
    versions: list[dict]
    started_at: datetime
    ended_at: datetime | None
    model_ids: list[int]
    variants: list[VariantResults]
    guardrails: dict
    verdict: str

    def as_json(self) -> dict:
        return {"experiment": self.experiment, "version": self.version,
                "versions": [{"version": v["version"], "started_at": v["started_at"].isoformat(),
                              "ended_at": v["ended_at"].isoformat() if v["ended_at"] else None,
                              "variants": [x["name"] for x in v["variants"]]} for v in self.versions],
                "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "yardstick": {"model_ids": self.model_ids, "frozen_at": self.started_at.isoformat()},
                "variants": [v.as_json() for v in self.variants], "guardrails": self.guardrails,
                "verdict": self.verdict}


def frozen_logits(ctx: RequestContext, name: str, started_at: datetime, ended_at: datetime | None
                  ) -> tuple[dict[str, float], list[int]]:
    """Item id -> logit under the models frozen at the version's start (the nearest unit's wins)."""
    units = [r["unit_id"] for r in q.fetch_all(ctx.conn, "experiment_units", tenant=ctx.tenant, experiment=name,
                                              started_at=started_at, ended_at=ended_at or "infinity")]
    if not units:
        return {}, []
    rows = q.fetch_all(ctx.conn, "experiment_frozen_models", tenant=ctx.tenant, unit_ids=units, at=started_at)
    nearest: dict[str, tuple[int, int]] = {}
    for r in rows:   # nearest first per unit
        nearest.setdefault(r["start"], (r["depth"], r["model_id"]))
    logits: dict[str, float] = {}
    chosen = sorted(set(nearest.values()), reverse=True)   # farthest first: a nearer model overwrites
    for _, model_id in chosen:
        model = ctx.models.get(ctx.conn, ctx.tenant, model_id)
        logits.update(zip(model.item_ids, es.item_logits(model).tolist()))
    return logits, sorted({m for _, m in chosen})


def unit_yardsticks(ctx: RequestContext, logits: dict[str, float]) -> tuple[dict, dict]:
    """Per unit (the items' first unit by id): the logit of its typical (median-difficulty) item
    among the frozen models' items, and its mastery threshold (app.serving.knowledge's settings)."""
    by_unit: dict[str | None, list[float]] = {}
    for r in q.fetch_all(ctx.conn, "experiment_item_units", tenant=ctx.tenant, item_ids=list(logits)):
        by_unit.setdefault(r["unit_id"], []).append(logits[r["item_id"]])
    typical = {u: float(np.sort(v)[(len(v) - 1) // 2]) for u, v in by_unit.items()}   # the lower middle, as knowledge
    units = [u for u in by_unit if u is not None]
    inherited = inherited_settings(ctx.conn, ctx.tenant, units)
    attrs = {r["unit_id"]: r["attrs"] for r in q.fetch_all(ctx.conn, "experiment_unit_attrs", tenant=ctx.tenant,
                                                            unit_ids=units)}
    threshold = {u: mastery_settings(attrs.get(u), inherited.get(u, MasterySettings())).threshold for u in units}
    return typical, threshold


def results(ctx: RequestContext, name: str, version: int | None = None, draws: int = es.DRAWS,
            min_learners: int = es.MIN_LEARNERS) -> ExperimentResults:
    """The results of `name`'s version (default: the latest); NotFound naming what exists otherwise."""
    exp = experiments.get(ctx.conn, ctx.tenant, name)
    versions = q.fetch_all(ctx.conn, "experiment_version_list", tenant=ctx.tenant, experiment=name)
    if not versions:   # an experiment written before versions existed and not migrated: its variants as they stand
        versions = [{"version": 1, "variants": exp["variants"], "started_at": exp["created_at"], "ended_at": None}]
    chosen = versions[-1] if version is None else next((v for v in versions if v["version"] == version), None)
    if chosen is None:
        raise NotFound(f"experiment {name!r} has no version {version}; its versions are "
                       f"{', '.join(str(v['version']) for v in versions)}")
    started, ended = chosen["started_at"], chosen["ended_at"]
    logits, model_ids = frozen_logits(ctx, name, started, ended)
    typical, threshold = unit_yardsticks(ctx, logits)
    exposures = q.fetch_all(ctx.conn, "experiment_version_exposures", tenant=ctx.tenant, experiment=name,
                            version=chosen["version"])
    rows = q.fetch_tuples(ctx.conn, "experiment_version_attempts", tenant=ctx.tenant, experiment=name,
                          version=chosen["version"])
    paired = {r["user_id"]: (float(r["residual"]), float(r["paired"])) for r in q.fetch_all(
        ctx.conn, "experiment_version_calibration", tenant=ctx.tenant, experiment=name, started_at=started,
        ended_at=ended or "infinity")}
    columns = attempt_columns(rows, logits, typical, threshold)
    variants, out = chosen["variants"], []
    names = [v["name"] for v in variants]
    for k, v in enumerate(variants):
        mine = [e for e in exposures if e["variant"] == v["name"]]
        index = {e["user_id"]: i for i, e in enumerate(mine)}
        attempts = columns.of(index)
        calibration = es.Ratio(np.array([paired.get(e["user_id"], (0.0, 0.0))[0] for e in mine]),
                               np.array([paired.get(e["user_id"], (0.0, 0.0))[1] for e in mine]))
        result = es.analyse_variant(attempts, len(mine), calibration, draws=draws, seed=k)
        out.append(VariantResults(v["name"], float(v["weight"]), len(mine), sum(e["answers"] for e in mine),
                                  result, None))
    if out:
        first = out[0].result
        out = [out[0]] + [VariantResults(v.variant, v.weight, v.learners, v.answers, v.result,
                                         {m: es.difference(first, v.result, m) for m in ("success_rate", *LEARNING)})
                          for v in out[1:]]
    srm = es.sample_ratio_mismatch(np.array([v.learners for v in out]), np.array([v.weight for v in out]))
    known = int(np.isfinite(columns.logit).sum())
    guardrails = {
        "sample_ratio_mismatch": {**srm, "alpha": es.SRM_ALPHA,
                                  "learners": {v.variant: v.learners for v in out},
                                  "expected_shares": {v.variant: round(v.weight / sum(x.weight for x in out), 6)
                                                      for v in out}},
        "min_learners": min_learners,
        "too_few_learners": [v.variant for v in out if v.learners < min_learners],
        "learners_in_several_variants": sum(1 for e in exposures if e["variants_seen"] > 1),
        "learners_outside_the_variants": sum(1 for e in exposures if e["variant"] not in names),
        "attempts_with_frozen_difficulty": known,
        "attempts_without_frozen_difficulty": len(rows) - known,
    }
    return ExperimentResults(name, chosen["version"], versions, started, ended, model_ids, out, guardrails,
                             es.verdict(names, [v.result for v in out], srm, min_learners))


@dataclass(frozen=True)
class AttemptColumns:
    """The version's attempts as arrays, before they are split by variant."""
    user: np.ndarray         # each attempt's learner, a number of `users`
    users: dict[str, int]
    unit: np.ndarray
    first: np.ndarray
    outcome: np.ndarray
    logit: np.ndarray
    unit_logit: np.ndarray
    threshold: np.ndarray
    opportunity: np.ndarray
    days_away: np.ndarray

    def of(self, index: dict[str, int]) -> es.Attempts:
        """The attempts of the learners in `index` (user id -> learner number), in the same order."""
        recode = np.full(len(self.users) + 1, -1, dtype=np.int64)
        for user, k in index.items():
            if user in self.users:
                recode[self.users[user]] = k
        learner = recode[self.user]
        keep = learner >= 0
        return es.Attempts(learner[keep], self.unit[keep], self.first[keep], self.outcome[keep], self.logit[keep],
                           self.unit_logit[keep], self.threshold[keep], self.opportunity[keep], self.days_away[keep])


def codes(values) -> tuple[np.ndarray, list]:
    """Each value's number in order of first appearance, and the distinct values."""
    seen: dict = {}
    out = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64, count=len(values))
    return out, list(seen)


def attempt_columns(rows: list[tuple], logits: dict, typical: dict, threshold: dict) -> AttemptColumns:
    """experiment_version_attempts' rows (user, item, unit, first, outcome, opportunity, days away) as arrays."""
    nan = float("nan")
    if not rows:
        empty = np.zeros(0)
        return AttemptColumns(empty.astype(np.int64), {}, empty.astype(np.int64), empty.astype(bool),
                              empty.astype(np.int64), empty, empty, empty, empty.astype(np.int64), empty)
    user, item, unit, first, outcome, opportunity, days = zip(*rows)
    user_code, users = codes(user)
    item_code, items = codes(item)
    unit_code, units = codes(unit)
    default = MasterySettings().threshold
    return AttemptColumns(
        user_code, {u: k for k, u in enumerate(users)}, unit_code, np.array(first, dtype=bool),
        np.array(outcome, dtype=np.int64), np.array([logits.get(i, nan) for i in items])[item_code],
        np.array([typical.get(u, nan) for u in units])[unit_code],
        np.array([threshold.get(u, default) for u in units])[unit_code],
        np.array(opportunity, dtype=np.int64), np.array(days, dtype=np.float64))

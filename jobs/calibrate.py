"""Calibration monitoring: did the p(correct) practice models predicted come true?

Each recommendation of a practice model logged in the window [start, end) is paired with the
learner's first attempt at that item within HORIZON_HOURS after the answer; when several
answers listed the item before that attempt only the latest one is paired, so every attempt
counts once (the rule is the SQL function prediction_outcomes of migration 006, which the
variant_outcomes view shares; see sql/calibration.sql). Per model and variant: BINS
equal-width buckets of predicted vs observed and the ECE, stored in calibration_reports (a
re-run replaces the window's rows), and one reliability diagram PNG per model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from app.access.tenants import DEFAULT
from app.infra import queries as q
from jobs.training import metrics

HORIZON_HOURS = 24
BINS = 10


def window(until: str | None, days: int) -> tuple[datetime, datetime]:
    """[until - days, until) in UTC; until defaults to today's UTC midnight (the window is then
    the last `days` whole days). A time without a zone is UTC. ValueError on a bad `until`."""
    if until is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        try:
            end = datetime.fromisoformat(until.strip())
        except ValueError:
            raise ValueError(f"expected an ISO date or time such as 2026-11-24 or 2026-11-24T06:00Z, "
                             f"got {until!r}") from None
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    return end - timedelta(days=days), end


@dataclass
class Group:
    """The calibration of one model for one variant (None: no experiment; else 'experiment/variant')."""
    model_id: int
    variant: str | None
    y: np.ndarray
    p: np.ndarray

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def buckets(self) -> list[dict]:
        return metrics.reliability(self.y, self.p, BINS)

    @property
    def ece(self) -> float:
        return metrics.ece(self.y, self.p, BINS)


@dataclass
class CalibrationReport:
    window_start: datetime
    window_end: datetime
    groups: list[Group] = field(default_factory=list)
    models: dict[int, dict] = field(default_factory=dict)     # model_id -> {unit_id, tag, mode}
    diagrams: dict[int, Path] = field(default_factory=dict)   # model_id -> PNG

    def window(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:%M} to {self.window_end:%Y-%m-%d %H:%M} UTC"

    def table(self) -> str:
        lines = [f"calibration of practice models, {self.window()} "
                 f"(first attempt within {HORIZON_HOURS} h after a recommendation)",
                 f"{'model':>6} {'unit':<32} {'variant':<24} {'n':>7} {'ece':>6}  diagram"]
        for g in self.groups:
            unit = self.models.get(g.model_id, {}).get("unit_id", "(pruned)")
            lines.append(f"{g.model_id:>6} {unit[:32]:<32} {(g.variant or '-')[:24]:<24} {g.n:>7} {g.ece:>6.3f}  "
                         f"{self.diagrams.get(g.model_id, '')}")
        return "\n".join(lines)


def group_outcomes(rows: list[dict]) -> list[Group]:
    """Rows of (model_id, variant, p, outcome) into one Group per (model, variant), in order."""
    by_key: dict[tuple, list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["model_id"], r["variant"]), []).append(r)
    return [Group(model_id, variant, np.array([r["outcome"] for r in rs], dtype=np.float64),
                  np.array([r["p"] for r in rs], dtype=np.float64))
            for (model_id, variant), rs in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def diagram_name(model_id: int, start: datetime, end: datetime) -> str:
    """calibration-model7-2026-11-23.png: the last day in the window, and its length unless one day."""
    last_day = (end - timedelta(microseconds=1)).date()
    days = (end - start) / timedelta(days=1)
    suffix = "" if days == 1 else f"-{days:g}d"
    return f"calibration-model{model_id}-{last_day.isoformat()}{suffix}.png"


def render(path: Path, model_id: int, unit_id: str, groups: list[Group], report: CalibrationReport) -> Path:
    """A reliability diagram of one model (its variants pooled, each drawn too when there are
    several): observed vs mean predicted per bucket, the diagonal, bucket counts as bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display, no pyplot state
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    pooled = Group(model_id, None, np.concatenate([g.y for g in groups]), np.concatenate([g.p for g in groups]))
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    counts = ax.twinx()
    buckets = pooled.buckets
    counts.bar([(b["lower"] + b["upper"]) / 2 for b in buckets], [b["n"] for b in buckets], width=0.9 / BINS,
               color="tab:gray", alpha=0.25, label="attempts per bucket")
    counts.set_ylabel("attempts per bucket")
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_zorder(counts.get_zorder() + 1)   # the curves above the bars
    ax.patch.set_visible(False)
    ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")

    def curve(g: Group, **style):
        filled = [b for b in g.buckets if b["n"]]
        ax.plot([b["predicted"] for b in filled], [b["observed"] for b in filled], marker="o", **style)

    curve(pooled, color="tab:blue", linewidth=2, label="all answers" if len(groups) > 1 else "observed")
    if len(groups) > 1:
        for k, g in enumerate(groups):
            curve(g, color=f"C{k + 1}", linewidth=1, markersize=3, label=g.variant or "no experiment")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted p(correct), bucket mean")
    ax.set_ylabel("observed success rate")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(f"model {model_id} · {unit_id}\nn = {pooled.n}, ECE = {pooled.ece:.3f} · {report.window()}",
                 fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def store(conn, tenant: str, report: CalibrationReport) -> None:
    """Replace the window's rows with this report's, in one transaction."""
    window = {"tenant": tenant, "window_start": report.window_start, "window_end": report.window_end}
    try:
        q.execute(conn, "delete_calibration_window", **window)
        for g in report.groups:
            q.execute(conn, "insert_calibration_report", model_id=g.model_id, variant=g.variant, n=g.n,
                      ece=g.ece, buckets=json.dumps(g.buckets), **window)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def run(conn, start: datetime, end: datetime, out_dir: Path, horizon_hours: int = HORIZON_HOURS,
        tenant: str = DEFAULT) -> CalibrationReport:
    """Calibrate every practice model of `tenant` that served in [start, end): store, draw, and report."""
    rows = q.fetch_all(conn, "calibration_outcomes", tenant=tenant, window_start=start, window_end=end,
                       horizon_hours=horizon_hours)
    report = CalibrationReport(start, end, group_outcomes(rows))
    model_ids = sorted({g.model_id for g in report.groups})
    report.models = {r["model_id"]: r for r in q.fetch_all(conn, "calibration_models", tenant=tenant,
                                                           model_ids=model_ids)}
    store(conn, tenant, report)
    for model_id in model_ids:
        unit_id = report.models.get(model_id, {}).get("unit_id", "(pruned model)")
        groups = [g for g in report.groups if g.model_id == model_id]
        report.diagrams[model_id] = render(Path(out_dir) / diagram_name(model_id, start, end), model_id, unit_id,
                                           groups, report)
    return report

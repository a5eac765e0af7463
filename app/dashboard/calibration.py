"""The calibration pages, from `calibration_reports` (written by `adaptrec calibrate`)."""
from __future__ import annotations

from app.dashboard import charts
from app.errors import NotFound
from app.infra import queries as q


def index(conn, tenant: str) -> dict:
    rows = q.fetch_all(conn, "dash_calibration_latest", tenant=tenant)
    return {"rows": rows}


def model(conn, tenant: str, model_id: int) -> dict:
    found = q.fetch_one(conn, "dash_model", tenant=tenant, model_id=model_id)
    reports = q.fetch_all(conn, "dash_calibration_history", tenant=tenant, model_id=model_id)
    if found is None and not reports:
        raise NotFound(f"no model {model_id} in this tenant; pick one from the calibration list")
    variants: dict[str | None, list[dict]] = {}
    for r in reports:
        variants.setdefault(r["variant"], []).append(r)
    windows = sorted({r["window_end"] for r in reports})
    position = {w: k for k, w in enumerate(windows)}
    series = [charts.Series(v or "no experiment", [(position[r["window_end"]], r["ece"]) for r in rs], f"s{k % 6}",
                            [f"window to {r['window_end']:%Y-%m-%d %H:%M}, n = {r['n']}" for r in rs])
              for k, (v, rs) in enumerate(variants.items())]
    ece_chart = charts.line_chart(series, label=f"ECE over time of model {model_id}", y_label="ECE",
                                  x_ticks=[(k, f"{w:%m-%d}") for k, w in enumerate(windows)])
    latest = []
    for v, rs in variants.items():
        r = rs[-1]
        latest.append({**r, "name": v or "no experiment",
                       "diagram": charts.reliability_diagram(
                           r["buckets"], label=f"reliability of model {model_id}, {v or 'no experiment'}, "
                                               f"window to {r['window_end']:%Y-%m-%d %H:%M}")})
    return {"model": found, "model_id": model_id, "latest": latest, "ece_chart": ece_chart, "reports": reports}

"""The dashboard's pure parts: SVG charts, the statistics it states, the rollup arithmetic and the
unit outline. No server, no Flask."""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest
from prometheus_client import CollectorRegistry, Histogram

from app.dashboard import charts, rollup, stats
from app.dashboard.models import serving_ancestor, unit_tree

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)   # well-formed XML, or this raises


def test_a_line_chart_draws_a_dot_per_value_and_leaves_gaps_for_missing_ones():
    svg = charts.line_chart([charts.Series("auc", [(0, 0.7), (1, None), (2, 0.8)], "s0"),
                             charts.Series("baseline", [(0, 0.6), (1, 0.6), (2, 0.6)], "s2")],
                            label="auc per night", y_label="AUC", x_ticks=[(0, "11-01"), (2, "11-03")])
    root = parse(svg)
    dots = root.findall(f".//{SVG}circle")
    assert [float(d.get("data-y")) for d in dots] == [0.7, 0.8, 0.6, 0.6, 0.6]
    first, third = dots[0], dots[1]
    assert float(first.get("cy")) > float(third.get("cy"))     # higher value, higher on the page (smaller y)
    assert len(root.findall(f".//{SVG}g[@data-name='auc']/{SVG}polyline")) == 0   # the gap splits it into dots
    assert "11-03" in svg and 'aria-label="auc per night"' in svg


def test_charts_escape_every_label():
    svg = charts.bar_chart([("<script>alert(1)</script>", 3.0)], label='a "quoted" & <b>label</b>')
    parse(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&quot;quoted&quot;" in svg


def test_a_bar_chart_has_a_bar_per_value_with_heights_in_proportion():
    root = parse(charts.bar_chart([("a", 10), ("b", 20), ("c", 0)], label="bars"))
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert [b.get("data-label") for b in bars] == ["a", "b", "c"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.02) and heights[2] == 0


def test_empty_data_says_so_instead_of_drawing_nothing():
    for svg in (charts.line_chart([], label="x"), charts.bar_chart([], label="x", empty="no interactions yet"),
                charts.reliability_diagram([{"lower": 0, "upper": 0.1, "n": 0}], label="x"),
                charts.interval_chart([], label="x")):
        root = parse(svg)
        assert root.find(f".//{SVG}text[@class='empty']") is not None


def test_a_reliability_diagram_places_each_bucket_at_predicted_and_observed():
    buckets = [{"lower": 0.2, "upper": 0.3, "n": 40, "predicted": 0.25, "observed": 0.3},
               {"lower": 0.7, "upper": 0.8, "n": 10, "predicted": 0.75, "observed": 0.6},
               {"lower": 0.9, "upper": 1.0, "n": 0, "predicted": None, "observed": None}]
    root = parse(charts.reliability_diagram(buckets, label="model 1", size=320))
    dots = root.findall(f".//{SVG}circle")
    assert [(float(d.get("data-x")), float(d.get("data-y")), int(d.get("data-n"))) for d in dots] == \
        [(0.25, 0.3, 40), (0.75, 0.6, 10)]
    counts = root.findall(f".//{SVG}rect[@class='count']")
    assert float(counts[0].get("height")) == pytest.approx(4 * float(counts[1].get("height")), rel=0.02)
    assert root.find(f".//{SVG}line[@class='diagonal']") is not None


def test_an_interval_chart_draws_each_interval_around_its_value():
    root = parse(charts.interval_chart([("p50", 0.6, 0.5, 0.7), ("p70", 0.75, 0.7, 0.8)], label="variants"))
    groups = root.findall(f".//{SVG}g[@data-name]")
    assert [g.get("data-name") for g in groups] == ["p50", "p70"]
    for g in groups:
        line, dot = g.find(f"{SVG}line"), g.find(f"{SVG}circle")
        assert float(line.get("x1")) < float(dot.get("cx")) < float(line.get("x2"))


def test_nice_ticks_are_round_and_cover_the_range():
    assert charts.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = charts.nice_ticks(3, 947)
    assert ticks[0] <= 3 and ticks[-1] >= 947 and ticks[1] - ticks[0] == 200
    assert charts.nice_ticks(5, 5)[-1] >= 5
    assert charts.nice_ticks(0, 880)[-1] >= 880       # the tallest bar stays inside the chart


def test_the_wilson_interval_matches_a_worked_example():
    low, high = stats.wilson_interval(8, 10)                  # 0.8 of 10: [0.490, 0.943]
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert stats.wilson_interval(0, 0) is None
    low, high = stats.wilson_interval(0, 20)
    assert low == 0 and 0.15 < high < 0.17


def test_the_two_proportion_test_matches_a_worked_example():
    # 60/100 vs 75/100: pooled p 0.675, se 0.06624, z 2.2646, p 0.0235
    test = stats.two_proportion_test(60, 100, 75, 100)
    assert test["z"] == pytest.approx(2.2646, abs=1e-3)
    assert test["p_value"] == pytest.approx(0.0235, abs=5e-4)
    assert test["significant"] and test["low"] < 0.15 < test["high"]
    assert "significant difference" in stats.verdict(test, "p70", "p50")
    close = stats.two_proportion_test(50, 100, 52, 100)
    assert not close["significant"] and "not significant" in stats.verdict(close, "p70", "p50")
    assert "not enough" in stats.verdict(stats.two_proportion_test(0, 0, 1, 2), "p70", "p50")


def test_histogram_quantiles_interpolate_within_the_bucket():
    bounds = [0.01, 0.1, 1.0, math.inf]
    assert stats.histogram_quantile(0.5, bounds, [0, 100, 100, 100]) == pytest.approx(0.055)
    assert stats.histogram_quantile(0.99, bounds, [50, 50, 50, 100]) == 1.0     # in +Inf: the top finite bound
    assert stats.histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None


def observed(registry: CollectorRegistry, samples: list[tuple[str, str, float]]) -> list:
    h = Histogram(rollup.METRIC.removesuffix("_seconds"), "test", ["endpoint", "method", "status"],
                  unit="seconds", registry=registry, buckets=(0.01, 0.1, 1.0))
    for endpoint, status, seconds in samples:
        h.labels(endpoint, "GET", status).observe(seconds)
    return list(registry.collect())


def test_totals_leave_out_the_dashboard_and_health_checks_and_count_errors():
    families = observed(CollectorRegistry(), [("/v1/items", "200", 0.005), ("/v1/items", "500", 0.05),
                                              ("/v1/recommendations", "404", 0.5), ("/dashboard", "200", 0.2),
                                              ("/healthz", "200", 0.001)])
    overall, endpoints = rollup.totals_from(families)
    assert overall["count"] == 3 and overall["errors"] == 1 and overall["client_errors"] == 1
    assert overall["le"] == [0.01, 0.1, 1.0] and overall["buckets"] == [1, 2, 3, 3]
    assert endpoints["GET /v1/items"][:2] == [2, 1]
    assert not any("dashboard" in e or "healthz" in e for e in endpoints)


def test_a_window_is_the_difference_of_two_snapshots():
    before = {"count": 10, "errors": 1, "client_errors": 0, "sum": 1.0, "le": [0.01, 0.1], "buckets": [5, 9, 10]}
    after = {"count": 30, "errors": 1, "client_errors": 2, "sum": 2.0, "le": [0.01, 0.1], "buckets": [5, 29, 30]}
    window = rollup.summarise(rollup._minus(after, before), 3600)
    assert window["requests"] == 20 and window["errors"] == 0 and window["client_error_rate"] == 0.1
    assert window["per_s"] == pytest.approx(20 / 3600)
    assert 10 < window["p50_ms"] < 100 and window["mean_ms"] == pytest.approx(50)
    both = rollup._add(rollup._minus(after, before), rollup._minus(before, before))
    assert both["count"] == 20
    assert rollup.summarise(None, 60)["requests"] == 0


def test_the_unit_outline_shows_a_shared_unit_under_each_parent_and_survives_a_cycle():
    units = [{"unit_id": u, "name": u} for u in ("root", "a", "b", "shared", "x", "y")]
    edges = [{"parent": "root", "child": "a"}, {"parent": "root", "child": "b"}, {"parent": "a", "child": "shared"},
             {"parent": "b", "child": "shared"}, {"parent": "x", "child": "y"}, {"parent": "y", "child": "x"}]
    rows = unit_tree(units, edges)
    outline = [("  " * r["depth"]) + r["unit"]["unit_id"] for r in rows]
    assert outline[:5] == ["root", "  a", "    shared", "  b", "    shared"]
    assert sorted(outline[5:]) == ["x", "y"]      # on a cycle no root reaches: listed, not lost


def test_the_serving_ancestor_is_the_nearest_unit_above_with_a_model():
    edges = [{"parent": "root", "child": "a"}, {"parent": "a", "child": "leaf"}, {"parent": "b", "child": "leaf"},
             {"parent": "leaf", "child": "root"}]   # a cycle back to the root must not loop
    assert serving_ancestor("leaf", edges, {"root", "b"}) == "b"
    assert serving_ancestor("leaf", edges, {"root"}) == "root"
    assert serving_ancestor("leaf", edges, set()) is None


def test_chart_markup_uses_no_inline_styles():
    """The pages' Content-Security-Policy (style-src 'self') would drop style="" attributes."""
    svg = charts.line_chart([charts.Series("a", [(0, 1), (1, 2)])], label="x") + \
        charts.reliability_diagram([{"lower": 0, "upper": 0.1, "n": 3, "predicted": 0.05, "observed": 0.0}],
                                   label="y") + charts.interval_chart([("v", 0.5, 0.4, 0.6)], label="z")
    assert not re.search(r"\sstyle=", svg)

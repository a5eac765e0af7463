"""The few statistics the dashboard states: intervals, a two-proportion test, histogram quantiles.
Pure Python (math only), so each is checked on numbers worked out by hand."""
from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (good at small n and near 0 or 1); None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(s1: float, n1: float, s2: float, n2: float) -> dict | None:
    """Difference p2 - p1 with its 95 % interval (unpooled) and the two-sided p-value of the pooled
    z-test; None when either group is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = s1 / n1, s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = (p2 - p1) / se_pooled if se_pooled > 0 else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return {"difference": p2 - p1, "low": p2 - p1 - Z95 * se, "high": p2 - p1 + Z95 * se, "z": z,
            "p_value": p_value, "significant": p_value < 0.05}


def verdict(test: dict | None, name: str, baseline: str) -> str:
    """The test in one plain sentence."""
    if test is None:
        return f"{name}: not enough attempts to compare with {baseline} yet."
    points = 100 * test["difference"]
    word = "higher" if points > 0 else "lower"
    if test["significant"]:
        return (f"{name} succeeds {abs(points):.1f} points {word} than {baseline} "
                f"(95 % CI {100 * test['low']:+.1f} to {100 * test['high']:+.1f}, p = {test['p_value']:.3f}): "
                f"a significant difference.")
    return (f"{name} vs {baseline}: {points:+.1f} points (95 % CI {100 * test['low']:+.1f} to "
            f"{100 * test['high']:+.1f}, p = {test['p_value']:.2f}): not significant; "
            f"the data cannot tell them apart yet.")


def histogram_quantile(q: float, upper_bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """The q-quantile of a Prometheus-style histogram (cumulative counts at each upper bound, the
    last bound +Inf), interpolating linearly inside the bucket as Prometheus' histogram_quantile
    does. None when empty; the highest finite bound when the quantile falls in the +Inf bucket."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    rank = q * cumulative[-1]
    for k, (bound, count) in enumerate(zip(upper_bounds, cumulative)):
        if count >= rank:
            if math.isinf(bound):
                return upper_bounds[k - 1] if k > 0 else None
            lower = upper_bounds[k - 1] if k > 0 else 0.0
            below = cumulative[k - 1] if k > 0 else 0.0
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
    return upper_bounds[-2] if len(upper_bounds) > 1 else None

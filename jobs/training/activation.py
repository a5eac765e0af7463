"""When a freshly stored model may serve: the sanity rule and the activation both objectives use."""
from __future__ import annotations

from dataclasses import replace

from app.model import store as modelstore
from jobs.training.job import HEADLINE_METRIC, TrainConfig, UnitOutcome


def sane(new: dict, active: dict | None, key: str, margin: float) -> tuple[bool, str]:
    """(ok, reason): a new model's held-out `key` may fall at most `margin` below the active model's."""
    if not active:
        return True, ""
    old = (active.get("metrics") or {}).get("model", {}).get(key)
    value = new.get("model", {}).get(key)
    if old is None or value is None:  # no held-out figure to compare (too few learners)
        return True, ""
    if value < old - margin:
        return False, f"held-out {key} {value:.3f} is worse than the active model's {old:.3f} by more than {margin}"
    return True, ""


def activate_if_sane(conn, stored: UnitOutcome, config: TrainConfig) -> UnitOutcome:
    """Activate the model of `stored` (its model_id and metrics) and prune old versions when it is
    sane against the active one; otherwise mark it failed and keep the active one. Returns the
    outcome with its status (activated | kept_previous) and reason."""
    with conn:
        active = modelstore.active_model_summary(conn, config.tenant, stored.unit_id, stored.objective, config.tag)
        ok, reason = sane(stored.metrics, active, HEADLINE_METRIC[stored.objective], config.margin)
        if ok:
            modelstore.activate(conn, config.tenant, stored.model_id)
            modelstore.prune(conn, config.tenant, stored.unit_id, stored.objective, config.tag, config.keep_versions)
            status = "activated"
        else:
            modelstore.mark_failed(conn, stored.model_id, reason)
            status = "kept_previous"
    return replace(stored, status=status, reason=reason)

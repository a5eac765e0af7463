"""`adaptrec models`: the trained models with their metrics beside the baseline's."""
from __future__ import annotations

from cli.arguments import tenant_option
from cli.common import database, known_tenant


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="list trained models with their metrics beside the baseline's")
    models.add_argument("--all", action="store_true", help="include retired and failed versions")
    models.add_argument("--verbose", "-v", action="store_true", help="name the baseline")
    tenant_option(models, "whose models (default: default)")
    models.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    from app.model import store as modelstore
    from jobs.training.job import HEADLINE_METRIC

    with database() as (settings, conn):
        known_tenant(conn, args.tenant, "models")
        rows = modelstore.list_models(conn, args.tenant, include_retired=args.all)
        learned = _learned(settings, args.tenant, rows) if args.verbose else {}
    if not rows:
        print(f"no models yet in tenant {args.tenant!r}; run `adaptrec train --all`")
        return 0
    print(f"{'model':>6} {'unit':<36} {'objective':<10} {'mode':<7} {'kind':<9} {'status':<8} {'metric':<15} "
          f"{'model':>7} {'baseline':>9} {'trained':<16}")
    for r in rows:
        m = r["metrics"] or {}
        key = HEADLINE_METRIC[r["objective"]]
        model_v = (m.get("model") or {}).get(key)
        base_v = (m.get("baseline") or {}).get(key)
        base_name = m.get("baseline_name", "")
        print(f"{r['model_id']:>6} {r['unit_id'][:36]:<36} {r['objective']:<10} {r['mode']:<7} "
              f"{m.get('candidate', '-'):<9} {r['status']:<8} "
              f"{key:<15} {_num(model_v):>7} {_num(base_v):>9} {r['trained_at']:%Y-%m-%d %H:%M}"
              + (f"  (baseline: {base_name})" if args.verbose and base_name else ""))
        if args.verbose:
            for line in choice_lines(m) + learned.get(r["model_id"], []):
                print(f"{'':>8}{line}")
    return 0


def _learned(settings, tenant: str, rows: list[dict]) -> dict[int, list[str]]:
    """Per active practice model, a line on the item difficulty it has learned since training
    (app.serving.item_learning), read from Redis; a line saying so when Redis does not answer."""
    import redis

    from app.infra.cache import Cache
    from app.model.store import model_identity
    from app.serving import item_learning

    cache = Cache(settings.redis_url, settings.redis_prefix, timeout_s=2.0)
    out = {}
    try:
        for r in rows:
            if r["objective"] != "practice" or r["status"] != "active":
                continue
            try:
                n, top = item_learning.learned(cache, tenant, model_identity(r["model_id"], r["trained_at"]))
            except (redis.RedisError, OSError) as exc:
                out[r["model_id"]] = [f"items learned since training: unknown (Redis: {exc})"]
                continue
            moved = ", ".join(f"{item} {delta:+.2f} (sd {sd:.2f})" for item, delta, sd in top)
            out[r["model_id"]] = [f"items learned since training: {n}" + (f"; most moved: {moved}" if n else "")]
    finally:
        cache.close()
    return out


def choice_lines(metrics: dict) -> list[str]:
    """How a practice model was chosen, from its metrics: the candidates on dev, the ancestor."""
    lines = []
    dev = metrics.get("dev") or {}
    if dev:
        lines.append("dev log-loss / AUC: " + ", ".join(
            f"{kind} {_num(v.get('logloss'))} / {_num(v.get('auc'))}" for kind, v in dev.items()))
    ancestor = metrics.get("ancestor_dev")
    if ancestor:
        lines.append(f"vs {ancestor['unit_id']} on {ancestor['attempts']} dev attempts: log-loss "
                     f"{_num(ancestor.get('logloss'))} (own {_num(ancestor.get('own_logloss'))}): "
                     + ("own model serves" if ancestor.get("own_serves") else "the ancestor serves"))
    skill = metrics.get("skill_terms")
    if skill:
        lines.append("skill offsets (sd, half-life): dev log-loss " + ", ".join(
            f"{t['sd']}/{t.get('half_life', '-')} {_num(t['val_logloss'])}" for t in skill)
            + " (sd 0: none)")
    prior = metrics.get("metadata_prior")
    if prior:
        lines.append(f"metadata prior ({prior['tokens']} tokens): dev log-loss on first {prior['first_attempts']} "
                     f"attempts {_num(prior['val_logloss_first'])} vs population prior "
                     f"{_num(prior['population_val_logloss_first'])}, on all {_num(prior['val_logloss'])} vs "
                     f"{_num(prior['population_val_logloss'])}: " + ("used" if prior["used"] else "not used"))
    retries = metrics.get("dev_all_attempts")
    if retries and retries.get("logloss") is not None:
        lines.append(f"retry terms: dev log-loss {_num(retries['logloss'])} (Platt alone "
                     f"{_num(retries['platt_logloss'])}) over {retries['attempts']} attempts, "
                     f"{retries['retries']} retries")
    learning = (retries or {}).get("learning")
    if learning and "cross_fitted_logloss" in learning:
        line = (f"learning terms (practice, time away): cross-fitted dev log-loss "
                f"{_num(learning['cross_fitted_logloss'])} vs {_num(learning['cross_fitted_logloss_without'])} "
                f"without: " + ("used" if learning["used"] else "not used"))
        if learning.get("weights"):
            line += " (" + ", ".join(f"{k} {v:+.2f}" for k, v in learning["weights"].items()) + ")"
        lines.append(line)
    error = metrics.get("item_error")
    if error:
        lines.append(f"item error (knowledge intervals): sd {_num(error['sd'])} logits, growing by "
                     f"{_num(error['slope_sd'])} per logit of the learner's distance from the population")
    return lines


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"

"""bench.simulate --knowledge: issue 26's knowledge endpoint and its `mastery` and `review` strategies
played by simulated learners against the running service (the figures: bench.simulation.knowledge).

The first --knowledge-learners new and as many returning learners, each in three settings under
their own user ids (`<setting>.<n|r><index>`: the knowledge endpoint takes the id in its path, so
without the `/` of the other settings), the returning ones with their history imported under those
ids. Their own draws (SeedSequence(seed).spawn(8)[7], so the other settings' draws stay as they were).

1. Practice (`kp`): --skill-attempts attempts in each skill in turn (POST /v1/recommendations
   {units: [the skill's unit], n: 1, target}: the service's `target` strategy, asked for one skill, so
   that every skill has its attempts in one sitting of skills x skill-attempts), then
   GET /v1/users/{id}/knowledge?units=sim; each skill with at least --skill-attempts attempts in the
   answer (a returning learner's history counts too) beside the true p the answer estimates: the
   learner's mean true p over the skill's items (every item of a simulated skill is active).
2. Review (`rv`, `rt`): the practised learners a week later. Their history and the practice are
   imported again under two new ids, moved back so that the practice ended AWAY_DAYS before the wall
   clock (the API has no "as of": the service sees the week away only this way); the truth forgets
   the week. `rv` first asks the endpoint what it knows (the same figures after a week away), then
   plays a sitting of --review-attempts with strategy `review` (units [sim]); `rt` plays as many
   attempts as `rv` made with `target`, with the same draws. Then another week away: the true p
   (mean over skills) of each, and their difference per learner.
3. Mastery race (`km`, `kt`): fresh copies of the same learners, one sitting each with `mastery`
   and with `target` (units [sim]), the same draws, until every skill's true p (the mean over its
   items) reaches the threshold or --knowledge-cap attempts (censored at the cap) or the service serves
   nothing (then censored too: counted); then what the endpoint says of each skill beside the truth.
--knowledge-parts picks 1. and 2. (`knowledge`) or 3. (`race`); both by default.

Time: within a sitting an attempt takes a minute and is posted at that simulated time from the wall
clock at the sitting's start (as bench.simulate_service does), so the sitting lies a little in the
service's future and nobody forgets within it; the week away of 2. is the only time that passes.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.simulate_service import Client, import_lines
from bench.simulation import knowledge as figures
from bench.simulation.truth import ATTEMPT_DAYS, Learners, forget, practise, probabilities
from bench.simulation.world import ROOT, World, at_time, history_by_learner, item_id
from harness.measure import loadavg

AWAY_DAYS = 7.0
THRESHOLD = 0.8    # the service's default mastery threshold (app.serving.knowledge.MASTERY_THRESHOLD)


def kid(setting: str, returning: bool, u: int) -> str:
    return f"{setting}.{'r' if returning else 'n'}{u}"


def skill_unit(s: int) -> str:
    return f"{ROOT}:s{s + 1}"


def typical_items(conn, world: World) -> np.ndarray:
    """(skills,) catalogue index of each skill's typical item as the knowledge endpoint picks it: the
    served model of the root (only the root is trained), its covered items, typical_rows."""
    from app.online.knowledge import typical_rows
    from app.serving.model_cache import ModelCache

    cache = ModelCache()
    try:
        model = cache.nearest(conn, "default", [ROOT], "practice")
        ids = [item_id(i) for i in range(world.catalogue.size)]
        cache.cover(conn, "default", model, ids)
        per_skill = [sorted(item_id(i) for i in np.flatnonzero(world.catalogue.skill == s))
                     for s in range(world.catalogue.skills)]
        rows = typical_rows(model, [model.rows(items) for items in per_skill])
    finally:
        conn.rollback()
    positions = {i: k for k, i in enumerate(ids)}
    return np.array([positions[model.item_ids[r]] if r >= 0 else -1 for r in rows], dtype=np.int64)


def history_records(world: World, setting: str, u: int, rows: list, anchor: datetime, run: str) -> list[dict]:
    """Returning learner u's earlier attempts under the setting's id, `anchor` the start of the sitting after them."""
    uid = kid(setting, True, u)
    return [{"type": "interaction", "event_id": f"sim:{run}:{uid}:h{s}:{k}", "user_id": uid, "item_id": item_id(item),
             "kind": "attempt", "outcome": outcome,
             "occurred_at": at_time(anchor, world.history_starts[u, s] + k * ATTEMPT_DAYS).isoformat()}
            for _, s, k, item, outcome in rows]


def _wall_clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Sitting:
    """One learner's sitting in one setting: POST /v1/recommendations (n 1), the truth answers, the
    attempt posted at its simulated time."""

    def __init__(self, client: Client, world: World, positions: dict[str, int], learners: Learners, u: int,
                 uid: str, draws: np.ndarray, rate: float, run: str):
        self.client, self.world, self.positions = client, world, positions
        self.learners, self.u, self.uid = learners, u, uid
        self.draws, self.rate, self.run = draws, rate, run
        self.origin = _wall_clock()
        self.made: list[tuple[int, int]] = []     # (item, outcome) in order
        self.fallbacks: dict[str, int] = {}
        self.empty = 0                            # answers without an item

    def play(self, body: dict, count: int, stop: Callable[[], bool] | None = None) -> int:
        """Up to `count` attempts asked with `body` (user_id and n added); stops early when stop() says
        so (asked before each attempt) or the service serves nothing. Returns the attempts made."""
        made = 0
        while made < count and not (stop and stop()):
            status, answer = self.client.call("POST", "/v1/recommendations", {**body, "user_id": self.uid, "n": 1})
            reason = (answer.get("fallback") or "none") if status == 200 else f"http {status}"
            self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
            if status != 200 or not answer.get("items"):
                self.empty += 1
                break
            item = self.positions[answer["items"][0]["item_id"]]
            index = len(self.made)
            p = float(probabilities(self.world.catalogue, self.learners, self.u, [item])[0])
            outcome = int(self.draws[index] < p)
            practise(self.world.catalogue, self.learners, self.u, item, p, outcome, self.rate)
            self.made.append((item, outcome))
            made += 1
            self.client.call("POST", "/v1/interactions", {
                "event_id": f"sim:{self.run}:{self.uid}:{index}", "user_id": self.uid, "item_id": item_id(item),
                "kind": "attempt", "outcome": outcome,
                "occurred_at": at_time(self.origin, index * ATTEMPT_DAYS).isoformat()})
        return made


def ask_knowledge(client: Client, uid: str, models: dict | None = None) -> dict[str, dict]:
    """The endpoint's answer for the root, by unit id (empty when it failed: counted by the client);
    its "model" block is kept in `models` (by user id) when given."""
    status, answer = client.call("GET", f"/v1/users/{uid}/knowledge?units={ROOT}")
    if models is not None and status == 200:
        models[uid] = answer.get("model")
    return {k["unit_id"]: k for k in answer.get("units", [])} if status == 200 else {}


def compared(units: dict[str, dict], true_p: np.ndarray, least: int, returning: bool) -> list[tuple]:
    """(returning, skill, p, low, high, mastered, true p) of each skill with at least `least` attempts
    in the answer."""
    out = []
    for s, t in enumerate(true_p):
        k = units.get(skill_unit(s))
        if k and k["p"] is not None and k["attempts"] >= least:
            out.append((returning, s, k["p"], k["low"], k["high"], bool(k["mastered"]), round(float(t), 6)))
    return out


def _agreement(pairs: list[tuple]) -> dict:
    """The figures of all pairs, of the new and the returning learners' apart, and the pairs themselves."""
    if not pairs:
        return {"pairs": 0}

    def of(rows):
        _, _, p, low, high, mastered, true_p = (list(c) for c in zip(*rows))
        return figures.agreement(p, low, high, mastered, true_p, THRESHOLD)
    out = of(pairs)
    for name, r in (("new", False), ("returning", True)):
        mine = [x for x in pairs if x[0] is r]
        out[name] = of(mine) if mine else {"pairs": 0}
    out["answers"] = {"columns": ["returning", "skill", "p", "low", "high", "mastered", "true_p"],
                      "rows": [list(x) for x in pairs]}
    return out


def _pool(args, jobs, work):
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        return list(pool.map(work, jobs))


def measure(client: Client, conn, world: World, args, run: str, say) -> dict:
    """The three parts of the module's docstring; the report's "knowledge" key."""
    t0 = time.perf_counter()
    load = loadavg()
    positions = {item_id(i): i for i in range(world.catalogue.size)}
    typical = typical_items(conn, world)
    skill_items = [np.flatnonzero(world.catalogue.skill == s) for s in range(world.catalogue.skills)]
    n_new, n_ret = min(args.knowledge_learners, len(world.new)), min(args.knowledge_learners, len(world.returning))
    jobs = [(r, u) for u in range(max(n_new, n_ret)) for r in (False, True) if u < (n_ret if r else n_new)]
    history = history_by_learner(world)
    skills, cat = world.catalogue.skills, world.catalogue
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(8)[7].spawn(3)]
    practice_len, cap, review_len = skills * args.skill_attempts, args.knowledge_cap, args.review_attempts
    draws = {r: [g.random((len(world.learners(r)), n)) for g, n in zip(streams, (practice_len, review_len, cap))]
             for r in (False, True)}
    folder = Path(tempfile.mkdtemp(prefix="adaptrec-simknow-"))

    def sitting(setting: str, learners: Learners, r: bool, u: int, row: np.ndarray) -> Sitting:
        return Sitting(client, world, positions, learners, u, kid(setting, r, u), row, args.learn_rate, run)

    def import_history(settings: list[str]) -> None:
        anchor = _wall_clock()
        lines = [line for setting in settings for r, u in jobs if r
                 for line in history_records(world, setting, u, history.get(u, []), anchor, run)]
        if lines:
            import_lines(conn, lines, folder, "-".join(settings))

    out: dict = {"setting": {"learners": {"new": n_new, "returning": n_ret}, "skill_attempts": args.skill_attempts,
                             "target": args.knowledge_target, "threshold": THRESHOLD, "away_days": AWAY_DAYS,
                             "review_attempts": review_len, "cap": cap, "parts": list(args.knowledge_parts)},
                 "typical_items": [{"skill": skill_unit(s), "item_id": item_id(int(i)),
                                    "true_difficulty": round(float(cat.difficulty[i]), 4),
                                    "discrimination": round(float(cat.discrimination[i]), 4)}
                                   for s, i in enumerate(typical)]}
    if "knowledge" in args.knowledge_parts:   # 1. and 2.
        # 1. practice in every skill, then what the endpoint says
        import_history(["kp"])
        practised: dict = {}
        models: dict = {}

        def practice(job):
            r, u = job
            learners = world.learners(r).copy()
            sit = sitting("kp", learners, r, u, draws[r][0][u])
            for s in range(skills):
                sit.play({"units": [skill_unit(s)], "target": args.knowledge_target}, args.skill_attempts)
            units = ask_knowledge(client, sit.uid, models)
            practised[job] = (learners, sit)
            return compared(units, figures.true_unit_p(cat, learners, u, skill_items), args.skill_attempts, r)

        pairs = [x for found in _pool(args, jobs, practice) for x in found]
        out["model"] = next(iter(models.values()), None)
        out["after_practice"] = _agreement(pairs)
        say(f"knowledge after practice: {len(pairs)} learner-skills in {time.perf_counter() - t0:.0f} s")

        # 2. a week later: review or target, then another week
        now = _wall_clock()
        lines = []
        for r, u in jobs:
            sit = practised[(r, u)][1]
            anchor = now - timedelta(days=AWAY_DAYS) - timedelta(days=(len(sit.made) - 1) * ATTEMPT_DAYS)
            for setting in ("rv", "rt"):
                uid = kid(setting, r, u)
                if r:
                    lines += history_records(world, setting, u, history.get(u, []), anchor, run)
                lines += [{"type": "interaction", "event_id": f"sim:{run}:{uid}:p{k}", "user_id": uid,
                           "item_id": item_id(item), "kind": "attempt", "outcome": outcome,
                           "occurred_at": at_time(anchor, k * ATTEMPT_DAYS).isoformat()}
                          for k, (item, outcome) in enumerate(sit.made)]
        import_lines(conn, lines, folder, "review")

        def review(job):
            r, u = job
            after = practised[job][0]
            forget(after, AWAY_DAYS, args.half_life, u)
            week = compared(ask_knowledge(client, kid("rv", r, u)), figures.true_unit_p(cat, after, u, skill_items),
                            args.skill_attempts, r)
            copies = {s: after.copy() for s in ("rv", "rt")}
            rv = sitting("rv", copies["rv"], r, u, draws[r][1][u])
            made = rv.play({"units": [ROOT], "strategy": "review", "target": args.knowledge_target}, review_len)
            rt = sitting("rt", copies["rt"], r, u, draws[r][1][u])
            rt.play({"units": [ROOT], "strategy": "target", "target": args.knowledge_target}, made)
            p = {}
            for s, learners in copies.items():
                now_p = figures.true_unit_p(cat, learners, u, skill_items).mean()
                forget(learners, AWAY_DAYS, args.half_life, u)
                p[s] = (now_p, figures.true_unit_p(cat, learners, u, skill_items).mean())
            return week, made, len(rt.made), p, rv.fallbacks

        t1 = time.perf_counter()
        done = _pool(args, jobs, review)
        out["after_week_away"] = _agreement([x for d in done for x in d[0]])
        made = [d[1] for d in done]
        p = {s: np.array([d[3][s] for d in done]) for s in ("rv", "rt")}
        fallbacks: dict[str, int] = {}
        for d in done:
            for k, v in d[4].items():
                fallbacks[k] = fallbacks.get(k, 0) + v
        out["review"] = {"learners": len(done), "attempts": review_len, "attempts_made": int(sum(made)),
                         "learners_with_nothing_due": int(sum(m == 0 for m in made)),
                         "target_attempts_made": int(sum(d[2] for d in done)), "review_fallbacks": fallbacks,
                         "review": figures.before_after(p["rv"]), "target": figures.before_after(p["rt"]),
                         "difference": figures.difference_interval(p["rv"][:, 1], p["rt"][:, 1], seed=args.seed),
                         "measure": "true p (mean over each skill's items), mean over skills, a week after the sitting"}
        say(f"review: {sum(made)} attempts of {len(done)} learners in {time.perf_counter() - t1:.0f} s")

    if "race" in args.knowledge_parts:
        # 3. attempts until every skill is truly mastered
        t2 = time.perf_counter()
        import_history(["km", "kt"])

        def race(job):
            r, u = job
            reached = {}
            for setting, strategy in (("km", "mastery"), ("kt", "target")):
                learners = world.learners(r).copy()
                sit = sitting(setting, learners, r, u, draws[r][2][u])

                def mastered(learners=learners):
                    return figures.truly_mastered(figures.true_unit_p(cat, learners, u, skill_items), THRESHOLD)
                sit.play({"units": [ROOT], "strategy": strategy, "target": args.knowledge_target}, cap, mastered)
                final = figures.true_unit_p(cat, learners, u, skill_items)
                said = compared(ask_knowledge(client, sit.uid), final, 0, r)   # what the service says then
                reached[strategy] = (len(sit.made) if mastered() else None, sit.empty > 0,
                                     int(np.sum(final >= THRESHOLD)), float(final.mean()), said, len(sit.made))
            return reached

        raced = _pool(args, jobs, race)
        summary = {}
        values = {}
        for strategy in ("mastery", "target"):
            values[strategy], n_cens = figures.censored([x[strategy][0] for x in raced], cap)
            summary[strategy] = figures.attempts_summary(values[strategy], n_cens, cap) | {
                "stopped_served_nothing": int(sum(x[strategy][1] for x in raced)),
                "skills_truly_mastered_at_stop": figures._r(float(np.mean([x[strategy][2] for x in raced])), 2),
                "true_p_at_stop": figures._r(float(np.mean([x[strategy][3] for x in raced])))}
            summary[strategy]["attempts_made_mean"] = figures._r(float(np.mean([x[strategy][5] for x in raced])), 1)
            summary[strategy]["knowledge_at_stop"] = _agreement([y for x in raced for y in x[strategy][4]])
        ratio = figures.ratio_interval(values["mastery"], values["target"], seed=args.seed)
        out["mastery_vs_target"] = {"learners": len(raced), "cap": cap, **summary, "ratio": ratio,
                                    "censoring": "a learner not truly mastering every skill within the cap (or served "
                                                 "nothing before) counts as the cap: a lower bound, so the means are "
                                                 "restricted means"}
        say(f"mastery race: {len(raced)} learners in {time.perf_counter() - t2:.0f} s")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["load"] = {"start": load, "end": loadavg()}
    out["table"] = figures.table(out)
    return out


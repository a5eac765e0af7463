"""Closed-loop learner simulation: `python -m bench.simulate [--quick] [--json OUT]`.

Adaptivity as a platform lives it: simulated learners with a known truth ask the running
service for their next item, answer it as the truth says, post the attempt, and ask again, for
whole sessions; the report says how near the target the served items really were.

1. The truth (bench.simulation.truth): --items items in --skills sections with a difficulty and
   a discrimination (2PL); learners with a general ability and a per-skill offset, who learn as
   they practise (ability on the skill += --learn-rate * 4 p (1 - p) per attempt) and forget
   with the time away: what they learned halves every --half-life days.
   Sessions happen in time: a learner comes back after a gap of hours to weeks (lognormal,
   median --gap-median days; bench.simulation.truth.away_days), an attempt takes a minute.
2. History: --returning-learners learners had --history-sessions earlier sessions of
   --session-length attempts, simulated offline with the same truth and learning, served by the
   random policy (the platform before adaptivity; it also covers the catalogue evenly), each
   after its gap, the last one a gap before the measured run. They are imported with their
   times (occurred_at) with the JSONL importer into a scratch database, together with the
   catalogue (a root unit `sim` with one child unit per section), and the nightly job trains the
   root unit (jobs.train.run_training, TrainConfig.from_env; --trials tuning trials). Only the
   root is trained: the sessions ask for `sim`, so a section's model would never serve.
3. The service: gunicorn as `adaptrec serve` runs it (harness.service.running_service: --workers sync
   workers, OPENBLAS_NUM_THREADS=1, its own Redis prefix and API key). For every setting (each
   --targets value, and an A/B experiment whose variants are the --ab-targets, played by the
   first --ab-learners of each kind) the same learners, as fresh copies under their own user
   ids (the returning ones' history is imported again under those ids after training, so every
   setting starts from the same state), each play --sessions sessions of
   POST /v1/recommendations {user_id, units: ["sim"], n: 1, target} (or {experiment}), the
   outcome drawn from the truth, POST /v1/interactions with the attempt's simulated
   occurred_at; --clients learners at a time. New learners have no history.
   The service's clock (bench.simulate_service): the API has no "as of", so each learner's
   clock is anchored at the wall clock when their measured session starts; their history lies
   before it by the simulated gaps, and a later measured session (--sessions > 1) lies in the
   service's future.
4. Baselines, in-process on the same learners with the same draws (attempt k succeeds when
   draw[k] < its true p, so policies differ only by the items they serve): random (uniform over
   unsolved items), per target oracle (the unsolved item whose true p is nearest the target)
   and the ceiling (bench.simulation.ceiling: the items' true parameters and the truth's rules,
   a posterior over the learner from the population prior, told the learner's history and
   answers; the item whose predictive p is nearest the target). All skip items answered
   wrongly earlier in the sitting, as the service's cool-down does. They need no HTTP.
5. The report, per target and policy: gap = mean |true p - target| (all, new learners, new
   learners after their first 5 attempts, returning learners, returning learners back after 7
   days or more); realised success rate; the service's and the ceiling's predicted p minus true p
   (MAE and bias per slice, and MAE by attempt-number band 1-5, 6-10, 11-20, 21-40: how fast a
   new learner's error falls); learning gain per session (true ability after minus before); the
   service minus the ceiling (gaps and biases per slice); per A/B variant the realised success
   rate. JSON via harness.report.emit, a markdown table on stderr.
6. The experiments judged by learning (issue 27; bench.simulation.by_learning), under the report's
   "experiment_by_learning": once the learners are done and the scratch database is ANALYZEd (right
   after the run's burst of writes the planner's statistics are stale and the results' SQL can
   exceed the service's statement timeout; --no-analyze reads them so), GET
   /v1/experiments/{name}/results (the bench's key has every scope, admin too) for the A/B
   experiment: its learning estimate, attempts to mastery, retention and success rate per variant
   beside the variant's true learning gain, the orders and whether the learning estimate orders
   the variants as the truth does (the A/B learners' first attempts lie before the answer that
   routed them, by their clock's truncation to the second, so the endpoint counts from the second); with
   --aa-target T, an A/A experiment too (two variants at T, played by another copy of the same
   first --ab-learners learners): whether the learning difference's interval covers zero, and the
   sample-ratio test after a 5 % skew of its exposures. Issue 27's setting:
   --ab-targets 0.55,0.7,0.85 --aa-target 0.7, with --ab-learners large enough that every variant
   has the 100 learners the endpoint's verdict waits for (3 variants: 150 or more). The control:
   with --learn-rate 0 nobody learns, and every variant's learning interval should cover zero.
7. With --knowledge, issue 26's measurement (bench.simulate_knowledge, the figures in
   bench.simulation.knowledge), under the report's "knowledge": the first --knowledge-learners new
   and returning learners practise --skill-attempts in each skill, then the knowledge endpoint's p,
   90 % interval and `mastered` per skill beside the true p on the skill's typical item; a week
   later (their practice imported again a week in the past) the same, then a sitting of
   --review-attempts with strategy `review` against as many with `target`, and the true p after
   another week; and, on fresh copies, attempts until every skill is truly mastered with `mastery`
   and with `target` (censored at --knowledge-cap). Off by default (it adds minutes: about half an
   hour for the default 30 + 30 learners on a busy machine, most of it the race; --knowledge-parts).

Choices: the learning rule ignores the outcome (practice teaches, success or not) and peaks
at p = 0.5, so a lower target buys more learning per attempt and fewer successes: the trade-off
the targets are there to set. All --sessions of a run are played in one sitting of wall time,
so they share the service's cool-down (the baselines mirror it), though the truth forgets by
their simulated gaps; the default is one session.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path

import numpy as np

from bench import simulate_knowledge
from bench.simulate_service import Arm, Client, analyse, drive_arm, results_in_process, setup_service
from bench.simulation import by_learning
from bench.simulation.ceiling import CeilingPolicy
from bench.simulation.figures import policy_figures, table, variant_figures, versus
from bench.simulation.policies import OraclePolicy, RandomPolicy
from bench.simulation.world import Plan, build_world, run_baseline
from harness.measure import loadavg
from harness.report import emit, header, teller

EXPERIMENT = "sim-ab"
AA_EXPERIMENT = "sim-aa"
LOG_FLUSH_S = 2.0   # the workers write the recommendation log every 0.5 s: wait before reading results
SEED_STREAMS = ("SeedSequence(seed).spawn(7): catalogue, new learners, returning learners, history policy and "
                "draws, measured draws, random baseline, gaps between sessions")
QUICK = {"learners": 20, "returning_learners": 20, "items": 200, "history_sessions": 2, "session_length": 20,
         "trials": 1, "knowledge_learners": 4, "skill_attempts": 8, "knowledge_cap": 60, "review_attempts": 8}


# ---- the run -----------------------------------------------------------------------------------
def parse_targets(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"targets are numbers separated by commas, got {text!r}") from None
    if not values or any(not 0.01 <= t <= 0.99 for t in values):
        raise argparse.ArgumentTypeError(f"targets must be between 0.01 and 0.99, got {text!r}")
    return list(dict.fromkeys(round(t, 2) for t in values))  # arms are named by the target in percent


KNOWLEDGE_PARTS = ("knowledge", "race")


def parse_parts(text: str) -> list[str]:
    parts = {t.strip() for t in text.split(",") if t.strip()}
    if not parts or parts - set(KNOWLEDGE_PARTS):
        raise argparse.ArgumentTypeError(f"parts are {', '.join(KNOWLEDGE_PARTS)} separated by commas, got {text!r}")
    return sorted(parts)


def arm_name(target: float) -> str:
    return f"t{round(target * 100):02d}"


def _r(x, digits: int = 4):
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _quantiles(days: np.ndarray) -> dict:
    """Days away: quartiles and the share of a week or more."""
    q = np.percentile(days, [25, 50, 75]) if len(days) else [math.nan] * 3
    return {"p25": _r(q[0], 2), "median": _r(q[1], 2), "p75": _r(q[2], 2),
            "week_or_more": _r(float(np.mean(days >= 7.0)) if len(days) else math.nan, 3)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (under a minute): " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--learners", type=int, default=200, help="new learners (no history; default 200)")
    parser.add_argument("--returning-learners", type=int, default=200,
                        help="learners with earlier sessions the model was trained on (default 200)")
    parser.add_argument("--items", type=int, default=600, help="items in the catalogue (default 600)")
    parser.add_argument("--skills", "--sections", type=int, default=6, help="sections (skills) of the catalogue")
    parser.add_argument("--history-sessions", type=int, default=3, help="earlier sessions per returning learner")
    parser.add_argument("--sessions", type=int, default=1, help="measured sessions per learner and setting")
    parser.add_argument("--session-length", type=int, default=40, help="attempts per session (default 40)")
    parser.add_argument("--targets", type=parse_targets, default=[0.5, 0.7], help="targets served (default 0.5,0.7)")
    parser.add_argument("--ab-targets", type=parse_targets, default=[0.6, 0.8],
                        help="targets of the A/B experiment's two or more variants (default 0.6,0.8)")
    parser.add_argument("--ab-learners", type=int, default=100,
                        help="new and returning learners (each) of the A/B experiment: the first N (default 100)")
    parser.add_argument("--no-ab", dest="ab", action="store_false", help="skip the A/B experiment")
    parser.add_argument("--no-analyze", dest="analyze", action="store_false",
                        help="read the experiments' results on the planner statistics the run left (by default "
                             "the scratch database is ANALYZEd first, as autovacuum would in time)")
    parser.add_argument("--aa-target", type=float, default=None,
                        help="also an A/A experiment: two variants at this target, played by a copy of the "
                             "A/B experiment's learners (default: none; issue 27's check: 0.7)")
    parser.add_argument("--explore", action="store_true",
                        help="also serve every target with explore: true (Thompson sampling), as its own policy")
    parser.add_argument("--knowledge", action="store_true",
                        help="also issue 26's measurement: the knowledge endpoint, mastery and review against the "
                             "truth (--knowledge-learners of each kind; a week away is "
                             f"{simulate_knowledge.AWAY_DAYS:g} days)")
    parser.add_argument("--knowledge-learners", type=int, default=30,
                        help="new and returning learners (each) of the knowledge measurement: the first N (default 30)")
    parser.add_argument("--skill-attempts", type=int, default=20,
                        help="attempts per skill before the knowledge is compared with the truth (default 20)")
    parser.add_argument("--knowledge-target", type=float, default=0.5,
                        help="the target of the knowledge measurement's sittings, every strategy (default 0.5)")
    parser.add_argument("--knowledge-cap", type=int, default=400,
                        help="attempts at most until every skill is truly mastered (default 400)")
    parser.add_argument("--knowledge-parts", type=parse_parts, default=list(KNOWLEDGE_PARTS),
                        help="which parts of the knowledge measurement: knowledge (the endpoint after practice and a "
                             "week later, and review), race (mastery vs target); default both")
    parser.add_argument("--review-attempts", type=int, default=20,
                        help="attempts of the review sitting a week after practice (default 20)")
    parser.add_argument("--learn-rate", type=float, default=0.05, help="ability gained per attempt at p = 0.5")
    parser.add_argument("--half-life", type=float, default=7.0,
                        help="days away in which a learner loses half of what they learned (default 7)")
    parser.add_argument("--gap-median", type=float, default=2.0,
                        help="median days between a learner's sessions (default 2)")
    parser.add_argument("--trials", type=int, default=None, help="tuning trials of the nightly job (default: its own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="learners driven at a time (default 4)")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return checked(parser, args)


def checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The arguments, each in its range; a bad one stops here with what to give."""
    for name in ("learners", "returning_learners", "items", "skills", "sessions", "session_length", "workers",
                 "clients", "ab_learners", "knowledge_learners", "skill_attempts", "knowledge_cap", "review_attempts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.history_sessions < 1:
        parser.error("--history-sessions must be at least 1 (the model is trained on the returning learners)")
    if not args.half_life > 0 or args.learn_rate < 0:
        parser.error("--half-life must be above 0 (inf: no forgetting) and --learn-rate at least 0")
    if not args.gap_median > 0:
        parser.error("--gap-median must be above 0 days")
    if args.items < args.skills:
        parser.error("--items must be at least --skills")
    if not 0.01 <= args.knowledge_target <= 0.99:
        parser.error("--knowledge-target must be between 0.01 and 0.99")
    if args.aa_target is not None and not (args.ab and 0.01 <= args.aa_target <= 0.99):
        parser.error("--aa-target must be between 0.01 and 0.99, and needs the A/B experiment (not --no-ab)")
    return args


def prepare(args, result: dict, say):
    """The truth: the catalogue, the learners and the returning learners' history (bench.simulation)."""
    t0 = time.perf_counter()
    world = build_world(Plan(**{f.name: getattr(args, f.name) for f in fields(Plan)}))
    result["truth"] = {"items": world.catalogue.size, "skills": world.catalogue.skills,
                       "difficulty_mean": _r(world.catalogue.difficulty.mean()),
                       "difficulty_sd": _r(world.catalogue.difficulty.std()),
                       "discrimination_range": [_r(world.catalogue.discrimination.min()),
                                                _r(world.catalogue.discrimination.max())],
                       "learn_rate": args.learn_rate, "half_life_days": args.half_life,
                       "gap_median_days": args.gap_median,
                       "away_days_returning": _quantiles(world.away_returning[:, 0]),
                       "history_gain_per_session": _r(np.mean([g.gain for g in world.gains_history])),
                       "returning_items_solved": _r(world.returning.solved.sum(axis=1).mean(), 1)}
    say(f"truth and history built in {time.perf_counter() - t0:.1f} s")
    return world


def experiments_of(args) -> dict[str, dict[str, float]]:
    """The experiments created (name -> their variants, name -> target): the A/B one, and the A/A one."""
    out = {EXPERIMENT: {arm_name(t): t for t in args.ab_targets}} if args.ab else {}
    if args.ab and args.aa_target is not None:
        out[AA_EXPERIMENT] = {arm_name(args.aa_target) + side: args.aa_target for side in ("-a", "-b")}
    return out


def arms_of(args) -> list[Arm]:
    """The arms served: each target, exploring too with --explore, and each experiment's."""
    arms = [Arm(arm_name(t), target=t) for t in args.targets]
    if args.explore:   # the same targets again, exploring (other learner ids, the same truth and draws)
        arms += [Arm(arm_name(t) + "x", target=t, explore=True) for t in args.targets]
    for name, variants in experiments_of(args).items():
        arms.append(Arm("ab" if name == EXPERIMENT else "aa", experiment=name, variant_targets=variants,
                        learners=args.ab_learners))
    return arms


def serve(args, world, run: str, result: dict, say) -> tuple[dict, dict, dict]:
    """The service trained on the history, every arm's learners driven through it; returns (what
    each arm served, the HTTP figures, each experiment's GET .../results answer)."""
    arms = arms_of(args)
    with ExitStack() as stack:
        client, result["setup"], conn = setup_service(stack, world, args, arms, run, say)
        for name, variants in experiments_of(args).items():
            status, body = client.call("PUT", f"/v1/experiments/{name}", {
                "description": f"bench.simulate: {len(variants)} variants",
                "variants": [{"name": v, "weight": 1, "strategy": "target", "params": {"target": t}}
                             for v, t in variants.items()]})
            if status != 200:
                raise SystemExit(f"bench.simulate: creating the experiment {name} failed: {status} {body}")
        served = {}
        for arm in arms:
            served[arm.name] = drive_arm(client, world, arm, args, run, say)
        if experiments_of(args) and args.analyze:
            result["setup"]["analyze_seconds"] = round(analyse(conn), 2)
        answers = experiment_results(client, conn, list(experiments_of(args)), say)
        latency = np.percentile(client.recommend_ms, [50, 99]) if client.recommend_ms else [math.nan] * 2
        http = {"requests": client.requests, "errors": len(client.errors), "error_samples": client.errors[:5],
                "recommend_p50_ms": _r(latency[0], 2), "recommend_p99_ms": _r(latency[1], 2),
                "arms": {name: info for name, (_, _, info) in served.items()}}
        if args.knowledge:   # after the figures above, with a client of its own: they stay as without it
            result["knowledge"] = know(args, world, client, conn, run, say)
    return served, http, answers


def know(args, world, client: Client, conn, run: str, say) -> dict:
    """Issue 26's measurement (bench.simulate_knowledge) with its own client and HTTP figures."""
    own = Client(client.base, client.key)
    out = simulate_knowledge.measure(own, conn, world, args, run, say)
    latency = np.percentile(own.recommend_ms, [50, 99]) if own.recommend_ms else [math.nan] * 2
    out["http"] = {"requests": own.requests, "errors": len(own.errors), "error_samples": own.errors[:5],
                   "recommend_p50_ms": _r(latency[0], 2), "recommend_p99_ms": _r(latency[1], 2)}
    say("\n" + out["table"])
    return out


def experiment_results(client, conn, names: list[str], say) -> dict:
    """GET /v1/experiments/{name}/results of each experiment, once the log is written, with the
    seconds it took. Should the endpoint fail (counted as an HTTP error, so the run exits 1), the
    same results computed in-process on the scratch database, with the failure beside them."""
    if names:
        time.sleep(LOG_FLUSH_S)
    answers = {}
    for name in names:
        t0 = time.perf_counter()
        status, body = client.call("GET", f"/v1/experiments/{name}/results")
        answers[name] = body | {"seconds": round(time.perf_counter() - t0, 2), "source": "endpoint"}
        if status != 200:
            failed = {"status": status, "detail": body.get("detail"), "seconds": answers[name]["seconds"]}
            say(f"{name}: the endpoint failed: {failed}; computing the results in-process")
            t0 = time.perf_counter()
            answers[name] = results_in_process(conn, name) | {
                "seconds": round(time.perf_counter() - t0, 2), "source": "in-process", "endpoint_failed": failed}
        say(f"{name}: results in {answers[name]['seconds']} s ({answers[name]['source']}): {answers[name]['verdict']}")
    return answers


def score(args, world, served: dict, say) -> tuple[dict, dict | None]:
    """Each target's figures: the service beside random, the oracle and the ceiling (and exploring);
    the A/B experiment's per variant."""
    length = args.sessions * args.session_length
    t0 = time.perf_counter()
    rng = np.random.default_rng(world.random_seed)
    rand_attempts, rand_gains = run_baseline(world, lambda returning, u: RandomPolicy(rng))
    results: dict = {}
    for t in args.targets:
        attempts, gains, _ = served[arm_name(t)]
        o_attempts, o_gains = run_baseline(world, lambda returning, u, t=t: OraclePolicy(t))
        c_attempts, c_gains = run_baseline(world, lambda returning, u, t=t: CeilingPolicy(
            world.catalogue, t, args.learn_rate, args.half_life))
        service = policy_figures(attempts, gains, length, predicts=True)
        ceiling = policy_figures(c_attempts, c_gains, length, target=t, predicts=True)
        results[f"{t:g}"] = {"service": service,
                             "random": policy_figures(rand_attempts, rand_gains, length, target=t),
                             "oracle": policy_figures(o_attempts, o_gains, length, target=t),
                             "ceiling": ceiling, "service vs ceiling": versus(service, ceiling)}
        if args.explore:
            x_attempts, x_gains, _ = served[arm_name(t) + "x"]
            results[f"{t:g}"]["service, explore"] = policy_figures(x_attempts, x_gains, length, predicts=True)
    ab = None
    if args.ab:
        attempts, gains, _ = served["ab"]
        ab = {"experiment": EXPERIMENT, "variants": variant_figures(attempts, gains),
              "service": policy_figures(attempts, gains, length, predicts=True)}
    say(f"baselines and figures in {time.perf_counter() - t0:.1f} s")
    return results, ab


def judge(args, served: dict, answers: dict, say) -> dict | None:
    """The A/B experiment's results by learning beside the truth; the A/A check with --aa-target."""
    if not args.ab:
        return None
    attempts, gains, _ = served["ab"]
    variants = experiments_of(args)[EXPERIMENT]
    out = by_learning.judged(answers[EXPERIMENT], by_learning.true_gains(attempts, gains, seed=args.seed), variants)
    out["results"] = {k: answers[EXPERIMENT].get(k) for k in ("source", "seconds", "endpoint_failed")}
    out["table"] = by_learning.table(out)
    say("\n" + out["table"])
    if AA_EXPERIMENT in answers:
        out["aa"] = by_learning.aa_check(answers[AA_EXPERIMENT])
        out["aa"]["results"] = {k: answers[AA_EXPERIMENT].get(k) for k in ("source", "seconds", "endpoint_failed")}
        aa = out["aa"]
        say(f"A/A: learning difference {aa['learning_difference']}, covers 0: {aa['difference_covers_zero']}; "
            f"SRM p = {aa['sample_ratio_mismatch']['p_value']}; skewed {aa['skewed']['learners']}: "
            f"p = {aa['skewed']['p_value']}, flagged {aa['skewed']['flagged']}")
    return out


def report(args, result: dict, results: dict, ab: dict | None, judgement: dict | None, http: dict,
           started: float, say) -> int:
    """The figures, the table (also on stderr) and the JSON; exit 1 when a request failed."""
    result["results"] = results
    result["ab"] = ab
    result["experiment_by_learning"] = judgement
    result["http"] = http
    result["load_after"] = loadavg()
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["table"] = table(results, ab)
    say("\n" + result["table"])
    emit(result, args.json)
    return 1 if http["errors"] or (result.get("knowledge") or {}).get("http", {}).get("errors") else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    say = teller("bench.simulate")
    started = time.perf_counter()
    run = uuid.uuid4().hex[:8]
    result = header() | {"command": "python -m bench.simulate " + shlex.join(sys.argv[1:] if argv is None else argv),
                         "config": {k: v for k, v in vars(args).items() if k != "json"},
                         "seeds": {"seed": args.seed, "streams": SEED_STREAMS}}
    world = prepare(args, result, say)
    served, http, answers = serve(args, world, run, result, say)
    results, ab = score(args, world, served, say)
    judgement = judge(args, served, answers, say)
    return report(args, result, results, ab, judgement, http, started, say)


if __name__ == "__main__":
    sys.exit(main())

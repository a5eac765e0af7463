"""Replay benchmark: next-attempt prediction as a platform lives it, beside simple baselines.

    python -m bench.replay [--data PATH] [--regime all|250-learners|300-attempts|demo-few-learners|
                           demo-many-learners] [--protocol learner|production] [--json OUT]
                           [--max-test-students N] [--predictions OUT.csv.gz] [--root-only]
                           [--no-retrain] [--no-skill-requests] [--knowledge] [--item-learning all|few|off]

Every figure is given for dev and for test learners side by side. Learners take their role from
the training job's own split (jobs.training.split, seed SPLIT_SEED: sha256(f"{seed}:{user_id}")
as a number in [0, 1), below 0.8 train, below 0.9 dev, else test). Anything chosen (windows,
constants, model choice, Elo's constants here) is chosen on dev; test is reported beside it and
never tuned on. `--max-test-students N` replays the first N dev and N test learners (key order).

Data (bench.attempts): an ASSISTments-format attempts file (`user_id, seq, problem_id, correct,
skills`), or a regime of it, or a demo-generator regime written in the same format.

Protocols:
- `learner` (default): the training learners' attempts are imported by the real importer and the
  real nightly job trains every model unit on them; dev and test learners are new to the service,
  and all their attempts are replayed.
- `production`: the service as it runs: a cut in time (bench.attempts.production_cut: a seeded
  20 % of learners join after it, every other learner's sequence is cut at its half). Every
  attempt before the cut, of every learner, is imported and trained on (the job's hold-out of its
  own test learners off: the nightly job trains the learners it serves tomorrow); every dev and
  test attempt after the cut is replayed, returning learners (history before the cut, trained on)
  and new learners reported apart. No full-retrain comparison (this protocol is that).

In both, the catalogue of the whole file (every problem with its skills, every skill unit under
the root) is staged by the importer's catalogue code, so problems only replayed learners attempt
exist as items, as a platform's catalogue would. The job is `run_training(url,
TrainConfig.from_env())` with its own split seed JOB_SPLIT_SEED, so it splits the learners it is
given again for its grid, calibration and own held-out figures. Each replayed attempt, in seq
order, goes through the functions behind the API: `predict(ctx, user, [ROOT],
[item])` (a root request) and, unless --no-skill-requests, `predict(..., [skill unit of the item],
[item])` (a skill request, served by that skill's model or its nearest ancestor's, as the product
serves it), both before the outcome is known; then `record_interactions` (the API's ingest: one
transaction, then the history cache). Real Postgres and Redis (a key prefix of its own, deleted at
the end), a fresh `ModelCache`. All attempts count, repeated ones included.

Baselines on the same attempts (bench.baselines): item difficulty, Elo with fixed constants, Elo
with constants tuned on dev, a live 1PL; Best-LR and PFA (bench.knowledge_tracing_baselines:
logistic regressions on counts of the learner's earlier attempts per skill / item / in total,
fitted on the training rows, L2 chosen on dev); `truth` where the data has the true probability.
Metrics (AUC, log-loss, accuracy, ECE over 10 bins) for every method, overall and on slices (first
attempt at an item, repeat after a mistake / a success, history-length bands, returning / new
learners, items with fewer than FEW_ATTEMPTS attempts in the rows trained on), the service minus
Elo (tuned), the live 1PL, Best-LR, PFA and the best baseline on dev with 95 % learner-bootstrap
intervals, and the honest parent comparison of the job (each skill model against its parent's, on
learners neither trained on). The training block says which units the job did not activate and
why: `models_failed` (failed / kept_previous), `units_served_by_ancestor`, `units_skipped`.

`full_retrain` (learner protocol): a second scratch database with the training learners plus each
dev and test learner's first floor(n / 2) attempts, the root trained again (hold-out off, so every
replayed learner is trained on); its predictions for the second halves use those learners'
trained LightFM user vectors with the stored item vectors and calibration, beside the replay's
own predictions and two like-for-like live fits from the first half only.

Item difficulty learned between trainings (issue 25; app.serving.item_learning): after each
replayed attempt's ingest, the replay calls `item_learning.learn` as the events route does, so
later attempts are predicted with the items' difficulty moved by the attempts before them
(`--item-learning off`: the models as trained, for the comparison; `few`: only items with few
training attempts, as ADAPTREC_ITEM_LEARNING=few).

`--knowledge` (issue 26): before each replayed attempt that is the learner's first at its item,
the knowledge of the item's skill units is asked as GET /v1/users/{id}/knowledge?units=<the
item's skills> answers it at that moment (app.serving.knowledge.knowledge, the function the route
calls, a request context of its own at the attempt's time, after the predictions and before the
ingest); each skill's p (the learner's mean p over the skill's items) is paired with the
attempt's outcome. Reported per role as `knowledge` (phases.knowledge_calibration): AUC, ECE (the
same 10 bins), mean p and mean outcome for every (attempt, skill) pair and for the item's first
skill alone, the service's own item-level p on the same attempts beside them, by the learner's
attempts at the skill before, and the reliability bins. Target (test): ECE <= 0.02.

Report: `dev` and `test` blocks (service, service_skill_requests, baselines, slices,
service_reliability, service_vs_baselines, replay timing, full_retrain) and `dev_test_table`. The
test block's keys are also at the top level (the held-out learners' figures, as earlier reports
had them). `targets` are judged on test.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.config import ITEM_LEARNING, Settings
from bench.attempts import REGIMES
from bench.compare import ROLES, dev_test_table, format_table
from bench.replay.phases import KNOWLEDGE_TARGET_ECE, measure_baselines, measure_service
from bench.replay.setup import DEFAULT_DATA, PROTOCOLS, Plan, described, prepare, protocol_text
from harness.report import emit

TARGETS = {"auc": 0.83, "ece": 0.01}
PUBLISHED_AUC = {"IRT": "0.69-0.73", "BKT": 0.72, "DKT": "0.75-0.76", "AKT": 0.785, "KTM": 0.819}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="assistments", choices=["assistments"], help="attempts file format")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="attempts file (.csv or .csv.gz); unused by the demo regimes")
    parser.add_argument("--regime", default="all", choices=list(REGIMES),
                        help="the data regime: " + "; ".join(f"{r.name}: {r.description}" for r in REGIMES.values()))
    parser.add_argument("--protocol", default="learner", choices=PROTOCOLS,
                        help="learner: dev / test learners are new to the service; production: a cut in time, "
                             "returning and new learners after it")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--max-test-students", type=int, default=None,
                        help="replay only the first N dev and the first N test learners (split-key order; "
                             "default: all)")
    parser.add_argument("--root-only", action="store_true",
                        help="train only the root unit (it is the one that predicts) instead of every model unit; "
                             "implies --no-skill-requests")
    parser.add_argument("--no-skill-requests", action="store_true",
                        help="do not also ask for each attempt through the item's skill unit")
    parser.add_argument("--no-retrain", action="store_true", help="skip the full_retrain comparison")
    parser.add_argument("--knowledge", action="store_true",
                        help="also ask the knowledge of the item's skills before each first attempt at an item "
                             "and score it against the outcome (issue 26)")
    parser.add_argument("--item-learning", choices=ITEM_LEARNING, default=Settings().item_learning,
                        help="which items' difficulty is learned from the replayed attempts, as the service's "
                             "ADAPTREC_ITEM_LEARNING (app.serving.item_learning; default: the service's); off: the "
                             "models as trained")
    parser.add_argument("--predictions", type=Path,
                        help="also write every replayed attempt with each method's p here (.csv or .csv.gz)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if REGIMES[args.regime].demo is None and not args.data.exists():
        parser.error(f"{args.data}: no such file")
    if args.max_test_students is not None and args.max_test_students < 1:
        parser.error("--max-test-students must be at least 1")
    return args


def run(data: Path | None, max_test_students: int | None = None, retrain: bool = True, progress: bool = False,
        train_all_units: bool = True, predictions: Path | None = None, regime: str = "all",
        protocol: str = "learner", skill_requests: bool = True, knowledge: bool = False,
        item_learning: str = "all") -> dict:
    """The whole replay: prepare the rows, measure the baselines and the service, report."""
    started = time.perf_counter()
    plan = prepare(data, max_test_students, retrain, progress, train_all_units, regime, protocol, skill_requests,
                   knowledge, item_learning)
    result = described(plan)
    blocks: dict[str, dict] = {role: {} for role in ROLES}
    p_base, best = measure_baselines(plan, result, blocks)
    measure_service(plan, result, blocks, p_base, best, predictions)
    return report(plan, result, blocks, started)


def report(plan: Plan, result: dict, blocks: dict, started: float) -> dict:
    """The dev and test blocks, the table of both, the test block again at the top level (the keys of
    the earlier reports, kept with their meaning: the held-out, now test, learners' figures), and
    the targets, judged on test."""
    result.update(blocks)
    result["dev_test_table"] = dev_test_table(blocks)
    result.update(blocks["test"])
    if "full_retrain" in result:
        result["full_retrain"] = {**result["full_retrain"], "training": result["full_retrain_training"]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["protocol_text"] = protocol_text(plan.protocol, plan.train_all_units)
    if plan.regime == "all" and plan.data == DEFAULT_DATA:
        result["published_auc_on_this_data"] = PUBLISHED_AUC
    result["targets"] = {"service_auc_at_least": TARGETS["auc"], "service_ece_at_most": TARGETS["ece"],
                         "judged_on": "test",
                         "met": bool(result["service"].get("auc", 0) >= TARGETS["auc"]
                                     and result["service"].get("ece", 1) <= TARGETS["ece"])}
    if "knowledge" in result:
        ece = result["knowledge"]["every_skill"].get("ece")
        result["targets"]["knowledge_ece_at_most"] = KNOWLEDGE_TARGET_ECE
        result["targets"]["knowledge_met"] = bool(ece is not None and ece <= KNOWLEDGE_TARGET_ECE)
    plan.log(format_table(result["dev_test_table"]))
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args.data, args.max_test_students, retrain=not args.no_retrain, progress=not args.quiet,
                 train_all_units=not args.root_only, predictions=args.predictions, regime=args.regime,
                 protocol=args.protocol, skill_requests=not args.no_skill_requests, knowledge=args.knowledge,
                 item_learning=args.item_learning)
    emit(result, args.json)
    return 0

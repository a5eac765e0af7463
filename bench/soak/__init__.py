"""Soak test: `python -m bench.soak --minutes M [--rate R] [--json OUT] [--url URL --key KEY [--pid PID]]`.

Mixed traffic at a steady rate for a bounded time, from a separate process over loopback: is the
service still error-free, fast and the same size at the end?

1. The service (skipped with --url): a scratch database on the configured (or embedded) servers,
   the demo data set (`adaptrec demo`, --demo-* sizes), the root unit `demo` trained
   (TrainConfig(max_trials=1): practice and engagement models), and gunicorn as `adaptrec serve`
   runs it (--workers, default 2) through harness.service (OPENBLAS_NUM_THREADS=1, its own
   Redis key prefix, a fresh API key). Real ids come from the database: learners with a history,
   every unit, every active item.
   With --url: --unit (default `demo`) and the units under it give the units and items, --user
   (default: the demo's first learners, checked to exist) the learners.
2. The traffic: an open-loop schedule at --rate (harness.load.open_loop, latency counted from each
   request's due time) for --warmup-s and then --minutes; request i is drawn from --mix:
     recommend  POST /v1/recommendations {user_id, units: [a random unit], n: 10}
     ingest     POST /v1/interactions, 1 event (60 %) or a batch of 2-5 events of one learner, fresh
                event_ids: attempts on questions, views on other items. A share (--retry-share,
                default 5 %) resends the body of an earlier ingest that was answered 2xx: label
                ingest_retry, which must answer 200 (all duplicates); anything else is an error.
     similar    GET /v1/items/{id}/similar?n=10
     trending   GET /v1/trending?n=10, half of them with &units=<a random unit>
   Every request is valid, so any non-2xx answer or connection error is an error.
3. Memory: the resident size (VmRSS) of the gunicorn master and of every worker at the end of the
   warm-up and then every --sample-s seconds, and once after the last answer.
   memory_growth_pct is the growth of the workers' summed RSS from the first sample to the last;
   also per worker, and max(last minute) vs max(first minute) (robust to noise).
4. CPU: the workers', Postgres backends' and Redis's CPU seconds and the machine's busy and steal
   time (/proc/stat) at every memory sample; cpu_timeline gives, per --progress-s window, the cores
   each used and the host's shares, so a tail that rises can be told from a host that takes the CPU.
5. A short summary on stdout; the whole report as JSON with --json.

Targets: 0 errors; worker memory growth under 10 % over 10 minutes at 200 requests/s.
"""
from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import wait
from contextlib import ExitStack
from pathlib import Path

from bench.soak.figures import (
    assembled,
    cpu_timeline,
    log_problems,
    machine_times,
    memory_growth,
    memory_sample,
    summary_text,
)
from bench.soak.setup import DEMO_ROOT, Soaked, prepare
from bench.soak.traffic import DEFAULT_MIX, parse_mix, soak_in_child
from harness.load import per_request_ms, separate_process
from harness.measure import CpuMeter, add_settle_arguments, loadavg, settle
from harness.report import header, teller, write_json

CONFIG_KEYS = ("minutes", "rate", "warmup_s", "mix", "retry_share", "sample_s", "seed", "threads")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="measured minutes after the warm-up (default 10)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all kinds (default 200)")
    parser.add_argument("--warmup-s", type=float, default=30.0,
                        help="unmeasured seconds at the same rate first (default 30)")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"weights of the kinds (default {DEFAULT_MIX})")
    parser.add_argument("--retry-share", type=float, default=0.05, help="share of ingests that resend an earlier one")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between memory samples (default 5)")
    parser.add_argument("--progress-s", type=float, default=30.0, help="seconds between progress lines on stderr")
    add_settle_arguments(parser, "before the load", 0.6, 180.0)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the traffic and of the demo")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the load process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the service started here")
    parser.add_argument("--gunicorn-args", default="", help="extra gunicorn arguments of the service started here")
    parser.add_argument("--demo-learners", type=int, default=2000)
    parser.add_argument("--demo-attempts", type=int, default=200_000)
    parser.add_argument("--demo-engagements", type=int, default=50_000)
    parser.add_argument("--url", help="soak a running service instead (no setup)")
    parser.add_argument("--key", help="API key of --url")
    parser.add_argument("--pid", type=int, help="with --url: the gunicorn master's pid (default: found by the port)")
    parser.add_argument("--unit", action="append", default=[],
                        help=f"with --url: a unit to draw from (default {DEMO_ROOT})")
    parser.add_argument("--user", action="append", default=[], help="with --url: a learner (repeatable)")
    args = parser.parse_args(argv)
    if args.url and not args.key:
        parser.error("--url needs --key")
    if args.minutes <= 0 or args.rate <= 0 or args.warmup_s < 0 or args.sample_s <= 0:
        parser.error("--minutes, --rate and --sample-s must be positive, --warmup-s 0 or more")
    try:
        parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def measure(args, soaked: Soaked, result: dict, say) -> dict:
    """The soak on a settled machine: the load process's figures, the service's CPU and memory, and
    the service log's errors when there were any."""
    result["load_before"] = settle(args.settle_load, args.settle_max, say)
    say(f"soaking {args.minutes} min at {args.rate}/s after {args.warmup_s} s of warm-up ...")
    figures = run_soak(args, soaked.base, soaked.key, soaked.ids, soaked.master, soaked.cpu_groups)
    if soaked.log_path is not None and (figures["errors"] or figures["warmup"]["errors"]):
        figures["service_log_problems"] = log_problems(soaked.log_path)
    return figures


def run_soak(args, base: str, key: str, ids: dict, master: int | None, cpu_groups: dict) -> dict:
    """Start the load process, sample memory while it runs, return the report's figures.
    `cpu_groups` (name -> a function returning pids) are metered from the end of the warm-up."""
    mix = parse_mix(args.mix)
    kwargs = {"base_url": base, "key": key, "ids": ids, "mix": mix, "rate": args.rate, "warmup_s": args.warmup_s,
              "duration_s": args.minutes * 60.0, "run": uuid.uuid4().hex[:8], "seed": args.seed,
              "retry_share": args.retry_share, "threads": args.threads, "progress_s": args.progress_s}
    samples, idle, meter, metered = [], None, CpuMeter(cpu_groups), False
    cpu_samples = []   # cumulative CPU of the metered groups and the machine, every sample_s (cpu_timeline)
    with separate_process() as ex:
        start_wall = time.time() + 2.0  # the child's interpreter starts meanwhile
        future = ex.submit(soak_in_child, {**kwargs, "start_wall": start_wall})
        if master:
            idle = memory_sample(master, time.time() - start_wall)
        next_t = args.warmup_s
        while not future.done():
            wait([future], timeout=max(0.0, start_wall + next_t - time.time()))
            if future.done():
                break
            if not metered:
                meter.start()
                metered = True
            t_s = time.time() - start_wall - args.warmup_s
            cpu_samples.append({"t_s": t_s, "used": meter.stop() if cpu_groups else {}, "machine": machine_times()})
            if master:
                samples.append(memory_sample(master, t_s))
            next_t += args.sample_s
        figures = future.result()
    used = meter.stop() if cpu_groups and metered else {}
    if metered:
        cpu_samples.append({"t_s": time.time() - start_wall - args.warmup_s, "used": used, "machine": machine_times()})
        figures["cpu_timeline"] = cpu_timeline(cpu_samples, args.progress_s)
    if used and figures["requests"]:
        figures["server_cpu_ms_per_request"] = per_request_ms(used, figures["requests"])
    if master:
        samples.append(memory_sample(master, time.time() - start_wall - args.warmup_s))
        growth = memory_growth(samples)
        figures["memory_growth_pct"] = growth["growth_pct"]
        figures["memory"] = {"master_pid": master, "before_load": idle, **growth,
                             "sample_every_s": args.sample_s, "samples": samples}
    else:
        figures["memory_growth_pct"] = None
    figures["mix"] = {k: round(v, 4) for k, v in mix.items()}
    return figures


def report(args, figures: dict, result: dict, config: dict, memory_note: str | None) -> None:
    """The summary on stdout; the whole report in --json's file."""
    result = assembled(figures, result, config, args.rate, memory_note)
    print(summary_text(result))
    write_json(result, args.json)


def main(argv=None) -> int:
    args = parse_args(argv)
    say = teller("bench.soak")
    config = {k: getattr(args, k) for k in CONFIG_KEYS}
    result = header()
    with ExitStack() as stack:
        soaked = prepare(args, stack, config, result, say)
        figures = measure(args, soaked, result, say)
    result["load_after"] = loadavg()
    report(args, figures, result, config, soaked.memory_note)
    return 0

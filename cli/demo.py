"""`adaptrec demo`: the synthetic demo catalogue and learners."""
from __future__ import annotations

from cli.arguments import non_negative, positive, tenant_option
from cli.common import database, ensure_tenant, migrate


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="generate the synthetic demo catalogue and learners",
                          description="Generate a deterministic synthetic data set: subjects > chapters > "
                                      "sections > questions, learners with a latent ability per subject, "
                                      "attempts from a known logistic model, and engagement events.")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--learners", type=positive, default=2000, help="number of learners (default 2000)")
    demo.add_argument("--attempts", type=positive, default=200_000, help="question attempts (default 200000)")
    demo.add_argument("--engagements", type=non_negative, default=50_000,
                      help="views, likes and completions of lessons (default 50000)")
    demo.add_argument("--grade-effect", type=float, default=0.0,
                      help="logits of ability per school grade (default 0: learners' metadata says nothing "
                           "of their ability)")
    demo.add_argument("--levels", type=positive, default=1,
                      help="courses per subject, a learner studying one (default 1: 1,967 items; 5: ~10,000 items "
                           "in 484 units, the scale run's catalogue: docs/SCALING.md)")
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    tenant_option(demo, "the tenant to fill, created if new (default: default)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from jobs.demo import DemoConfig, generate_demo

    config = DemoConfig(seed=args.seed, learners=args.learners, attempts=args.attempts,
                        engagements=args.engagements, grade_effect=args.grade_effect, levels=args.levels)
    with database() as (settings, conn):
        migrate(conn, settings, quiet=True)
        with conn:
            ensure_tenant(conn, args.tenant)
        report = generate_demo(conn, config, progress=not args.quiet, tenant=args.tenant)
    print(report.summary())
    return 0

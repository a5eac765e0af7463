"""Pure-numpy pieces of the closed-loop learner simulation (bench.simulate): the known truth and
its rules of learning, forgetting and time (truth), the world of one run with its timeline
(world), the baseline policies and offline sessions (policies), the realistic ceiling policy
(ceiling), the figures of the report (figures), and an experiment's results judged against the
truth (by_learning). No HTTP, no SQL."""

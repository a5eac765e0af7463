"""Pure-numpy pieces of the closed-loop learner simulation (bench.simulate): the known truth and
how learners change (truth), the baseline policies and offline sessions (policies), and the
figures of the report (figures). No HTTP, no SQL."""

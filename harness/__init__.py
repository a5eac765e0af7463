"""What benchmarks and tests share: the service started as `adaptrec serve` starts it, scratch
databases and Redis key prefixes, open-loop load at a rate (`load`), the measuring of processes,
one JSON request, and the two ends of a benchmark's report (`report`).

Not installed (pyproject's package list leaves it out) and never imported by app/, jobs/ or
cli/: `python -m bench.x` and pytest find it from the repository root.
"""

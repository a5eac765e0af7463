"""Faults injected into real processes: Postgres and Redis stopped under a running gunicorn, a
worker killed with SIGKILL during batch ingest, the training job killed mid-run, and training
jobs and migrations started twice at once.

Everything here runs on a private pair of embedded servers (not the suite's shared ones, which
may be the system Postgres and Redis in CI and must never be stopped), with one small demo
data set, one trained model and one gunicorn (2 workers) for the whole package (conftest.py's
`stack`); stack.py holds what the fault files share.
"""

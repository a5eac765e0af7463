"""The worker's long-lived objects kept out of Python's cyclic garbage collector.

A worker holds large containers for its whole life: models (item ids, their index), candidate
lists and their positions, pools, metrics. Every full (generation 2) collection walked all of them:
about 50-65 ms each, one every few thousand requests, during which the worker answered nothing,
and a quarter of a recommendation's worker CPU went to collections. A soak at 400 requests/s
measured p99 91 ms with them and 23 ms with them frozen (docs/benchmarks-log.md, 2026-12-07).

`settle` moves everything alive now into the permanent generation (gc.freeze): reference counting
still frees those objects, only the cycle search skips them. It runs after the worker's first
requests and again later, when its caches have filled, and after every model a worker loads.
Young garbage is collected first, so only cycles that became garbage among the old objects since
the last full collection are kept (the soak's memory stayed flat)."""
from __future__ import annotations

import gc
import threading

SETTLE_AT = (200, 2_000, 20_000)   # requests served by the worker when its state is settled again

_lock = threading.Lock()
_served = 0


def settle() -> None:
    """Collect the young generations, then freeze every object alive."""
    with _lock:
        gc.collect(1)
        gc.freeze()


def request_done() -> None:
    """Count a served request; settle at SETTLE_AT."""
    global _served
    _served += 1          # (a lost increment under threads only moves a settle by one request)
    if _served in SETTLE_AT:
        settle()

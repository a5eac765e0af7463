"""The worker's long-lived objects out of the cyclic collector (app.infra.collector)."""
from __future__ import annotations

import gc
import weakref

import pytest

from app.infra import collector


class Node:
    def __init__(self):
        self.other = None


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()      # the rest of the test session's objects back in the collector's reach


def test_settling_freezes_what_is_alive_and_leaves_later_cycles_collectable():
    long_lived = [Node() for _ in range(1000)]
    before = gc.get_freeze_count()
    collector.settle()
    assert gc.get_freeze_count() >= before + 1000      # the containers alive then: no longer walked
    a, b = Node(), Node()                                # a cycle made after: still found and freed
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
    frozen = weakref.ref(long_lived[0])                  # a frozen object is still freed by its count
    del long_lived
    assert frozen() is None


def test_the_worker_settles_at_the_counts_it_names(monkeypatch):
    settled = []
    monkeypatch.setattr(collector, "settle", lambda: settled.append(collector._served))
    monkeypatch.setattr(collector, "_served", 0)
    for _ in range(collector.SETTLE_AT[1] + 5):
        collector.request_done()
    assert settled == list(collector.SETTLE_AT[:2])

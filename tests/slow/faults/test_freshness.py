"""A change made elsewhere (psql, an import, another replica) reaches every worker within a second."""
from __future__ import annotations

import time

from tests.slow.faults.stack import ROOT, Stack, call, pg, workers


def _answer(stack: Stack, user: str) -> list[str]:
    answer = call(stack, "POST", "/v1/recommendations", {"user_id": user, "units": [ROOT], "n": 5})
    assert answer.status == 200, answer.body
    return [i["item_id"] for i in answer.body["items"]]


def test_an_item_deactivated_in_postgres_leaves_every_worker_within_a_second(stack: Stack):
    assert len(workers(stack)) == 2
    user = "fault-fresh-learner"
    first = _answer(stack, user)
    for _ in range(6):
        _answer(stack, user)  # both workers hold the candidate list now
    with pg(stack.db_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE items SET active = false WHERE item_id = %s", (first[0],))
    changed = time.monotonic()
    try:
        time.sleep(max(0.0, changed + 1.05 - time.monotonic()))
        later = [_answer(stack, user) for _ in range(12)]  # a new connection each: either worker
        assert all(first[0] not in items for items in later), (first[0], later)
    finally:
        with pg(stack.db_url) as conn, conn.cursor() as cur:
            cur.execute("UPDATE items SET active = true WHERE item_id = %s", (first[0],))

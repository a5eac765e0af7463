"""bench.soak's traffic: the mix of request kinds, request i of it, and the load process that sends
them open-loop and keeps one row per answer (label, due offset, latency, error)."""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from contextlib import contextmanager
from urllib.parse import quote

from bench.soak.figures import latency_figures, summarise_requests
from harness.load import open_loop, send_times

KINDS = ("recommend", "ingest", "similar", "trending")
DEFAULT_MIX = "recommend=60,ingest=20,similar=10,trending=10"


# ---- pure helpers (tested in tests/unit/test_soak_bench.py) -----------------------------------
def parse_mix(text: str) -> dict[str, float]:
    """`recommend=60,ingest=20,...` -> the share of each kind (summing to 1); kinds left out get 0."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if name not in KINDS or not sep:
            raise ValueError(f"--mix: expected kind=weight with kind one of {', '.join(KINDS)}, got {part!r}")
        try:
            weights[name] = float(raw)
        except ValueError:
            raise ValueError(f"--mix: the weight of {name} must be a number, got {raw!r}") from None
        if not weights[name] >= 0:
            raise ValueError(f"--mix: the weight of {name} must be 0 or more, got {raw!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("--mix: at least one weight must be positive")
    return {k: weights.get(k, 0.0) / total for k in KINDS}


class Traffic:
    """Request i of the mix as (label, method, path, body). Request i's draw is deterministic (its
    own Random from seed and i); which earlier body a retry resends depends on what was answered."""

    def __init__(self, ids: dict, mix: dict[str, float], run: str, seed: int = 0, retry_share: float = 0.05,
                 keep: int = 1000):
        self.users, self.units = ids["users"], ids["units"]
        self.items = [i for i, _ in ids["items"]]
        self.item_kind = dict(ids["items"])
        self.kinds, self.weights = list(mix), list(mix.values())
        self.run, self.seed, self.retry_share = run, seed, retry_share
        self._done: list[bytes] = []  # bodies of ingests answered 2xx (the last `keep`), the retries' source
        self._keep, self._answered = keep, 0
        self._lock = threading.Lock()

    def answered(self, body: bytes) -> None:
        """An ingest was stored: its body may be sent again as a retry."""
        with self._lock:
            if len(self._done) < self._keep:
                self._done.append(body)
            else:
                self._done[self._answered % self._keep] = body
            self._answered += 1

    def _event(self, rng: random.Random, event_id: str, user: str) -> dict:
        item = rng.choice(self.items)
        if self.item_kind.get(item, "question") == "question":
            return {"event_id": event_id, "user_id": user, "item_id": item, "kind": "attempt",
                    "outcome": rng.randrange(2)}
        return {"event_id": event_id, "user_id": user, "item_id": item, "kind": "view",
                "duration_ms": rng.randrange(5_000, 600_000)}

    def __call__(self, i: int) -> tuple[str, str, str, bytes | None]:
        rng = random.Random(f"{self.seed}-{i}")
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "recommend":
            body = {"user_id": rng.choice(self.users), "units": [rng.choice(self.units)], "n": 10}
            return "recommend", "POST", "/v1/recommendations", json.dumps(body).encode()
        if kind == "ingest":
            if rng.random() < self.retry_share:
                with self._lock:
                    earlier = rng.choice(self._done) if self._done else None
                if earlier is not None:
                    return "ingest_retry", "POST", "/v1/interactions", earlier
            user = rng.choice(self.users)
            size = 1 if rng.random() < 0.6 else rng.randint(2, 5)
            events = [self._event(rng, f"soak-{self.run}-{i}-{j}", user) for j in range(size)]
            body = events[0] if size == 1 else {"interactions": events}
            return "ingest", "POST", "/v1/interactions", json.dumps(body).encode()
        if kind == "similar":
            return "similar", "GET", f"/v1/items/{quote(rng.choice(self.items), safe='')}/similar?n=10", None
        units = f"&units={quote(rng.choice(self.units), safe='')}" if rng.random() < 0.5 else ""
        return "trending", "GET", f"/v1/trending?n=10{units}", None


# ---- the load process --------------------------------------------------------------------------
class Answers:
    """The answers of a soak, recorded from the client threads: one row per request (label, due
    offset s, latency ms, error or None), the retries' outcomes, the first error bodies and the
    send lags. `make` and `record` are open_loop's."""

    def __init__(self, traffic: Traffic, start: float, warmup_s: float):
        self.traffic, self.start, self.warmup_s = traffic, start, warmup_s
        self.rows: list[tuple] = []
        self.lags: list[float] = []
        self.samples: list[dict] = []
        self.retries = {"sent": 0, "answered_200": 0}
        self.errors = 0
        self.lock = threading.Lock()
        self._labels: dict[int, tuple[str, bytes | None]] = {}

    def make(self, i: int):
        label, method, path, body = self.traffic(i)
        with self.lock:
            self._labels[i] = (label, body if label == "ingest" else None)
        return method, path, body

    def record(self, o) -> None:
        with self.lock:
            label, body = self._labels.pop(o.index)
        error = None if o.ok else o.what
        if label == "ingest_retry" and error is None and o.status != 200:
            error = f"retry answered {o.status}"  # a stored event was stored again
        if label == "ingest" and error is None:
            self.traffic.answered(body)
        with self.lock:
            self.rows.append((label, o.due - self.start, o.latency_ms, error))
            self.errors += error is not None
            self.lags.append((o.sent - o.due) * 1000.0)
            if label == "ingest_retry":
                self.retries["sent"] += 1
                self.retries["answered_200"] += o.status == 200
            if error is not None and len(self.samples) < 10:
                self.samples.append({"label": label, "error": error,
                                     "t_s": round(o.due - self.start - self.warmup_s, 2),
                                     "body": o.payload[:300].decode(errors="replace")})


@contextmanager
def progress_lines(answers: Answers, every_s: float):
    """While the block runs: every `every_s`, a line on stderr with the answers so far and the p99
    of the last interval's."""
    stop = threading.Event()

    def progress():
        seen = 0
        while not stop.wait(every_s):
            with answers.lock:
                new, n, failed = answers.rows[seen:], len(answers.rows), answers.errors
            seen = n
            lat = [r[2] for r in new if r[3] is None]
            print(f"bench.soak: {time.perf_counter() - answers.start:.0f} s: {n} answered, {failed} errors, "
                  f"last {every_s:.0f} s p99 "
                  f"{latency_figures(lat)['p99_ms']} ms", file=sys.stderr, flush=True)

    reporter = threading.Thread(target=progress, daemon=True)
    reporter.start()
    try:
        yield
    finally:
        stop.set()
        reporter.join()


def soak_load(base_url: str, key: str, ids: dict, mix: dict, rate: float, warmup_s: float, duration_s: float,
              start_wall: float, run: str, seed: int = 0, retry_share: float = 0.05, threads: int = 64,
              timeout_s: float = 10.0, progress_s: float = 30.0) -> dict:
    """Drive the mix open-loop; the schedule starts at `start_wall` (time.time()), so the parent
    knows when the warm-up ends without talking to this process."""
    traffic = Traffic(ids, mix, run, seed, retry_share)
    offsets = send_times(rate, warmup_s + duration_s)
    start = time.perf_counter() + (start_wall - time.time())
    late_s = max(0.0, time.perf_counter() - start)
    cpu0 = time.process_time()
    answers = Answers(traffic, start, warmup_s)
    with progress_lines(answers, progress_s):
        open_loop(base_url, key, offsets, answers.make, answers.record, threads, timeout_s, start=start)
    rows = answers.rows
    out = summarise_requests(rows, warmup_s, duration_s, interval_s=max(1.0, min(30.0, duration_s / 4)))
    out["retries"] = answers.retries
    out["error_samples"] = answers.samples
    out["client"] = {"threads": threads, "timeout_s": timeout_s, "start_late_s": round(late_s, 3),
                     "send_lag_p99_ms": latency_figures(answers.lags)["p99_ms"],
                     "cpu_ms_per_request": (round((time.process_time() - cpu0) * 1000.0 / len(rows), 3)
                                            if rows else None)}
    return out


def soak_in_child(kwargs: dict) -> dict:
    return soak_load(**kwargs)

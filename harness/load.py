"""Open-loop HTTP load, shared by the benches that drive a service (bench.latency, bench.soak,
bench.totara): the schedule, the client threads, the tally of one phase and its summary, and the
process the client runs in (a process of its own, so its CPU does not compete with the measuring
process).

Request i is due at start + offsets[i]; a pool of client threads takes the requests in order,
sleeps until each is due, sends it and reports the outcome to `record`. Latency should be taken
from the due time, not the send time (no coordinated omission): a request that waited for a free
client because the server was slow carries that wait too.
"""
from __future__ import annotations

import http.client
import itertools
import math
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.measure import CpuMeter, percentile


@dataclass
class Outcome:
    """What happened to one request. `status` is None when `problem` (an exception's name) is set."""
    index: int
    due: float          # perf_counter seconds
    sent: float
    done: float
    status: int | None
    problem: str | None
    payload: bytes      # the response body (b"" after a connection error)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.status is not None and 200 <= self.status < 300

    @property
    def latency_ms(self) -> float:
        return (self.done - self.due) * 1000.0

    @property
    def what(self) -> str:
        """The error's name as the reports count it: `http 429`, `ConnectionResetError`, ..."""
        return self.problem or f"http {self.status}"


def send_times(rate: float, seconds: float) -> list[float]:
    """Open-loop schedule: offsets (s from the phase start) of every request at `rate` per second."""
    if rate <= 0 or seconds <= 0:
        return []
    count = math.floor(rate * seconds + 1e-9)
    return [i / rate for i in range(count)]


def open_loop(base_url: str, key: str | None, offsets: list[float], make, record, threads: int = 64,
              timeout_s: float = 10.0, start: float | None = None, sign=None, keepalive: bool = True,
              headers: dict | None = None) -> float:
    """Send request i (`make(i)` -> (method, path, body bytes or None)) at start + offsets[i] and
    call `record(Outcome)` when it is answered; `make` and `record` are called from the client
    threads. `start` is a perf_counter time (default: 0.2 s from now, to let the threads get
    going). `key`: the API key (None: no Authorization header); `sign()`: more headers made at the
    moment each request is sent (Totara's time-stamped signature); `headers`: sent with every request.
    `keepalive`: each client reuses its connection (as a backend's connection pool does) when the
    server keeps it open; False: a new connection per request (`Connection: close`). Returns
    `start`; returns when every request is answered."""
    parts = urlsplit(base_url)
    host, port = parts.hostname, parts.port or 80
    headers_base = {"Connection": "keep-alive" if keepalive else "close",
                    **({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
    counter = itertools.count()
    start = time.perf_counter() + 0.2 if start is None else start

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            while True:
                i = next(counter)  # atomic under the GIL
                if i >= len(offsets):
                    break
                method, path, body = make(i)
                headers = dict(headers_base)
                if body is not None:
                    headers["Content-Type"] = "application/json"
                due = start + offsets[i]
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                if sign is not None:
                    headers.update(sign())
                sent = time.perf_counter()
                status, problem, payload = None, None, b""
                try:
                    conn.request(method, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    status = resp.status
                    if resp.will_close or not keepalive:
                        conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    problem = type(exc).__name__
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
                record(Outcome(i, due, sent, time.perf_counter(), status, problem, payload))
        finally:
            conn.close()

    pool = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return start


def scheduled_latency(scheduled: float, done: float) -> float:
    """Latency in ms counted from when the request was due, not from when it left: a request
    that waited for a free client (the server being slow) carries that wait too."""
    return (done - scheduled) * 1000.0


def summarise(latencies_ms, errors: int, elapsed_s: float, rate: float | None = None,
              send_lag_ms=None) -> dict:
    """The figures of one phase. `latencies_ms` are the successful requests' latencies;
    `elapsed_s` runs from the phase start to the last completion."""
    lat = sorted(latencies_ms)
    ok = len(lat)
    out = {
        "requests": ok + errors,
        "errors": errors,
        "rps": round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": _r(percentile(lat, 50)),
        "p90_ms": _r(percentile(lat, 90)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(lat[-1] if lat else None),
        "mean_ms": _r(sum(lat) / ok if ok else None),
    }
    if rate is not None:
        out["target_rps"] = rate
    if send_lag_ms:
        out["client_send_lag_p99_ms"] = _r(percentile(send_lag_ms, 99))
    return out


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


class Tally:
    """What one phase's requests came to, recorded from the client threads (pass it to open_loop
    as `record`): the accepted answers' latencies (from the due time) and send lags, the others
    counted by kind with the first `keep_samples` bodies. `accept(outcome)` says whether an answer
    counts as a success (default: a 2xx status). The client's CPU is counted from its creation."""

    def __init__(self, accept=None, keep_samples: int = 0):
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.error_kinds: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.last_done = 0.0
        self._accept = accept or (lambda o: o.ok)
        self._keep = keep_samples
        self._lock = threading.Lock()
        self._cpu0 = time.process_time()

    def __call__(self, o: Outcome) -> None:
        with self._lock:
            self.last_done = max(self.last_done, o.done)
            if self._accept(o):
                self.latencies.append(scheduled_latency(o.due, o.done))
                self.lags.append((o.sent - o.due) * 1000.0)
            else:
                self.error_kinds[o.what] = self.error_kinds.get(o.what, 0) + 1
                if len(self.error_samples) < self._keep:
                    self.error_samples.append(o.payload[:300].decode("utf-8", "replace"))

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    def summary(self, start: float, seconds: float, rate: float) -> dict:
        """summarise() of the phase that began at `start` (perf_counter) and was scheduled for
        `seconds`: its elapsed time runs to the last answer, and is at least `seconds`."""
        elapsed = max(self.last_done - start, seconds) if self.last_done else seconds
        return summarise(self.latencies, self.errors, elapsed, rate, self.lags)

    def client_cpu_ms(self, requests: int) -> float:
        """This process's CPU per request since the tally began, in ms."""
        return round((time.process_time() - self._cpu0) * 1000.0 / requests, 3)


def separate_process() -> ProcessPoolExecutor:
    """A process of its own (spawned: a clean interpreter) for one task at a time: the load, so its
    client threads do not compete with the measuring process; a floor measured apart."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def per_request_ms(used: dict[str, float], requests: int) -> dict[str, float]:
    """CPU seconds per group (CpuMeter.stop) as ms per request."""
    return {k: round(v * 1000.0 / requests, 2) for k, v in used.items()}


def metered(run_phase, meter: CpuMeter | None) -> dict:
    """Run one phase (`run_phase()` returns its summary) with `meter` reading the service's CPU
    around it; a phase with requests gets `server_cpu_ms_per_request` (per group)."""
    if meter:
        meter.start()
    out = run_phase()
    if meter and out["requests"]:
        out["server_cpu_ms_per_request"] = per_request_ms(meter.stop(), out["requests"])
    return out

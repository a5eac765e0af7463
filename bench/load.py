"""The open-loop HTTP load engine shared by bench.latency and bench.soak (run it in a process of its
own, so the client's CPU does not compete with the measuring process), and gunicorn discovery.

Request i is due at start + offsets[i]; a pool of client threads takes the requests in order,
sleeps until each is due, sends it and reports the outcome to `record`. Latency should be taken
from the due time, not the send time (no coordinated omission): a request that waited for a free
client because the server was slow carries that wait too.
"""
from __future__ import annotations

import http.client
import itertools
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


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


# ---- finding a running gunicorn (Linux /proc) ---------------------------------------------------
def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP `port` (IPv4 or IPv6, any address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(inode)
    return found


def pids_holding(inodes: set[str]) -> list[int]:
    """Processes (of this user; others' fds are unreadable) with one of these sockets open."""
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (d / "fd").iterdir()):
                pids.append(int(d.name))
        except OSError:
            continue
    return sorted(pids)


def parent_pid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[1])


def find_gunicorn_master(port: int) -> int | None:
    """The gunicorn master serving on local `port`: of the processes sharing its listening
    socket (master and workers), the one whose parent is not among them."""
    inodes = listening_inodes(port)
    holders = pids_holding(inodes) if inodes else []
    roots = [p for p in holders if parent_pid(p) not in holders]
    return roots[0] if len(roots) == 1 else None

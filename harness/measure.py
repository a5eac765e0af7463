"""Measuring a machine and its processes (Linux /proc): percentiles, CPU seconds per group of
processes, resident memory, the load average, a one-line machine description, and the gunicorn
master listening on a port."""
from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from urllib.parse import urlsplit


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0-100) of `values`, linear interpolation between closest ranks
    (numpy's default method); None for no values."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def proc_rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB, None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (a gunicorn master's: its workers); [] if it is gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after "pid (comm) ": field 4 (ppid) first; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def _processes():
    """The /proc folder of every process."""
    return (d for d in Path("/proc").iterdir() if d.name.isdigit())


def pids_matching(*needles: str) -> list[int]:
    """Processes whose command line contains every one of `needles`."""
    found = []
    for d in _processes():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            found.append(int(d.name))
    return found


def redis_pids(redis_url: str) -> list[int]:
    """The redis-server serving `redis_url` (found by its port or socket path on this machine)."""
    parts = urlsplit(redis_url)
    where = parts.path if parts.scheme == "unix" else f":{parts.port or 6379}"
    return pids_matching("redis-server", where)


def service_groups(master_pid: int, database_url: str, redis_url: str) -> dict:
    """CpuMeter groups of a service started here: its gunicorn workers, the Postgres backends of
    its database, and the Redis server."""
    dbname = urlsplit(database_url).path.lstrip("/")
    return {"gunicorn_workers": lambda: child_pids(master_pid),
            "postgres_backends": lambda: pids_matching("postgres:", dbname),
            "redis": lambda: redis_pids(redis_url)}


def rss_of(pids: list[int]) -> list[float]:
    """VmRSS in MB of each of `pids` still running, in their order."""
    return [mb for mb in (proc_rss_mb(p) for p in pids) if mb is not None]


# ---- finding a running gunicorn ----------------------------------------------------------------
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
    for d in _processes():
        try:
            if any(os.readlink(fd) in wanted for fd in (d / "fd").iterdir()):
                pids.append(int(d.name))
        except OSError:
            continue
    return sorted(pids)


def find_gunicorn_master(port: int) -> int | None:
    """The gunicorn master serving on local `port`: of the processes sharing its listening
    socket (master and workers), the one whose parent is not among them."""
    inodes = listening_inodes(port)
    holders = pids_holding(inodes) if inodes else []
    roots = [p for p in holders if parent_pid(p) not in holders]
    return roots[0] if len(roots) == 1 else None


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop(); a group's pids are
    looked up again at each end (Postgres backends come and go), so counts are approximate."""

    def __init__(self, groups: dict):
        self.groups = groups  # name -> callable returning pids
        self._before: dict = {}

    def _sample(self) -> dict:
        return {name: {pid: cpu_seconds(pid) for pid in find()} for name, find in self.groups.items()}

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict:
        after = self._sample()
        used = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used[name] = sum((t or 0.0) - (before.get(pid) or 0.0) for pid, t in pids.items() if t is not None)
        return used


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages; [] where /proc has none."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def add_settle_arguments(parser, before: str, load: float, max_s: float) -> None:
    """--settle-load and --settle-max, the arguments of settle(): `before` says before what the
    bench waits (e.g. "before measuring")."""
    parser.add_argument("--settle-load", type=float, default=load,
                        help=f"{before}, wait for the 1-minute load average to drop below this (default {load:g})")
    parser.add_argument("--settle-max", type=float, default=max_s,
                        help=f"... for at most this many seconds (default {max_s:g}; 0: do not wait)")


def settle(threshold: float, max_wait_s: float, say) -> list[float]:
    """Wait (up to max_wait_s) for the 1-minute load average to drop below threshold: figures
    taken on a busy machine measure the machine, not the service."""
    deadline = time.monotonic() + max_wait_s
    load = loadavg()
    while load and load[0] >= threshold and time.monotonic() < deadline:
        say(f"load {load[0]:.2f} >= {threshold}: waiting")
        time.sleep(15)
        load = loadavg()
    return load


def machine() -> str:
    """Architecture, CPUs (and their model), memory, kernel and Python: enough to compare figures
    between machines."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{platform.machine()}, {os.cpu_count()} cpus{(' (' + model + ')') if model else ''}{mem}, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


class TreeMemory:
    """Samples, every `interval_s` in a thread, the resident memory of this process and all its
    descendants (a pool's workers, a Dask cluster started from here): the peak of their sum, and
    each process's own peak with a label from its command line."""

    def __init__(self, interval_s: float = 0.2):
        import threading

        self.interval_s = interval_s
        self.peak_total_mb = 0.0
        self.peaks: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0.0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss / 2**20
                    label = self.peaks.get(proc.pid, (None,))[0] or (
                        "this process" if proc.pid == me.pid else _label(proc.cmdline()))
                except psutil.Error:
                    continue
                total += rss
                self.peaks[proc.pid] = (label, max(rss, self.peaks.get(proc.pid, ("", 0.0))[1]))
            self.peak_total_mb = max(self.peak_total_mb, total)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        """{"peak_total_mb": ..., "by_process": {label: {"processes": n, "max_peak_mb": ...}}}."""
        by: dict[str, dict] = {}
        for label, peak in self.peaks.values():
            entry = by.setdefault(label, {"processes": 0, "max_peak_mb": 0.0})
            entry["processes"] += 1
            entry["max_peak_mb"] = round(max(entry["max_peak_mb"], peak), 1)
        return {"peak_total_mb": round(self.peak_total_mb, 1), "by_process": by}


def _label(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    for needle, label in (("dask scheduler", "dask scheduler"), ("dask worker", "dask nanny"),
                          ("resource_tracker", "resource tracker"), ("multiprocessing", "worker process")):
        if needle in text:
            return label
    return "other: " + text[:60] if text else "other"

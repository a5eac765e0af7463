"""A Dask cluster of separate processes for a test or a benchmark: `dask scheduler` on a free
port (its address read from a --scheduler-file) and `workers` × `dask worker` of one process
and one thread each, all started from this Python environment (so they import adaptrec), and
stopped afterwards."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from app.config import PROJECT_ROOT


def _dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


@contextmanager
def dask_cluster(workdir: Path, workers: int = 2, timeout_s: float = 60):
    """Yield (scheduler address, the processes: scheduler first); every one is stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler_file = workdir / "scheduler.json"
    log = open(workdir / "dask.log", "ab")
    procs = [subprocess.Popen(_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                    "--scheduler-file", str(scheduler_file)),
                              cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + timeout_s
        address = _read_address(scheduler_file, procs[0], deadline)
        for i in range(workers):
            procs.append(subprocess.Popen(
                _dask("worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                      "--name", f"adaptrec-test-{i}", "--local-directory", str(workdir / f"worker-{i}")),
                cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_workers(address, workers, deadline)
        yield address, procs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _read_address(scheduler_file: Path, scheduler: subprocess.Popen, deadline: float) -> str:
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {scheduler.returncode} (see {scheduler_file.parent})")
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.1)
    raise TimeoutError("dask scheduler did not write its address in time")


def _wait_for_workers(address: str, n: int, deadline: float) -> None:
    from distributed import Client

    with Client(address, timeout="30s", set_as_default=False) as client:
        client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))

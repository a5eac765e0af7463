"""Where the training tasks (jobs.training.tasks.run_task) run when not in the orchestrator's own
process: a local pool of worker processes, or a Dask cluster. Both take tasks with `submit` and
hand back finished ones with `wait`; a worker that dies fails only the task it was running
(`Done.died` says how), and the orchestrator (jobs.train) decides about retrying it.

The local pool is a few `multiprocessing` processes (spawn: no state inherited from the
orchestrator, no forked Postgres session), each running one task at a time from its own pipe, the
orchestrator watching their pipes and sentinels. concurrent.futures.ProcessPoolExecutor is not
used because one dead worker marks its whole pool broken and fails every task in flight.
"""
from __future__ import annotations

import logging
import multiprocessing
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any

from jobs.training.tasks import TaskResult, TaskSpec, run_task

log = logging.getLogger("adaptrec.train")


class ClusterUnavailable(RuntimeError):
    """The Dask scheduler named by ADAPTREC_DASK_SCHEDULER did not answer."""


@dataclass
class Done:
    key: Hashable
    output: TaskResult | None = None
    died: str = ""    # the worker running the task is gone, e.g. "worker died (exit -9)"
    error: str = ""   # the task could not run at all (not a training failure, which is in result)


def _worker_main(tasks) -> None:
    """A pool process: run the tasks read from the pipe, one at a time, until told to stop."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    while True:
        try:
            spec = tasks.recv()
        except (EOFError, OSError):   # the orchestrator is gone
            return
        if spec is None:
            return
        result = run_task(spec)
        try:
            tasks.send(result)
        except (BrokenPipeError, OSError):   # the orchestrator died meanwhile; the unit is done
            return


class _Worker:
    def __init__(self, ctx):
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), name="adaptrec-train-worker", daemon=True)
        self.process.start()
        child.close()
        self.key: Hashable | None = None


class ProcessPool:
    """`workers` spawned processes, one task each at a time; a dead one is replaced by a fresh one."""

    def __init__(self, workers: int):
        self._ctx = multiprocessing.get_context("spawn")
        self._idle = [_Worker(self._ctx) for _ in range(workers)]
        self._busy: list[_Worker] = []
        self.capacity = workers

    @property
    def running(self) -> int:
        return len(self._busy)

    def submit(self, key: Hashable, spec: TaskSpec) -> None:
        worker = self._idle.pop()
        if not worker.process.is_alive():   # died while idle: not this task's fault
            worker = _Worker(self._ctx)
        worker.key = key
        worker.pipe.send(spec)
        self._busy.append(worker)

    def wait(self) -> list[Done]:
        """Block until at least one running task finishes or its worker dies."""
        ready = set(wait_any([w.pipe for w in self._busy] + [w.process.sentinel for w in self._busy]))
        done = []
        for worker in [w for w in self._busy if w.pipe in ready or w.process.sentinel in ready]:
            self._busy.remove(worker)
            try:
                if not worker.pipe.poll():
                    raise EOFError
                done.append(Done(worker.key, output=worker.pipe.recv()))
                self._idle.append(worker)
                continue
            except Exception as exc:   # EOF, or a half-written result: the process is gone
                worker.process.join(timeout=5)
                code = worker.process.exitcode
                why = f"worker died (exit {code})" if code is not None else f"worker lost ({type(exc).__name__})"
            worker.pipe.close()
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            log.warning("%s while training %s", why, worker.key)
            done.append(Done(worker.key, died=why))
            self._idle.append(_Worker(self._ctx))   # a fresh process in its place
        return done

    def close(self) -> None:
        for worker in self._idle + self._busy:
            try:
                worker.pipe.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._idle + self._busy:
            worker.process.join(timeout=5 if worker in self._idle else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.pipe.close()
        self._idle, self._busy = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DaskRunner:
    """Tasks on the Dask cluster whose scheduler is at `address` (distributed.Client). A worker
    that dies has its task rescheduled by Dask, and after `distributed.scheduler.allowed-failures`
    (default 3) deaths the task fails with KilledWorker.

    No more tasks are submitted than the cluster has worker threads: Dask counts a death against
    every task assigned to the dead worker, waiting ones included, so tasks queued behind a unit
    that kills its worker would be blamed (and retried) with it."""

    connect_timeout_s = 30

    def __init__(self, address: str):
        from distributed import Client, as_completed

        try:
            self.client = Client(address, timeout=f"{self.connect_timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self._futures: dict = {}
        self._completed = as_completed(loop=self.client.loop)

    @property
    def running(self) -> int:
        return len(self._futures)

    @property
    def capacity(self) -> int:
        """The cluster's worker threads now (at least 1: with none, Dask holds the task for the next)."""
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, key: Hashable, spec: TaskSpec) -> None:
        name = f"adaptrec-train-{spec.config.tenant}-{spec.unit_id}-{spec.objective}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(run_task, spec, key=name, pure=False, retries=0)
        self._futures[future] = key
        self._completed.add(future)

    def wait(self) -> list[Done]:
        from distributed.scheduler import KilledWorker

        finished = [next(self._completed)]
        while self._completed.has_ready():
            finished.append(next(self._completed))
        done = []
        for future in finished:
            key = self._futures.pop(future)
            if future.status == "finished":
                done.append(Done(key, output=future.result()))
            else:
                try:
                    exc = future.exception()
                except BaseException as lost:   # cancelled: the scheduler forgot it
                    exc = lost
                if isinstance(exc, KilledWorker):
                    done.append(Done(key, died=f"worker died (Dask KilledWorker: {exc.allowed_failures + 1} "
                                               f"worker(s) died running it, the last "
                                               f"{getattr(exc.last_worker, 'address', exc.last_worker)})"))
                else:
                    done.append(Done(key, error=f"{type(exc).__name__}: {exc}"))
            future.release()
        return done

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

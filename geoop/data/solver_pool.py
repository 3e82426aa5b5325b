"""Solver workers that make samples while something else (a trainer) runs: long-lived processes that take
tasks from a queue and make each sample in a child process of their own (a crash or hang of gmsh or the solver
costs that sample only), write it atomically into the dataset folder and report its manifest record.

The caller keeps the queue ahead of the workers (`wanted`), so a worker that finishes a sample starts the next
at once: the solver never waits for the trainer. Every record says how long its worker waited for the task
(`waited`), which is how a caller checks that. Workers end when the pool closes, when they are retired, or
when the process that started them dies (they look every second), killing the sample they were making."""
from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from geoop.data.families import Family
from geoop.data.generation import failure_reason, make_and_save
from geoop.errors import GeoopError


@dataclass(frozen=True)
class Task:
    """Make sample `index`: of the design `candidates[0]`, or with `model` (a checkpoint with a learned error
    scale) of the candidate that model expects to predict worst (see `geoop.training.selection`); without
    candidates, of the design the family draws from (seed, index)."""

    index: int
    candidates: tuple[dict[str, float], ...] = ()
    model: str | None = None


def _produce(family: str | Family, root: str, seed: int, options: dict, task: dict, conn) -> None:
    """Child process: choose the design, make and write the sample; send its record (or the failure)."""
    try:
        chosen, scores = None, None
        if len(task["candidates"]) > 1 and task["model"]:
            import torch

            from geoop.training.selection import most_uncertain

            torch.set_num_threads(1)  # the solver's core: the trainer keeps its own

            pick, scores = most_uncertain(family, seed, task["index"], options, task["candidates"], task["model"])
            chosen = task["candidates"][pick]
        elif task["candidates"]:
            chosen = task["candidates"][0]
        record = make_and_save(family, root, seed, task["index"],
                               options if chosen is None else {**options, "design": chosen})
        conn.send({**record, "design": chosen, "scores": scores})
    except BaseException as e:  # everything goes back to the worker as a failure record
        conn.send({"index": task["index"], "error": failure_reason(e)})
    finally:
        conn.close()


def _worker(number: int, family: str | Family, root: str, seed: int, options: dict, timeout: float, tasks, results,
            stop) -> None:
    """A worker process: tasks until told to end (a None task, or the `stop` event: then at once) or its parent
    is gone."""
    from geoop.data.generation import _preload_solvers

    _preload_solvers()
    results.cancel_join_thread()  # a worker whose parent died must not wait at exit to flush its reports
    parent, fork = mp.parent_process(), mp.get_context("fork")
    since = None  # when the worker became free (None before its first task: starting is not waiting)
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if stop.is_set() or (parent is not None and not parent.is_alive()):
                return
            continue
        if task is None or stop.is_set():
            return
        waited = 0.0 if since is None else time.monotonic() - since
        started = time.monotonic()
        receive, send = fork.Pipe(duplex=False)
        child = fork.Process(target=_produce, args=(family, root, seed, options, task, send))
        child.start()
        send.close()
        result = None
        while result is None:
            if receive.poll(0.5):
                try:
                    result = receive.recv()
                except EOFError:
                    result = {"index": task["index"], "error": f"the process died (exit code {child.exitcode})"}
            elif not child.is_alive():
                result = {"index": task["index"], "error": f"the process died (exit code {child.exitcode})"}
            elif time.monotonic() - started > timeout:
                child.kill()
                result = {"index": task["index"], "error": f"timed out after {timeout:.0f} s"}
            elif stop.is_set() or (parent is not None and not parent.is_alive()):
                child.kill()
                child.join()
                return
        child.join()
        since = time.monotonic()
        results.put({**result, "worker": number, "waited": waited, "wall_seconds": since - started})


class SolverPool:
    """`workers` processes making samples of family `family` (a registered name, or a picklable `Family` such
    as a user's command) with `options` and base seed `seed` into the dataset folder `root`; `submit` tasks,
    `collect` what finished. Use as a context manager (or `close`)."""

    def __init__(self, family: str | Family, root: str | Path, seed: int, options: dict[str, Any], workers: int,
                 timeout: float = 600.0):
        ctx = mp.get_context("spawn")  # a clean interpreter: the caller may be running torch threads
        self.tasks, self.results, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.processes = [ctx.Process(target=_worker, args=(k, family, str(root), seed, options,
                                                                        timeout, self.tasks, self.results, self.stop))
                          for k in range(workers)]
        for p in self.processes:
            p.start()
        self.outstanding: dict[int, Task] = {}  # tasks submitted and not reported yet, by index
        self.working = workers

    def submit(self, task: Task) -> None:
        """Queue a task (a worker takes it when free)."""
        self.tasks.put(asdict(task))
        self.outstanding[task.index] = task

    def wanted(self) -> int:
        """How many more tasks to submit now so that every worker has one running and one waiting."""
        return max(0, 2 * self.working - len(self.outstanding))

    def collect(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """The records (or `{"index", "error"}` failures) reported since the last call; waits up to `wait`
        seconds for the first one when none is there."""
        out = []
        try:
            out.append(self.results.get(timeout=wait) if wait > 0 else self.results.get_nowait())
            while True:
                out.append(self.results.get_nowait())
        except queue.Empty:
            pass
        for r in out:
            self.outstanding.pop(r["index"], None)
        if not out and not any(p.is_alive() for p in self.processes):
            codes = sorted({p.exitcode for p in self.processes})
            raise GeoopError(f"every solver worker has ended (exit codes {codes}); the reason is printed above",
                             fix="fix that error and run the same command again: it resumes")
        return out

    def retire(self, n: int = 1) -> None:
        """Let `n` workers end after the sample they are making (the queue's tasks go to the others)."""
        n = min(n, self.working - 1)
        for _ in range(n):
            self.tasks.put(None)
        self.working -= n

    def close(self) -> None:
        """Stop every worker now; samples being made are dropped (their indices stay free)."""
        self.stop.set()
        for p in self.processes:
            p.join(timeout=5.0)
            if p.is_alive():
                p.kill()
                p.join()
        self.tasks.close()
        self.results.close()

    def __enter__(self) -> SolverPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

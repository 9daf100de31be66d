"""The parallel in-process executor: ``--jobs N`` runs up to N independent steps at once.

The same graph walk as :func:`benchmark.pipeline.local.execute`, over a pool of N worker
processes on this machine (``spawn``ed, so no parent thread or CUDA state is inherited).
A step is handed to a worker once every step it needs has finished; among the ready steps,
the one heading the costliest chain of steps goes first (:func:`critical_path_priority`:
the pretraining of an SSL tokenizer before a judge), so the critical path starts early.

Each worker rebuilds its step environment from the run's config, as a Ray worker does, and
runs the step with its output lock held (:func:`~benchmark.pipeline.local.run_locked`): records
and caches are byte-for-byte those of ``--jobs 1`` (every step is a function of its spec and
seed, and each process runs torch on the run's thread count). A step that raises is recorded
by the driver exactly as in the sequential executor. A worker that dies (killed, out of
memory) takes the pool with it: the steps it was running are retried in a new pool (up to
:data:`MAX_RETRIES` times; then the step fails with that reason), as Ray retries the task
of a lost worker.

On 2 CPU cores the mini models run on one thread each, so two workers keep both cores busy.
Progress bars are off in the workers (two bars on one terminal line are unreadable); each
step logs its start, its epochs and its time.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from benchmark.errors import BenchmarkError
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import Step, StepGraph
from benchmark.pipeline.local import (
    JobOutcome,
    log_time_by_kind,
    outcomes,
    record_failure,
    run_locked,
    upstream_failed,
)
from benchmark.pipeline.store import remove_stale_temps

log = logging.getLogger(__name__)

#: Retries of a step whose worker died (a step that raises is not retried).
MAX_RETRIES = 3


class WorkerDiedError(BenchmarkError):
    """The worker process running a step died (killed, out of memory)."""


class RemoteStepError(BenchmarkError):
    """A step raised an exception that cannot travel between processes (its type and message
    are kept; the worker's traceback is its ``__cause__``)."""


# --------------------------------------------------------------------------- worker side

_ENV: StepEnv | None = None


def _init_worker(config: RunConfig, cwd: str, level: int) -> None:
    global _ENV
    os.chdir(cwd)
    logging.basicConfig(level=level, format="%(message)s")
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    _ENV = StepEnv(config)


def _run_in_worker(step: Step) -> str:
    """Run one step in this worker; an exception that does not pickle is replaced by a
    :class:`RemoteStepError` with its type and message."""
    assert _ENV is not None, "worker not initialised"
    try:
        run_locked(step, _ENV)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RemoteStepError(f"{type(exc).__name__}: {exc}") from None
        raise
    return step.id


# --------------------------------------------------------------------------- driver side


#: Rough relative cost of a step of each kind (a mini run on 2 CPU cores, measured: an SSL
#: pretraining ~300 s, a training job 60-640 s, a generation 50-200 s, a judge or vocoder
#: ~100 s, an extraction 5-60 s); unknown kinds count 1. Only the order of ready steps
#: depends on it, never a result.
KIND_COST: dict[str, float] = {
    "pretrain": 10.0, "job": 4.0, "generate": 3.0, "vocoder": 2.0, "judge": 2.0,
    "reference-scores": 2.0, "vocoder-eval": 1.0,
    "profile": 1.0, "extract": 1.0, "fit": 1.0, "prepare": 2.0, "conformance": 0.2,
}  # fmt: skip


def critical_path_priority(steps: Iterable[Step]) -> dict[str, float]:
    """``{step id: the costliest chain of steps from it to the end of the graph}``, with
    :data:`KIND_COST` per step: among ready steps, the one heading the longest chain starts
    first (the pretraining before a judge that nothing else waits for)."""
    steps = list(steps)
    children: dict[str, set[str]] = {step.id: set() for step in steps}
    cost = {
        step.id: step.cost if step.cost is not None else KIND_COST.get(step.kind, 1.0)
        for step in steps
    }
    for step in steps:
        for parent in step.inputs:
            if parent in children:
                children[parent].add(step.id)
    memo: dict[str, float] = {}

    def chain(step_id: str) -> float:
        if step_id not in memo:
            memo[step_id] = cost[step_id] + max((chain(c) for c in children[step_id]), default=0)
        return memo[step_id]

    return {step.id: chain(step.id) for step in steps}


def _retry_or_fail(
    step: Step,
    env: StepEnv,
    attempts: dict[str, int],
    failures: dict[str, BaseException],
    fail_fast: bool,
) -> None:
    """A step's worker died: count the attempt; past :data:`MAX_RETRIES`, record it failed."""
    attempts[step.id] = attempts.get(step.id, 0) + 1
    if attempts[step.id] <= MAX_RETRIES:
        log.warning("a worker died while running %s; retrying it (%d of %d)",
                    step.label, attempts[step.id], MAX_RETRIES)  # fmt: skip
        return
    died = WorkerDiedError(
        f"the worker running {step.label} died {attempts[step.id]} times (killed or out of "
        "memory); rerun with fewer --jobs if memory ran out"
    )
    record_failure(step, env, died, failures, fail_fast)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM / Ctrl-C / fail-fast: end the workers now (what they were writing stays as
    temp files, removed at the next start) instead of waiting for their steps to finish."""
    processes = list(getattr(pool, "_processes", {}).values())  # CPython's worker table
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=30)
    pool.shutdown(wait=False, cancel_futures=True)


def _pool(jobs: int, config: RunConfig) -> ProcessPoolExecutor:
    worker_config = dataclasses.replace(config, progress=False)
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(worker_config, os.getcwd(), logging.getLogger().getEffectiveLevel()),
    )


def execute_pool(
    graph: StepGraph, env: StepEnv, jobs: int, fail_fast: bool = False
) -> list[JobOutcome]:
    """Run the graph's needed steps on ``jobs`` worker processes; one outcome per job, as
    :func:`benchmark.pipeline.local.execute` returns them.

    Raises:
        FailFast: with ``fail_fast``, at the first failed step (running steps are cancelled).
    """
    needed = {step.id: step for step in graph.needed()}
    priority = critical_path_priority(needed.values())
    order = {step_id: index for index, step_id in enumerate(needed)}
    finished: set[str] = set()
    ran: set[str] = set()
    failures: dict[str, BaseException] = {}
    seconds: dict[str, float] = {}
    running: dict[Future, tuple[str, float]] = {}
    submitted: set[str] = set()
    attempts: dict[str, int] = {}
    pool = _pool(jobs, env.config)

    def ready() -> list[Step]:
        steps = [s for s in needed.values() if s.id not in submitted
                 and all(i not in needed or i in finished for i in s.inputs)]  # fmt: skip
        return sorted(steps, key=lambda s: (-priority[s.id], order[s.id]))

    try:
        while len(finished) < len(needed):
            for step in ready():
                if len(running) >= jobs:
                    break
                submitted.add(step.id)
                if upstream_failed(graph, step, env, failures):
                    finished.add(step.id)
                    continue
                log.info("start %s", step.label)
                running[pool.submit(_run_in_worker, step)] = (step.id, time.perf_counter())
            if len(finished) == len(needed):
                break
            if not running:
                if not ready():
                    missing = sorted(set(needed) - finished)
                    raise BenchmarkError(f"steps {missing} can never start (graph order)")
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                # a worker died: the pool is gone, with every step it was running (which one
                # killed it cannot be told): each is retried, MAX_RETRIES times at most
                for step_id, _ in running.values():
                    _retry_or_fail(graph.steps[step_id], env, attempts, failures, fail_fast)
                    if step_id in failures:
                        finished.add(step_id)
                    else:
                        submitted.discard(step_id)
                running.clear()
                _stop_workers(pool)
                # what the ended workers were writing: temps named by their (dead) pids
                for root in (env.workdir, env.config.results_dir):
                    remove_stale_temps(root)
                pool = _pool(jobs, env.config)
                continue
            for future in done:
                step_id, started = running.pop(future)
                step = graph.steps[step_id]
                finished.add(step_id)
                seconds[step_id] = time.perf_counter() - started
                try:
                    future.result()
                    ran.add(step_id)
                    log.info("%s: %.1f s", step.label, seconds[step_id])
                except Exception as exc:  # a failing step is recorded, the run goes on
                    record_failure(step, env, exc, failures, fail_fast)
    except BaseException:
        for future in running:
            future.cancel()
        _stop_workers(pool)
        raise
    finally:
        log_time_by_kind(graph, seconds)
    pool.shutdown(wait=True)
    return outcomes(graph, ran, failures)

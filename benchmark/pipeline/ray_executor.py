"""The Ray executor: the same step graph as :mod:`benchmark.pipeline.local`, as Ray core tasks.

The one module that imports :mod:`ray` (Ray core, the ``ray`` extra). The driver walks the
graph: a step is submitted as a remote task once every step it needs has finished, and
:func:`ray.wait` hands back whichever task ends first, so independent steps (the jobs of a
study's cells, the shards of an extraction) run side by side on the cluster.

- Each task asks for one CPU, and one GPU when the steps run on CUDA (``gpus`` overrides
  it, e.g. logical GPUs in tests); a corpus ``prepare`` never asks for a GPU.
- An ``extract`` step is split into the deterministic shards of
  :func:`benchmark.pipeline.steps.extract_shards` (utterance index ranges): one task per
  shard writes its folder atomically, then a merge task, with the entry's output lock held,
  concatenates them into the cache entry the in-process executor writes.
- A task whose worker dies (killed, lost node) is retried ``max_retries`` times; a step
  that raises is not retried (``retry_exceptions=False``): it is recorded like in the
  local executor (a ``failed`` record for a job, its dependents failed with its error),
  through the local executor's own helpers.

Every task rebuilds what it needs from the step's spec and the run's config (no live
object travels), and runs in the driver's working directory: the workdir and results folder
must be on a filesystem every node mounts at the same path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayTaskError

from benchmark.errors import BenchmarkError
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import Step, StepGraph
from benchmark.pipeline.keys import fingerprint
from benchmark.pipeline.local import (
    JobOutcome,
    outcomes,
    record_failure,
    run_locked,
    upstream_failed,
)
from benchmark.pipeline.status import is_done
from benchmark.pipeline.steps import extract_shard, extract_shards, merge_extract
from benchmark.pipeline.store import output_lock

log = logging.getLogger(__name__)

#: Retries of a task whose worker died (not of a step that raised).
MAX_RETRIES = 3
#: Steps that never use a GPU (every other kind runs models: fits, extractions, vocoders,
#: judges, generation, training, profiles).
_CPU_KINDS = ("prepare",)


class RayExecutorError(BenchmarkError):
    """The Ray cluster cannot be reached or started (names the address)."""


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Connect to the cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``)
    or start a local one (``address`` None; ``kwargs`` go to :func:`ray.init`, e.g.
    ``num_cpus``). Workers import this checkout of the harness (``PYTHONPATH``).

    Raises:
        RayExecutorError: the cluster cannot be reached.
    """
    if ray.is_initialized():
        return
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path}}
    try:
        ray.init(
            address=address,
            runtime_env=runtime_env,
            include_dashboard=False,
            logging_level=logging.WARNING,
            **kwargs,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a new local cluster"
        raise RayExecutorError(
            f"--executor ray: cannot connect to {where}: {exc}; start one with "
            "`ray start --head` and pass --ray-address auto (or its host:port)"
        ) from None


def task_resources(step: Step, device: str, gpus: float | None = None) -> dict[str, float]:
    """Ray resources of one step's task: one CPU; one GPU on CUDA (or ``gpus``), except for
    a corpus ``prepare``."""
    if step.kind in _CPU_KINDS:
        return {"num_cpus": 1, "num_gpus": 0}
    wanted = gpus if gpus is not None else (1 if device.startswith("cuda") else 0)
    return {"num_cpus": 1, "num_gpus": wanted}


# --------------------------------------------------------------------------- worker side

_ENVS: dict[str, StepEnv] = {}


def _worker_env(config: RunConfig, cwd: str) -> StepEnv:
    """This worker's step environment for ``config`` (built once per worker process)."""
    if not Path(cwd).is_dir():
        raise RayExecutorError(
            f"the driver's folder {cwd} does not exist on this node: the workdir and results "
            "folder must be on a filesystem every node mounts at the same path"
        )
    os.chdir(cwd)
    key = fingerprint(repr(config))
    if key not in _ENVS:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        if config.device.startswith("cuda:"):  # Ray picks the GPU (CUDA_VISIBLE_DEVICES)
            import dataclasses

            config = dataclasses.replace(config, device="cuda")
        env = StepEnv(config)
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        _ENVS[key] = env
    return _ENVS[key]


@ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
def _run_step_task(step: Step, config: RunConfig, cwd: str) -> str:
    run_locked(step, _worker_env(config, cwd))
    return step.id


@ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
def _shard_task(step: Step, config: RunConfig, cwd: str, index: int, count: int) -> int:
    extract_shard(step, _worker_env(config, cwd), index, count)
    return index


@ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)
def _merge_task(step: Step, config: RunConfig, cwd: str, count: int, *shards: int) -> str:
    env = _worker_env(config, cwd)
    with output_lock(step.output, step.label):
        if not is_done(step, env):
            merge_extract(step, env, count)
    return step.id


# --------------------------------------------------------------------------- driver side


def execute_ray(
    graph: StepGraph,
    env: StepEnv,
    fail_fast: bool = False,
    address: str | None = None,
    gpus: float | None = None,
) -> list[JobOutcome]:
    """Run the graph's needed steps as Ray tasks; one outcome per job, as
    :func:`benchmark.pipeline.local.execute` returns them.

    Args:
        graph: the planned graph (its states read from the store).
        env: the driver's environment (its config goes to every task).
        fail_fast: stop at the first failed step (cancels the running tasks).
        address: the cluster (None: a local one, unless Ray is initialised already).
        gpus: GPUs each step task asks for (default: 1 on CUDA, 0 on CPU).
    """
    init_ray(address)
    config, cwd = env.config, os.getcwd()
    needed = {step.id: step for step in graph.needed()}
    finished: set[str] = set()
    ran: set[str] = set()
    failures: dict[str, BaseException] = {}
    running: dict[ray.ObjectRef, str] = {}
    submitted: set[str] = set()

    def ready(step: Step) -> bool:
        return all(i not in needed or i in finished for i in step.inputs)

    def submit(step: Step) -> ray.ObjectRef:
        options = task_resources(step, env.device, gpus)
        if step.kind != "extract":
            return _run_step_task.options(**options).remote(step, config, cwd)
        count = len(extract_shards(step, env))
        shards = []
        if count > 1:
            shards = [
                _shard_task.options(**options).remote(step, config, cwd, i, count)
                for i in range(count)
            ]
            log.info("%s: %d shards", step.label, count)
        return _merge_task.options(num_cpus=1, num_gpus=0).remote(step, config, cwd, count, *shards)

    try:
        while len(finished) < len(needed):
            for step in needed.values():
                if step.id in submitted or not ready(step):
                    continue
                submitted.add(step.id)
                if upstream_failed(graph, step, env, failures):
                    finished.add(step.id)
                    continue
                log.info("%s (ray)", step.label)
                try:
                    running[submit(step)] = step.id
                except Exception as exc:  # the shard plan could not be read
                    finished.add(step.id)
                    record_failure(step, env, exc, failures, fail_fast)
            if not running:
                if not any(ready(s) and s.id not in submitted for s in needed.values()):
                    missing = sorted(set(needed) - finished)
                    raise RayExecutorError(f"steps {missing} can never start (graph order)")
                continue
            done, _ = ray.wait(list(running), num_returns=1)
            step_id = running.pop(done[0])
            finished.add(step_id)
            try:
                ray.get(done[0])
                ran.add(step_id)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a failing step is recorded, the run goes on
                cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause else exc
                record_failure(graph.steps[step_id], env, cause, failures, fail_fast)
    except BaseException:
        for ref in running:
            ray.cancel(ref)
        raise
    return outcomes(graph, ran, failures)

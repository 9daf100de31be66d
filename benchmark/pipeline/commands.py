"""``run`` and ``plan`` on top of the planner and the in-process executor.

``run`` is plan + execute: it checks that the results folder takes new files, removes temp
files of dead processes, plans, builds the synthesised corpora the plan waits on (then plans
again, now with every key known), and executes what is to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.api import DataRef, Tokenizer
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Manifest
from benchmark.errors import UsageError
from benchmark.pipeline import distributed
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import StepGraph
from benchmark.pipeline.local import JobOutcome, execute
from benchmark.pipeline.plan import Planner
from benchmark.pipeline.steps import load_tokens
from benchmark.pipeline.store import StoreWriteError, check_writable, remove_stale_temps
from benchmark.registry import Registries

log = logging.getLogger(__name__)


def make_env(config: RunConfig, registries: Registries | None = None) -> StepEnv:
    """The step environment of a command (threads set, stale temps of dead processes gone)."""
    env = StepEnv(config, registries)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    removed = remove_stale_temps(config.workdir)
    if removed:
        log.info("removed %d temp file(s) left by killed runs", removed)
    return env


def plan(config: RunConfig, registries: Registries | None = None) -> tuple[StepEnv, StepGraph]:
    """The graph of a command line, with every step's state (prepares nothing)."""
    env = make_env(config, registries)
    return env, Planner(env).plan()


def _prepare_pending(graph: StepGraph, env: StepEnv) -> bool:
    pending = [s for s in graph if s.kind == "prepare" and s.state == "to do"]
    if not pending and not any(s.state == "pending" for s in graph):
        return False
    for step in pending:
        step.goal = True
    execute(_only(graph, [s.id for s in pending]), env)
    return True


def _only(graph: StepGraph, ids: list[str]) -> StepGraph:
    sub = StepGraph()
    for step_id in ids:
        sub.add(graph.steps[step_id])
    return sub


@dataclass(frozen=True)
class Executor:
    """Which executor runs a graph: ``local`` (in process) or ``ray``.

    Attributes:
        kind: ``local`` or ``ray``.
        address: the Ray cluster (``auto``, ``host:port``); None starts a local one.
        gpus: GPUs each Ray step task asks for (None: 1 on CUDA, 0 on CPU).
        jobs: local executor: steps run at once in worker processes (1: in this process,
            one after another; None: :func:`~benchmark.pipeline.cli_options.auto_jobs`).
    """

    kind: str = "local"
    address: str | None = None
    gpus: float | None = None
    jobs: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise UsageError(f"--executor must be local or ray, got {self.kind!r}")
        if self.address is not None and self.kind != "ray":
            raise UsageError("--ray-address needs --executor ray")
        if self.jobs is not None and (isinstance(self.jobs, bool) or self.jobs < 1):
            raise UsageError(
                f"--jobs must be 0 (as many as the cores) or a positive integer, got {self.jobs!r}"
            )
        if self.kind == "ray" and self.jobs not in (None, 1):
            raise UsageError("--jobs is for the local executor; Ray runs as many steps as "
                             "the cluster has CPUs (or GPUs)")  # fmt: skip

    def execute(self, graph: StepGraph, env: StepEnv, fail_fast: bool) -> list[JobOutcome]:
        """Run the graph's needed steps; one outcome per job."""
        if self.kind == "local":
            jobs = self.jobs
            if jobs is None:
                from benchmark.pipeline.cli_options import auto_jobs

                jobs = auto_jobs(env.device, env.config.threads)
            if jobs > 1 and distributed.world_size() > 1:
                log.info("torchrun: --jobs %d ignored (the ranks train each job together)", jobs)
                jobs = 1
            if jobs > 1 and len(graph.needed()) > 1:
                from benchmark.pipeline.pool import execute_pool

                return execute_pool(graph, env, jobs, fail_fast)
            return execute(graph, env, fail_fast)
        try:
            from benchmark.pipeline.ray_executor import execute_ray
        except ImportError as exc:
            raise UsageError(
                f"--executor ray needs Ray core ({exc}); install it with "
                "`pip install -e .[ray]` (or scripts/install.sh --dev)"
            ) from None
        return execute_ray(graph, env, fail_fast, self.address, self.gpus)


def run(
    config: RunConfig, registries: Registries | None = None, executor: Executor | None = None
) -> list[JobOutcome]:
    """Plan and execute a command line; one outcome per job.

    Raises:
        UsageError: the results folder cannot take new files (before any work), or a
            usage error from the planner.
    """
    return run_planned(config, lambda env: Planner(env).plan(), registries, executor)


def run_planned(
    config: RunConfig,
    planner: Callable[[StepEnv], StepGraph],
    registries: Registries | None = None,
    executor: Executor | None = None,
) -> list[JobOutcome]:
    """``run`` for any planner (a study plans many command lines into one graph): check
    the results folder, plan, prepare the corpora the plan waits on, plan again, execute."""
    try:
        check_writable(config.results_dir, "results")
    except StoreWriteError as exc:
        raise UsageError(str(exc)) from None
    remove_stale_temps(config.results_dir)
    distributed.setup(config.resolved_device())
    env = make_env(config, registries)
    graph = planner(env)
    if _prepare_pending(graph, env):
        graph = planner(env)
    return (executor or Executor()).execute(graph, env, config.fail_fast)


def tokenizer_tokens(
    env: StepEnv, tokenizer: str, data: Mapping[str, DataRef | Manifest]
) -> tuple[Tokenizer, str, dict[str, TokenSplit]]:
    """A tokenizer fitted (once per key) and ``data`` encoded through the token cache.

    Returns:
        The fitted tokenizer, its key and ``{split: TokenSplit}``.
    """
    graph, tok, caches = Planner(env).plan_tokens(tokenizer, data)
    if any(s.kind == "prepare" and s.goal for s in graph):
        execute(graph, env)
        graph, tok, caches = Planner(env).plan_tokens(tokenizer, data)
    execute(graph, env)
    tokenizer_obj = env.tokenizer(tok.spec, tok.fit_dir)
    sizes = tokenizer_obj.info.codebook_sizes
    splits = {split: load_tokens(cache, tok.kept, sizes, env) for split, cache in caches.items()}
    return tokenizer_obj, tok.key or "", splits


def format_plan(graph: StepGraph) -> list[str]:
    """One line per step: state, key prefix, label, and why it is to do."""
    width = max((len(step.label) for step in graph), default=10)
    lines = []
    needed = {step.id for step in graph.needed()}
    for step in graph:
        state = step.state
        if state == "to do" and step.id not in needed:
            state, reason = "not needed", "every step that uses it is done"
        else:
            reason = step.reason
        key = step.key[:12] if step.key != "pending" else "pending"
        why = f"  ({reason})" if reason else ""
        lines.append(f"{state:<10}  {key:<12}  {step.label:<{width}}{why}")
    counts: dict[str, Any] = {}
    for step in graph:
        counts[step.state] = counts.get(step.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines.append(f"{len(graph)} steps: {summary}; {len(needed)} to run")
    return lines

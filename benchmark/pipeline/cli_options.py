"""Command-line options shared by ``run`` and ``study``: the executor (no heavy imports)."""

from __future__ import annotations

import argparse
import os
from typing import Any

#: The most worker processes ``--jobs`` picks by itself (each holds torch and its models).
MAX_AUTO_JOBS = 4


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--jobs``, ``--ray-address``, ``--ray-gpus`` and
    ``--shard-utterances``."""
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="run the steps in this process (local) or as Ray tasks (ray; the 'ray' extra)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="local executor: run up to N independent steps at once, in worker processes "
        "(default 1: one after another in this process; 0: on CPU the cores, at most "
        f"{MAX_AUTO_JOBS}, each step on --threads threads, 1 on CUDA)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to use (auto, host:6379 or ray://host:10001; default: start a "
        "local cluster); the workdir and results must be on a shared filesystem",
    )
    parser.add_argument(
        "--ray-gpus",
        type=float,
        default=None,
        metavar="N",
        help="GPUs each Ray step task asks for (default: 1 on CUDA, 0 on CPU)",
    )
    parser.add_argument(
        "--shard-utterances",
        type=int,
        default=2000,
        metavar="N",
        help="utterances per extraction shard (the Ray executor encodes shards in parallel)",
    )


def executor_of(args: argparse.Namespace) -> Any:
    """The :class:`~benchmark.pipeline.commands.Executor` the options ask for."""
    from benchmark.pipeline.commands import Executor

    jobs = None if args.jobs == 0 else args.jobs  # 0: auto_jobs
    return Executor(args.executor, args.ray_address, args.ray_gpus, jobs)


def auto_jobs(device: str, threads: int | None) -> int:
    """``--jobs`` when not given: 1 on CUDA (one GPU, one step); on CPU as many steps as
    the cores hold at ``threads`` threads each, at most :data:`MAX_AUTO_JOBS`."""
    if device != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_AUTO_JOBS, (cores or 1) // max(1, threads or cores or 1)))

"""Command-line options shared by ``run`` and ``study``: the executor (no heavy imports)."""

from __future__ import annotations

import argparse
from typing import Any


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--ray-address``, ``--ray-gpus`` and ``--shard-utterances``."""
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="run the steps in this process (local) or as Ray tasks (ray; the 'ray' extra)",
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

    return Executor(args.executor, args.ray_address, args.ray_gpus)

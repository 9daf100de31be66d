"""torchrun support: DistributedDataParallel training of a head, only rank 0 writing.

Under ``torchrun --nproc_per_node N python -m benchmark run ...`` every process runs the
same command: each plans the same graph, the shared steps (prepare, fit, extract) are
computed once under their output locks (the other ranks wait, then find them done), and a
job's head trains with DDP: the gradient of every step is averaged over the N processes
(``gloo`` on CPU, ``nccl`` on CUDA, one GPU per process by ``LOCAL_RANK``), each process
taking its share of the epoch's batches through a
:class:`~torch.utils.data.DistributedSampler`. Evaluation runs on every rank (the models
are identical after each step) and only rank 0 writes records and checkpoints. A job's key
holds the world size when it is above 1: DDP trains a different head than one process.

Outside torchrun (``WORLD_SIZE`` unset or 1), and outside a DDP job step
(:func:`ddp_scope`), every function here is the identity, so the single-process trainer is
unchanged; a generative task's training runs on rank 0 alone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


def world_size() -> int:
    """Processes of the torchrun job (``WORLD_SIZE``; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank (``RANK``; 0 outside torchrun)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_writer() -> bool:
    """Whether this process writes records and checkpoints (rank 0 only)."""
    return rank() == 0


_SCOPE = {"ddp": False}


def is_ddp_step(step: Any) -> bool:
    """Whether every rank runs this step together: a (non-generative) job under torchrun.

    Other steps (corpora, fits, extractions, a generative task's generate and scoring steps)
    run on one rank under their output lock while the others wait and find them done.
    """
    return world_size() > 1 and step.kind == "job" and not step.spec.get("generative")


@contextlib.contextmanager
def ddp_scope(enabled: bool) -> Iterator[None]:
    """Within it, :func:`wrap` and :func:`epoch_share` train with DDP (when ``enabled``)."""
    previous = _SCOPE["ddp"]
    _SCOPE["ddp"] = enabled
    try:
        yield
    finally:
        _SCOPE["ddp"] = previous


def _active() -> bool:
    return world_size() > 1 and _SCOPE["ddp"]


def backend(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` on CPU."""
    return "nccl" if device.startswith("cuda") else "gloo"


def setup(device: str) -> str:
    """Join the process group once (a no-op outside torchrun); returns the device to use.

    On CUDA each process takes the GPU of its ``LOCAL_RANK``, so ``cuda`` means that GPU.
    """
    if world_size() <= 1:
        return device
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend(device))
        atexit.register(_teardown)
        log.info("torchrun: rank %d of %d (%s)", rank(), world_size(), backend(device))
    return device


def _teardown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: str) -> nn.Module:
    """The model to train: DDP around ``model`` under torchrun, else ``model`` itself.

    ``model`` keeps its own parameters (DDP shares them), so validation and the kept state
    use it directly.
    """
    if not _active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    setup(device)
    ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
    # heads with a single-layer fusion leave some embeddings without gradient
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def shard_count(num_batches: int) -> int:
    """Batches this process takes per epoch (all ranks take the same number)."""
    return -(-num_batches // world_size()) if _active() else num_batches


def epoch_share(items: Sequence[T], epoch: int, seed: int) -> list[T]:
    """This process's share of one epoch's (already shuffled) batches.

    A :class:`~torch.utils.data.DistributedSampler` over the batch list, without a second
    shuffle (every rank shuffled the same way with the same seed); the list is padded by
    repetition so every rank steps the same number of times.
    """
    if not _active():
        return list(items)
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(len(items)), num_replicas=world_size(), rank=rank(), shuffle=False, seed=seed
    )
    sampler.set_epoch(epoch)
    return [items[i] for i in sampler]

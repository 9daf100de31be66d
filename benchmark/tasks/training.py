"""The training loop every token-based head shares, readable top to bottom.

Batches of cached tokens are padded to ``[B, N, K]`` with a validity mask; the model is
trained with AdamW for a budget of epochs, validated after every epoch, and the best
validation state is kept. Seeds fix the initialisation and the order, so one fingerprint
gives one result: the budget is counted in epochs, never in seconds. ``max_seconds`` is a
safety stop only: a job that runs past it fails with that reason (it is not a budget).
Under torchrun the model trains with DDP, each process taking its share of every epoch's
batches (:mod:`benchmark.pipeline.distributed`); outside it nothing changes.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError
from benchmark.pipeline import distributed

log = logging.getLogger(__name__)


@dataclass
class Example:
    """One utterance: ``tokens [N, K]`` int64 and its target (label index or text ids)."""

    id: str
    tokens: torch.Tensor
    target: Any


@dataclass
class Batch:
    """A padded batch: ``tokens [B, N, K]``, ``mask [B, N]``, ``lengths [B]``, targets."""

    ids: list[str]
    tokens: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    targets: list[Any]

    def to(self, device: str) -> Batch:
        """The same batch on ``device``."""
        return Batch(
            self.ids,
            self.tokens.to(device),
            self.mask.to(device),
            self.lengths.to(device),
            self.targets,
        )


@dataclass
class TrainConfig:
    """Budget and optimiser settings of a head's training.

    Attributes:
        epochs: passes over the training set.
        batch_size: utterances per batch.
        lr: peak AdamW learning rate (linear warm-up, cosine decay).
        weight_decay: AdamW decay.
        max_seconds: safety stop: fail the job past this much wall time (0 = none).
        grad_clip: max gradient norm.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    max_seconds: float = 0.0
    grad_clip: float = 5.0
    warmup_fraction: float = 0.05

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "max_seconds", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


class TrainingTimeoutError(BenchmarkError):
    """A head still training past its ``max_seconds`` safety stop."""


@dataclass
class TrainResult:
    """Validation history and the epoch of the kept state."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.inf
    seconds: float = 0.0


EMBEDDING_INITS = ("random", "tokenizer")


def check_embedding_init(mode: str) -> str:
    """Validate a task's ``embedding_init`` parameter (``random`` or ``tokenizer``)."""
    if mode not in EMBEDDING_INITS:
        raise ValueError(f"embedding_init must be 'random' or 'tokenizer', got {mode!r}")
    return mode


def initial_embeddings(run: Any, mode: str) -> torch.Tensor | None:
    """Codebook vectors ``[K, C, D]`` to initialise token embeddings from, or None.

    ``tokenizer`` takes the tokenizer's own vectors (k-means centroids, codec codebooks) when
    it has them (the paper's embedding-initialisation factor); ``random`` and continuous
    references get None.
    """
    if mode != "tokenizer" or run.tokenizer_info.is_continuous:
        return None
    return run.embeddings()


def examples_from_tokens(
    items: Sequence[tuple[str, np.ndarray, Any]],
) -> list[Example]:
    """Wrap ``(id, tokens, target)`` triples as tensors.

    Integer tokens ``[N, K]`` become int64 copies; float features ``[N, K, D]`` of a
    continuous reference become float32 copies.
    """
    examples = []
    for utt_id, tokens, target in items:
        dtype = np.float32 if np.issubdtype(np.asarray(tokens).dtype, np.floating) else np.int64
        examples.append(Example(utt_id, torch.from_numpy(np.asarray(tokens, dtype=dtype)), target))
    return examples


def collate(examples: Sequence[Example]) -> Batch:
    """Pad ``[N_i, K(, D)]`` arrays to ``[B, N_max, K(, D)]`` (zeros) with a validity mask."""
    lengths = torch.tensor([e.tokens.shape[0] for e in examples], dtype=torch.int64)
    longest = max(1, int(lengths.max()))
    first = examples[0].tokens
    tokens = torch.zeros(len(examples), longest, *first.shape[1:], dtype=first.dtype)
    for row, example in enumerate(examples):
        tokens[row, : example.tokens.shape[0]] = example.tokens
    mask = torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)
    return Batch([e.id for e in examples], tokens, mask, lengths, [e.target for e in examples])


def batches(
    examples: Sequence[Example], batch_size: int, shuffle: bool, generator: torch.Generator
) -> list[Batch]:
    """Length-bucketed batches: sort by length, cut, then shuffle the batch order."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].tokens.shape[0])
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        groups = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    return [collate([examples[i] for i in group]) for group in groups]


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
    validate: Callable[[nn.Module], float],
    train_examples: Sequence[Example],
    config: TrainConfig,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    description: str = "train",
    valid_name: str = "valid_error_percent",
) -> TrainResult:
    """Train ``model`` in place; keep the state with the lowest ``validate`` score.

    Args:
        model: the head (front end included), already on ``device``.
        loss_fn: ``(model, batch) -> scalar loss``.
        validate: ``model -> score`` (lower is better), called after every epoch.
        train_examples: training utterances.
        config: budget and optimiser settings.
        device: where the batches go.
        seed: seeds the batch order.
        progress: show a progress bar.
        description: progress-bar label.
        valid_name: what ``validate`` returns, with its unit (the history's key), e.g.
            ``valid_cer_percent`` or ``valid_error_percent``.

    Returns:
        The validation history; the model holds the best state on return.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    net = distributed.wrap(model, device)  # DDP under torchrun, else the model itself
    steps_per_epoch = distributed.shard_count(math.ceil(len(train_examples) / config.batch_size))
    total_steps = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, int(config.warmup_fraction * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=description, disable=not progress, leave=False)
    for epoch in range(config.epochs):
        model.train()
        losses = []
        epoch_batches = batches(train_examples, config.batch_size, True, generator)
        for batch in distributed.epoch_share(epoch_batches, epoch, seed):
            if config.max_seconds and time.perf_counter() - start > config.max_seconds:
                bar.close()
                raise TrainingTimeoutError(
                    f"{description}: still training at epoch {epoch} after the safety stop "
                    f"of {config.max_seconds:.0f} s (max_seconds); the budget is "
                    f"{config.epochs} epochs: raise max_seconds or lower epochs"
                )
            loss = loss_fn(net, batch.to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{description}: loss became {loss.item()} at epoch {epoch}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        model.eval()
        with torch.no_grad():
            score = float(validate(model))
        result.history.append(
            {
                "epoch": epoch,
                "steps": len(losses),
                "train_loss": float(np.mean(losses)),
                valid_name: score,
                "seconds": time.perf_counter() - start,
            }
        )
        log.info(
            "%s epoch %d: loss %.4f, %s %.4f", description, epoch, np.mean(losses), valid_name,
            score,
        )  # fmt: skip
        if score < result.best_score:
            result.best_score, result.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
    bar.close()
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result

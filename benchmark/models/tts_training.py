"""Training and generation around :class:`~benchmark.models.tts_transformer.TextToTokens`.

Examples pair an utterance's character ids (the target of :class:`Example`) with its cached
tokens ``[N, K]``; the shared loop (:func:`benchmark.tasks.training.train`) trains on the
weighted loss of :func:`~benchmark.models.tts_transformer.tts_losses` and keeps the epoch
with the lowest validation loss (teacher-forced token cross-entropy plus gate BCE, the
modelling terms; the guided attention term is a regulariser and left out). Generation caps
each utterance at ``ceil(cap_ratio * characters)`` frames, where ``cap_ratio`` is
``cap_slack`` times the largest frames-per-character ratio of the training set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.models.tts_transformer import LossWeights, TextToTokens, tts_losses
from benchmark.tasks.training import Batch, Example, TrainConfig, TrainResult, batches, train


def text_batch(targets: Sequence[Sequence[int]], device: str) -> torch.Tensor:
    """Character id lists -> ``[B, L_max]`` int64, 0-padded."""
    longest = max(len(t) for t in targets)
    out = torch.zeros(len(targets), longest, dtype=torch.int64)
    for row, ids in enumerate(targets):
        out[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
    return out.to(device)


def tts_examples(items: Sequence[tuple[str, np.ndarray, list[int]]]) -> list[Example]:
    """``(id, tokens [N, K] ints, character ids)`` -> examples (int64 token copies)."""
    return [
        Example(uid, torch.from_numpy(np.asarray(tokens, dtype=np.int64).copy()), list(ids))
        for uid, tokens, ids in items
    ]


def batch_losses(
    model: TextToTokens, batch: Batch, weights: LossWeights, device: str
) -> dict[str, torch.Tensor]:
    """:func:`tts_losses` of one padded batch."""
    return tts_losses(
        model, text_batch(batch.targets, device), batch.tokens, batch.lengths, weights
    )


def validation_loss(
    model: TextToTokens, examples: Sequence[Example], weights: LossWeights, device: str
) -> float:
    """Utterance-weighted mean of token cross-entropy + gate BCE over ``examples`` (nats)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches(examples, 16, False, torch.Generator()):
            batch = batch.to(device)
            losses = batch_losses(model, batch, weights, device)
            total += float(losses["tokens"] + weights.gate * losses["gate"]) * len(batch.ids)
            count += len(batch.ids)
    return total / max(1, count)


def train_tts(
    model: TextToTokens,
    train_set: Sequence[Example],
    valid_set: Sequence[Example],
    weights: LossWeights,
    config: TrainConfig,
    device: str,
    seed: int,
    progress: bool,
    description: str = "tts model",
) -> TrainResult:
    """Train in place with teacher forcing; the model keeps the epoch of lowest valid loss."""

    def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
        return batch_losses(net, batch, weights, device)["total"]  # type: ignore[arg-type]

    return train(
        model,
        loss_fn,
        lambda net: validation_loss(net, valid_set, weights, device),  # type: ignore[arg-type]
        train_set,
        config,
        device,
        seed,
        progress,
        description,
        "valid_loss_nats",
    )


def cap_ratio(examples: Sequence[Example], slack: float) -> float:
    """``slack`` x the largest frames / characters ratio of ``examples``."""
    if slack < 1:
        raise ValueError(f"cap_slack must be >= 1, got {slack!r}")
    return slack * max(e.tokens.shape[0] / max(1, len(e.target)) for e in examples)


@dataclass
class Generated:
    """Tokens generated for one utterance and how generation ended.

    Attributes:
        tokens: ``[N, K]`` int64.
        stopped: True where the gate ended it, False where the cap did.
        cap: the utterance's frame cap.
    """

    tokens: np.ndarray
    stopped: bool
    cap: int


def generate_tokens(
    model: TextToTokens,
    texts: dict[str, list[int]],
    ratio: float,
    device: str,
    gate_threshold: float = 0.5,
    top_k: int = 0,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Generated]:
    """Generate every utterance of ``texts`` (``{id: character ids}``), batched by length.

    Args:
        model: the trained model.
        texts: character ids per utterance.
        ratio: frames per character allowed (the cap is ``ceil(ratio * characters)``).
        device: torch device.
        gate_threshold: stop-gate probability that ends an utterance.
        top_k: 0 for greedy decoding, else top-k sampling seeded by ``seed``.
        seed: seeds the sampling.
        batch_size: utterances generated together.

    Returns:
        ``{id: Generated}``.
    """
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed) if top_k > 0 else None
    order = sorted(texts, key=lambda uid: (len(texts[uid]), uid))
    out: dict[str, Generated] = {}
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        text = text_batch([texts[uid] for uid in ids], device)
        caps = torch.tensor([max(1, math.ceil(ratio * len(texts[uid]))) for uid in ids])
        tokens, lengths, stopped = model.generate(text, caps, gate_threshold, top_k, generator)
        tokens = tokens.cpu().numpy()
        for row, uid in enumerate(ids):
            n = int(lengths[row])
            out[uid] = Generated(tokens[row, :n].copy(), bool(stopped[row]), int(caps[row]))
    return out

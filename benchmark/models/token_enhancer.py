"""Speech enhancement on tokens: noisy tokens in, every codebook's clean tokens out.

A non-autoregressive model in the style of DASB's discrete enhancement: the fused token
front end (:func:`~benchmark.models.frontend.build_frontend`: one embedding per codebook,
then layer fusion) turns noisy tokens ``[B, N, K]`` into frames ``[B, N, D]``; sinusoidal
positions are added and a :class:`torch.nn.TransformerEncoder` (pre-norm, padding masked)
encodes them; one linear head per codebook predicts that codebook's clean token at every
frame. The loss is the cross-entropy of each codebook on the valid frames, averaged over
codebooks. :func:`predict` returns the argmax tokens, which the tokenizer's decoder (or
the scalable vocoder) turns back into audio.

A noisy/clean pair comes from two encodings of equally long audio, so their frame counts
agree, or differ by one where a codec rounds a trailing partial frame differently (the mini
corpus's twins have identical sample counts). :func:`pair_tokens` crops both to the
shorter and refuses larger differences, which mean the two are not twins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.api import TokenizerInfo
from benchmark.errors import DataError
from benchmark.models.frontend import build_frontend
from benchmark.tasks.training import (
    Batch,
    Example,
    TrainConfig,
    TrainResult,
    batches,
    examples_from_tokens,
    train,
)

#: Largest frame-count difference of a noisy/clean pair that :func:`pair_tokens` crops.
MAX_FRAME_DIFFERENCE = 1


@dataclass(frozen=True)
class EnhancerConfig:
    """Size of the enhancer.

    Attributes:
        dim: front-end and transformer width ``D``.
        layers: transformer encoder layers.
        heads: attention heads.
        ff: feed-forward width.
        dropout: dropout in the encoder.
        fusion: layer fusion of the front end (``attention`` = informed layer selector).
        max_frames: longest utterance the positional table covers, frames.
    """

    dim: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1
    fusion: str = "attention"
    max_frames: int = 4096


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The transformer's sine/cosine position table ``[length, dim]``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class TokenEnhancer(nn.Module):
    """Noisy tokens ``[B, N, K]`` -> clean-token logits, one ``[B, N, C_k]`` per codebook.

    Args:
        info: the tokenizer's metadata (codebook sizes; discrete tokenizers only).
        config: model size.
        init: optional ``[K, C, D_init]`` embedding initialisation (codebook vectors).
    """

    def __init__(
        self, info: TokenizerInfo, config: EnhancerConfig, init: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if info.is_continuous:
            raise ValueError(
                f"{info.name} is a continuous reference: token enhancement predicts tokens"
            )
        self.codebook_sizes = tuple(info.codebook_sizes)
        self.frontend = build_frontend(info, config.dim, config.fusion, init=init)
        self.register_buffer(
            "positions", sinusoidal_positions(config.max_frames, config.dim), persistent=False
        )
        layer = nn.TransformerEncoderLayer(
            config.dim,
            config.heads,
            config.ff,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        self.heads = nn.ModuleList(nn.Linear(config.dim, size) for size in self.codebook_sizes)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Per-codebook logits ``[B, N, C_k]`` and the fusion's layer weights ``[B, N, K]``.

        Args:
            tokens: ``[B, N, K]`` int64 noisy tokens.
            mask: ``[B, N]`` bool, True on valid frames.
        """
        if tokens.shape[1] > self.positions.shape[0]:
            raise ValueError(
                f"{tokens.shape[1]} frames exceed the enhancer's {self.positions.shape[0]}; "
                "raise EnhancerConfig.max_frames"
            )
        fused, weights = self.frontend(tokens, mask)
        x = fused + self.positions[: tokens.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        return [head(x) for head in self.heads], weights


def enhancement_loss(
    logits: Sequence[torch.Tensor], clean: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over codebooks of the cross-entropy on valid frames.

    Args:
        logits: per codebook ``[B, N, C_k]``.
        clean: ``[B, N, K]`` int64 clean tokens.
        mask: ``[B, N]`` bool valid frames.

    Returns:
        Scalar loss.
    """
    losses = [
        nn.functional.cross_entropy(logit[mask], clean[..., k][mask])
        for k, logit in enumerate(logits)
    ]
    return torch.stack(losses).mean()


def pair_tokens(
    noisy: np.ndarray, clean: np.ndarray, utt_id: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a noisy/clean token pair ``[N, K]`` to the shorter frame count.

    Raises:
        DataError: the codebook counts differ, or the frame counts differ by more than
            :data:`MAX_FRAME_DIFFERENCE` (not twins).
    """
    noisy, clean = np.asarray(noisy), np.asarray(clean)
    if noisy.ndim != 2 or clean.ndim != 2 or noisy.shape[1] != clean.shape[1]:
        raise DataError(
            f"{utt_id}: noisy tokens {noisy.shape} and clean tokens {clean.shape} must both be "
            "[N, K] with the same K"
        )
    if abs(noisy.shape[0] - clean.shape[0]) > MAX_FRAME_DIFFERENCE:
        raise DataError(
            f"{utt_id}: noisy and clean tokens have {noisy.shape[0]} and {clean.shape[0]} "
            "frames; a noisy file and its clean twin must be equally long"
        )
    length = min(noisy.shape[0], clean.shape[0])
    return noisy[:length], clean[:length]


def pair_examples(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> list[Example]:
    """``(id, noisy [N, K], clean [N, K])`` triples -> training examples (cropped pairs)."""
    items = []
    for utt_id, noisy, clean in pairs:
        noisy, clean = pair_tokens(noisy, clean, utt_id)
        items.append((utt_id, noisy, torch.from_numpy(np.asarray(clean, dtype=np.int64))))
    return examples_from_tokens(items)


def _clean_batch(batch: Batch) -> torch.Tensor:
    """The batch's clean tokens padded like its noisy ones ``[B, N, K]``."""
    clean = torch.zeros_like(batch.tokens)
    for row, target in enumerate(batch.targets):
        clean[row, : target.shape[0]] = target
    return clean


def batch_loss(model: TokenEnhancer, batch: Batch) -> torch.Tensor:
    """The training loss of one batch (its targets are clean tokens ``[N_i, K]``)."""
    logits, _ = model(batch.tokens, batch.mask)
    return enhancement_loss(logits, _clean_batch(batch).to(batch.tokens.device), batch.mask)


@torch.no_grad()
def predict(
    model: TokenEnhancer, examples: Sequence[Example], device: str = "cpu", batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Argmax clean tokens of each example, by id: ``[N_i, K]`` int64."""
    model.eval()
    out: dict[str, np.ndarray] = {}
    for batch in batches(examples, batch_size, False, torch.Generator()):
        batch = batch.to(device)
        logits, _ = model(batch.tokens, batch.mask)
        best = torch.stack([logit.argmax(dim=-1) for logit in logits], dim=-1).cpu()
        for row, utt_id in enumerate(batch.ids):
            out[utt_id] = best[row, : int(batch.lengths[row])].numpy()
    return out


@torch.no_grad()
def token_accuracy(model: TokenEnhancer, examples: Sequence[Example], device: str = "cpu") -> float:
    """Fraction of valid frames x codebooks whose predicted token is the clean one."""
    predicted = predict(model, examples, device)
    right = total = 0
    for example in examples:
        target = np.asarray(example.target)
        right += int((predicted[example.id] == target).sum())
        total += target.size
    return right / max(total, 1)


def train_enhancer(
    model: TokenEnhancer,
    train_pairs: Sequence[Example],
    valid_pairs: Sequence[Example],
    config: TrainConfig,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Train in place with the shared loop; keep the epoch with the best valid accuracy.

    Args:
        model: the enhancer, on ``device``.
        train_pairs: examples from :func:`pair_examples` (noisy tokens, clean target).
        valid_pairs: validation examples of the same form.
        config: budget and optimiser settings.
        device: torch device.
        seed: seeds the batch order.
        progress: show a progress bar.

    Returns:
        The training history (``valid_token_error`` is ``1 - token accuracy``).
    """

    def validate(net: nn.Module) -> float:
        return 1.0 - token_accuracy(net, valid_pairs, device)

    return train(
        model,
        batch_loss,
        validate,
        train_pairs,
        config,
        device,
        seed,
        progress,
        "enhancer",
        valid_name="valid_token_error",
    )


def describe(model: TokenEnhancer) -> dict[str, Any]:
    """Parameter count and codebooks, for the record."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "codebook_sizes": list(model.codebook_sizes),
    }

"""Batches of the pretraining recipe: random crops, HuBERT's span masks, WavLM's mixing.

Every draw (which utterance, where the crop starts, which frames are masked, what is mixed
in) comes from one ``torch.Generator`` seeded by the caller, so a seed gives the same batches
on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from benchmark.models.ssl_pretrain_config import PretrainConfig
from benchmark.models.ssl_pretrain_data import FRAME_SAMPLES, HOP_SAMPLES, PretrainCorpus


def span_mask(
    lengths: Sequence[int], width: int, prob: float, span: int, generator: torch.Generator
) -> torch.Tensor:
    """HuBERT-style span mask ``[B, width]`` bool over each item's first ``lengths[b]`` frames.

    ``floor(prob * n / span + u)`` spans (``u`` uniform in [0, 1)) start at distinct random
    frames of ``0 .. n - span``; overlapping spans merge.
    """
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        length = min(span, n)
        starts_available = n - length + 1
        count = int(prob * n / length + float(torch.rand((), generator=generator)))
        count = min(count, starts_available)
        if count == 0:
            continue
        starts = torch.randperm(starts_available, generator=generator)[:count]
        index = (starts.unsqueeze(1) + torch.arange(length)).flatten()
        mask[b, index] = True
    return mask


@dataclass
class PretrainBatch:
    """One step's input: padded audio, which frames are valid and masked, the targets."""

    wav: torch.Tensor  # [B, T] float32
    attention: torch.Tensor | None  # [B, T] long, None when no item is padded
    valid: torch.Tensor  # [B, N] bool
    masked: torch.Tensor  # [B, N] bool
    targets: list[torch.Tensor] = field(default_factory=list)  # [B, N] int64 each


class CropSampler:
    """Random crops of the corpus, one epoch permutation after another, from one generator.

    Args:
        corpus: the pretraining audio and frame offsets.
        ids: per target codebook, the cluster id ``[num_frames]`` of every corpus frame.
        config: crop length, batch size, masking and mixing settings.
        seed: seeds the generator.
    """

    def __init__(
        self, corpus: PretrainCorpus, ids: list[torch.Tensor], config: PretrainConfig, seed: int
    ):
        self.corpus, self.ids, self.config = corpus, ids, config
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []

    def _next_utterance(self) -> int:
        if not self.order:
            self.order = torch.randperm(
                self.corpus.num_utterances, generator=self.generator
            ).tolist()
        return self.order.pop()

    def _mix(self, wav: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """WavLM's utterance mixing: add a segment of another item at -5..5 dB."""
        g, out = self.generator, wav.clone()
        for b, n in enumerate(lengths):
            if len(lengths) < 2 or float(torch.rand((), generator=g)) >= self.config.mix_prob:
                continue
            other = (b + 1 + int(torch.randint(len(lengths) - 1, (), generator=g))) % len(lengths)
            seg = int(torch.randint(1, max(2, min(n, lengths[other]) // 2), (), generator=g))
            src = int(torch.randint(lengths[other] - seg + 1, (), generator=g))
            dst = int(torch.randint(n - seg + 1, (), generator=g))
            piece = wav[other, src : src + seg]
            ratio_db = float(torch.empty(()).uniform_(-5.0, 5.0, generator=g))
            main_power = wav[b, :n].pow(2).mean()
            scale = torch.sqrt(main_power / piece.pow(2).mean().clamp(min=1e-8))
            out[b, dst : dst + seg] += piece * scale * 10.0 ** (-ratio_db / 20.0)
        return out

    def batch(self) -> PretrainBatch:
        """The next ``batch_size`` crops with their masks and targets."""
        c, cfg, g = self.corpus, self.config, self.generator
        picks = [self._next_utterance() for _ in range(cfg.batch_size)]
        spans = []
        for u in picks:
            n_u = int(c.frame_offsets[u + 1] - c.frame_offsets[u])
            n = min(n_u, cfg.crop_frames)
            start = int(torch.randint(n_u - n + 1, (), generator=g))
            spans.append((u, start, n))
        width = max(n for _, _, n in spans)
        samples = [(n - 1) * HOP_SAMPLES + FRAME_SAMPLES for _, _, n in spans]
        wav = torch.zeros(len(spans), max(samples))
        valid = torch.zeros(len(spans), width, dtype=torch.bool)
        targets = [torch.zeros(len(spans), width, dtype=torch.int64) for _ in self.ids]
        for b, (u, start, n) in enumerate(spans):
            s0 = int(c.sample_offsets[u]) + start * HOP_SAMPLES
            wav[b, : samples[b]] = c.audio[s0 : s0 + samples[b]].float()
            valid[b, :n] = True
            f0 = int(c.frame_offsets[u]) + start
            for k, ids in enumerate(self.ids):
                targets[k][b, :n] = ids[f0 : f0 + n]
        if cfg.mix_prob > 0:
            wav = self._mix(wav, samples)
        lengths = [n for _, _, n in spans]
        masked = span_mask(lengths, width, cfg.mask_prob, cfg.mask_length, g)
        attention = None
        if min(samples) < wav.shape[1]:
            positions = torch.arange(wav.shape[1]).unsqueeze(0)
            attention = (positions < torch.tensor(samples).unsqueeze(1)).long()
        return PretrainBatch(wav, attention, valid, masked, targets)

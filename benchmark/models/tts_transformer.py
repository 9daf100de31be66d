"""An autoregressive transformer text-to-token model: characters in, all codebooks per step out.

Encoder: character embeddings plus sinusoidal positions (scaled by a learned factor, as in
Transformer-TTS) through ``torch.nn.TransformerEncoder``. Decoder: at step ``n`` the input
is the sum of the per-codebook embeddings of frame ``n - 1`` (a learned start frame, the
embeddings' "absent" rows, at ``n = 0``), plus positions, through pre-norm decoder layers
built from ``torch.nn.MultiheadAttention`` (causal self-attention, cross-attention whose
head-averaged weights are returned for the guided attention loss, feed-forward). One
shared decoder state feeds one linear head per codebook (stored as one matrix, split by
codebook) and a stop gate.

Losses (:func:`tts_losses`): per-codebook cross-entropy averaged over codebooks and valid
frames (teacher forcing), the stop gate's binary cross-entropy (target 1 on the last
frame), and the guided attention loss of Tachibana et al. 2017 (arXiv 1710.08969): the
cross-attention mass far from the diagonal, ``W[n, l] = 1 - exp(-(n/N - l/L)^2 / (2 g^2))``,
averaged over the valid cells of every decoder layer.

Inference (:meth:`TextToTokens.generate`): greedy, or top-k sampling from a seeded
generator, one frame per step with cached layer inputs; each utterance stops after the
frame whose gate probability passes the threshold, or at its cap of
``ceil(cap_ratio * characters)`` frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.models.embeddings import MultiCodebookEmbedding


def sinusoids(length: int, dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sinusoidal positions ``[length, dim]`` (Vaswani et al. 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim)
    )
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(position * rate)
    out[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return out


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer that also returns its cross-attention weights.

    Args:
        dim: model width ``D``.
        heads: attention heads.
        ffn: feed-forward width.
        dropout: dropout on every residual branch.
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pad: torch.Tensor,
        causal: torch.Tensor | None = None,
        past: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One layer.

        Args:
            x: ``[B, N, D]`` inputs (``N = 1`` for a cached step).
            memory: ``[B, L, D]`` encoder states.
            memory_pad: ``[B, L]`` True on padded characters.
            causal: ``[N, N]`` bool mask, True where attention is forbidden (teacher forcing).
            past: ``[B, M, D]`` normed inputs of the earlier steps (cached decoding), or None.

        Returns:
            ``[B, N, D]`` outputs, ``[B, N, L]`` head-averaged cross-attention weights, and
            the normed inputs seen so far ``[B, M + N, D]`` (the next step's ``past``).
        """
        normed = self.norms[0](x)
        keys = normed if past is None else torch.cat([past, normed], dim=1)
        attended, _ = self.self_attn(normed, keys, keys, attn_mask=causal, need_weights=False)
        x = x + self.dropout(attended)
        crossed, weights = self.cross_attn(
            self.norms[1](x), memory, memory, key_padding_mask=memory_pad, need_weights=True
        )
        x = x + self.dropout(crossed)
        x = x + self.dropout(self.ffn(self.norms[2](x)))
        return x, weights, keys


@dataclass(frozen=True)
class TTSModelConfig:
    """Architecture of :class:`TextToTokens`.

    Attributes:
        dim: model width.
        heads: attention heads.
        encoder_layers, decoder_layers: depths.
        ffn: feed-forward width.
        dropout: dropout inside the layers.
        input_dropout: dropout on the decoder's previous-frame input while training (keeps
            the decoder reading the text rather than copying the last frame).
    """

    dim: int = 256
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn: int = 1024
    dropout: float = 0.1
    input_dropout: float = 0.2


class TextToTokens(nn.Module):
    """Characters ``[B, L]`` -> token logits ``[B, N, sum C_k]`` and gate logits ``[B, N]``.

    Args:
        vocab_size: character ids (0 = padding).
        codebook_sizes: ``C_k`` per codebook of the target tokenizer.
        config: architecture.
    """

    def __init__(
        self, vocab_size: int, codebook_sizes: Sequence[int], config: TTSModelConfig
    ) -> None:
        super().__init__()
        self.config = config
        self.codebook_sizes = tuple(int(c) for c in codebook_sizes)
        dim = config.dim
        self.text_embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.text_scale = nn.Parameter(torch.ones(1))
        self.audio_scale = nn.Parameter(torch.ones(1))
        layer = nn.TransformerEncoderLayer(
            dim, config.heads, config.ffn, config.dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(
            layer, config.encoder_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.audio_embedding = MultiCodebookEmbedding(self.codebook_sizes, dim)
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, config.heads, config.ffn, config.dropout)
            for _ in range(config.decoder_layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        self.heads = nn.Linear(dim, sum(self.codebook_sizes))
        self.gate = nn.Linear(dim, 1)

    def encode(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text [B, L]`` ids -> memory ``[B, L, D]`` and its padding mask ``[B, L]``."""
        pad = text == 0
        x = self.text_embedding(text) + self.text_scale * sinusoids(
            text.shape[1], self.config.dim, text.device
        )
        return self.encoder(x, src_key_padding_mask=pad), pad

    def _frame_inputs(self, previous: torch.Tensor, offset: int) -> torch.Tensor:
        """Previous frames ``[B, N, K]`` (``C_k`` = the start frame) -> inputs ``[B, N, D]``."""
        summed = self.audio_embedding(previous, absent_ok=True).sum(dim=2)
        positions = sinusoids(offset + previous.shape[1], self.config.dim, previous.device)
        return summed + self.audio_scale * positions[offset:]

    def shifted(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for teacher forcing: the start frame, then ``tokens[:, :-1]``."""
        start = self.audio_embedding.pad_ids.view(1, 1, -1).expand(tokens.shape[0], 1, -1)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def forward(
        self, text: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Teacher-forced pass.

        Args:
            text: ``[B, L]`` character ids, 0-padded.
            tokens: ``[B, N, K]`` target ids (padded frames may hold any valid id).

        Returns:
            logits ``[B, N, sum C_k]``, gate logits ``[B, N]``, and each decoder layer's
            cross-attention weights ``[B, N, L]``.
        """
        memory, pad = self.encode(text)
        x = self.input_dropout(self._frame_inputs(self.shifted(tokens), 0))
        n = tokens.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
        attention = []
        for layer in self.layers:
            x, weights, _ = layer(x, memory, pad, causal=causal)
            attention.append(weights)
        state = self.final_norm(x)
        return self.heads(state), self.gate(state).squeeze(-1), attention

    def split_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[..., sum C_k]`` -> one ``[..., C_k]`` tensor per codebook."""
        return torch.split(logits, self.codebook_sizes, dim=-1)

    def grouped_logits(self, logits: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
        """``[..., sum C_k]`` -> ``(codebooks, [..., G, C])`` per group of equal-sized codebooks.

        One group (a view, no copy) when every codebook has the same size, the usual case;
        computing a group's loss or argmax in one call is much faster than per codebook.
        """
        sizes = self.codebook_sizes
        if len(set(sizes)) == 1:
            return [(list(range(len(sizes))), logits.unflatten(-1, (len(sizes), sizes[0])))]
        parts = self.split_logits(logits)
        groups: dict[int, list[int]] = {}
        for k, size in enumerate(sizes):
            groups.setdefault(size, []).append(k)
        return [(ks, torch.stack([parts[k] for k in ks], dim=-2)) for ks in groups.values()]

    @torch.no_grad()
    def generate(
        self,
        text: torch.Tensor,
        caps: torch.Tensor,
        gate_threshold: float = 0.5,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generate tokens frame by frame until the gate fires or the cap is reached.

        Args:
            text: ``[B, L]`` character ids, 0-padded.
            caps: ``[B]`` int64 most frames per utterance (>= 1).
            gate_threshold: stop after the first frame whose gate probability exceeds this.
            top_k: 0 for greedy; else sample from the ``top_k`` most likely ids per codebook.
            generator: seeds the sampling (top-k only).

        Returns:
            ``tokens [B, N_max, K]`` int64 (0 past each utterance's end), ``lengths [B]``
            int64 frames, and ``stopped [B]`` bool (True where the gate ended it, False
            where the cap did).
        """
        if caps.ndim != 1 or caps.shape[0] != text.shape[0] or int(caps.min()) < 1:
            raise ValueError(f"caps must be [B] positive frame counts, got {caps.tolist()}")
        batch, device = text.shape[0], text.device
        memory, pad = self.encode(text)
        previous = self.audio_embedding.pad_ids.view(1, 1, -1).expand(batch, 1, -1)
        pasts: list[torch.Tensor | None] = [None] * len(self.layers)
        frames: list[torch.Tensor] = []
        lengths = torch.zeros(batch, dtype=torch.int64, device=device)
        stopped = torch.zeros(batch, dtype=torch.bool, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        caps = caps.to(device)
        for step in range(int(caps.max())):
            x = self._frame_inputs(previous, step)
            for index, layer in enumerate(self.layers):
                x, _, pasts[index] = layer(x, memory, pad, past=pasts[index])
            state = self.final_norm(x)[:, 0]
            frame = torch.empty(batch, len(self.codebook_sizes), dtype=torch.int64, device=device)
            for codebooks, group in self.grouped_logits(self.heads(state)):
                frame[:, codebooks] = self._pick(group, top_k, generator)
            frames.append(torch.where(done[:, None], 0, frame))
            lengths = lengths + (~done).long()
            fired = torch.sigmoid(self.gate(state).squeeze(-1)) > gate_threshold
            stopped = stopped | (fired & ~done)
            done = done | fired | (lengths >= caps)
            if bool(done.all()):
                break
            previous = frame[:, None]
        return torch.stack(frames, dim=1), lengths.cpu(), stopped.cpu()

    @staticmethod
    def _pick(logits: torch.Tensor, top_k: int, generator: torch.Generator | None) -> torch.Tensor:
        """``[B, G, C]`` logits -> ``[B, G]`` ids (argmax, or a top-k sample)."""
        if top_k <= 0:
            return logits.argmax(dim=-1)
        values, indices = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
        probabilities = values.softmax(dim=-1).flatten(0, -2)
        if generator is not None and generator.device != probabilities.device:
            probabilities = probabilities.cpu()
        choice = torch.multinomial(probabilities, 1, generator=generator).to(indices.device)
        return indices.gather(-1, choice.view(*indices.shape[:-1], 1)).squeeze(-1)


def guided_attention_weights(
    text_lengths: torch.Tensor, frame_lengths: torch.Tensor, n: int, length: int, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalty ``W [B, N, L]`` of Tachibana et al. 2017 and the mask of valid cells ``[B, N, L]``.

    ``W[b, n, l] = 1 - exp(-(n / N_b - l / L_b)^2 / (2 sigma^2))`` with the utterance's own
    frame count ``N_b`` and character count ``L_b``.
    """
    frames = torch.arange(n, device=frame_lengths.device, dtype=torch.float32)
    chars = torch.arange(length, device=frame_lengths.device, dtype=torch.float32)
    relative_n = frames[None, :, None] / frame_lengths.float()[:, None, None]
    relative_l = chars[None, None, :] / text_lengths.float()[:, None, None]
    penalty = 1.0 - torch.exp(-((relative_n - relative_l) ** 2) / (2 * sigma**2))
    valid = (frames[None, :, None] < frame_lengths[:, None, None]) & (
        chars[None, None, :] < text_lengths[:, None, None]
    )
    return penalty, valid


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three loss terms and the gate's class balance.

    Attributes:
        gate: weight of the stop gate's BCE.
        gate_pos_weight: BCE weight of the positive (stop) frame, one per utterance.
        guided_attention: weight of the guided attention loss (0 turns it off).
        guided_sigma: width ``g`` of the diagonal prior, relative to the lengths.
    """

    gate: float = 1.0
    gate_pos_weight: float = 5.0
    guided_attention: float = 10.0
    guided_sigma: float = 0.2


def tts_losses(
    model: TextToTokens,
    text: torch.Tensor,
    tokens: torch.Tensor,
    frame_lengths: torch.Tensor,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """Teacher-forced losses of one batch.

    Args:
        model: the model.
        text: ``[B, L]`` character ids, 0-padded.
        tokens: ``[B, N, K]`` target ids.
        frame_lengths: ``[B]`` valid frames.
        weights: loss weights.

    Returns:
        ``tokens`` (mean per-codebook cross-entropy, nats), ``gate`` (BCE), ``attention``
        (guided attention), and ``total`` (their weighted sum).
    """
    logits, gate, attention = model(text, tokens)
    n = tokens.shape[1]
    valid = torch.arange(n, device=tokens.device)[None] < frame_lengths.to(tokens.device)[:, None]
    count = valid.sum().clamp(min=1)
    token_loss = logits.new_zeros(())
    for codebooks, group in model.grouped_logits(logits):  # group: [B, N, G, C]
        ce = F.cross_entropy(
            group.flatten(0, 2), tokens[..., codebooks].flatten(), reduction="none"
        )
        token_loss = token_loss + (ce.view(*group.shape[:3]) * valid[..., None]).sum() / count
    token_loss = token_loss / len(model.codebook_sizes)
    last = (
        torch.arange(n, device=tokens.device)[None]
        == (frame_lengths.to(tokens.device) - 1)[:, None]
    )
    gate_terms = F.binary_cross_entropy_with_logits(
        gate, last.float(), reduction="none", pos_weight=gate.new_tensor(weights.gate_pos_weight)
    )
    gate_loss = (gate_terms * valid).sum() / count
    attention_loss = logits.new_zeros(())
    if weights.guided_attention > 0:
        text_lengths = (text != 0).sum(dim=1)
        penalty, cells = guided_attention_weights(
            text_lengths, frame_lengths.to(text.device), n, text.shape[1], weights.guided_sigma
        )
        for layer_weights in attention:
            attention_loss = attention_loss + (layer_weights * penalty * cells).sum() / cells.sum()
        attention_loss = attention_loss / len(attention)
    total = token_loss + weights.gate * gate_loss + weights.guided_attention * attention_loss
    return {"tokens": token_loss, "gate": gate_loss, "attention": attention_loss, "total": total}

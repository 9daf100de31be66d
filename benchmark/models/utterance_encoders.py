"""Utterance encoders of the classification heads: fused frames -> one vector per utterance.

Two encoders, DASB's two heads for speaker ID and emotion recognition:

- ``bilstm``: a 1-layer BiLSTM (:class:`~benchmark.models.bilstm.MaskedBiLSTM`), then masked
  mean and standard-deviation pooling (``4 * hidden`` values);
- ``ecapa``: speechbrain's ECAPA-TDNN (``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``:
  SE-Res2Net TDNN blocks, multi-layer feature aggregation, attentive statistics pooling over
  the valid frames, a linear embedding of ``embedding`` values).

Both take ``[B, N, D]`` fused frames and a ``[B, N]`` mask and return ``[B, out_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.bilstm import MaskedBiLSTM

HEADS: tuple[str, ...] = ("bilstm", "ecapa")


class BiLSTMPooling(nn.Module):
    """BiLSTM over the fused frames, then masked mean + standard deviation pooling.

    Args:
        dim: input size ``D``.
        hidden: LSTM units per direction; ``out_dim = 4 * hidden``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.encoder = MaskedBiLSTM(dim, hidden)
        self.out_dim = 4 * hidden

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` frames, ``[B, N]`` bool mask -> ``[B, 4 * hidden]``."""
        lengths = mask.sum(dim=1)
        encoded = self.encoder(frames, lengths)
        weights = mask.unsqueeze(-1).float()
        count = weights.sum(dim=1).clamp(min=1.0)
        mean = (encoded * weights).sum(dim=1) / count
        var = ((encoded - mean.unsqueeze(1)) ** 2 * weights).sum(dim=1) / count
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)


class ECAPAPooling(nn.Module):
    """speechbrain's ECAPA-TDNN over the fused frames (padded frames zeroed).

    Args:
        dim: input size ``D``.
        channels: width ``C`` of the four TDNN blocks; the aggregation layer has ``3 C``
            (DASB: 1024; speechbrain's default 512). A multiple of ``res2net_scale`` (8).
        embedding: size of the utterance embedding (``lin_neurons``; DASB 192).
        attention_channels: width of the attentive statistics pooling (DASB 64 for
            IEMOCAP, 128 for VoxCeleb1).
        se_channels: squeeze-excitation width.
    """

    def __init__(
        self,
        dim: int,
        channels: int = 512,
        embedding: int = 192,
        attention_channels: int = 128,
        se_channels: int = 128,
    ) -> None:
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        if channels < 8 or channels % 8:
            raise ValueError(f"ecapa_channels must be a positive multiple of 8, got {channels!r}")
        self.ecapa = ECAPA_TDNN(
            input_size=dim,
            lin_neurons=embedding,
            channels=[channels] * 4 + [3 * channels],
            attention_channels=attention_channels,
            se_channels=se_channels,
        )
        self.out_dim = embedding

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` frames, ``[B, N]`` bool mask -> ``[B, embedding]``.

        ECAPA-TDNN takes relative lengths (valid frames / N), which its attentive pooling
        and squeeze-excitation use to ignore padding.
        """
        frames = frames * mask.unsqueeze(-1).to(frames.dtype)
        relative = mask.sum(dim=1).to(frames.dtype) / frames.shape[1]
        return self.ecapa(frames, relative).squeeze(1)


def build_utterance_encoder(
    head: str,
    dim: int,
    hidden: int = 128,
    ecapa_channels: int = 512,
    ecapa_embedding: int = 192,
    ecapa_attention: int = 128,
) -> BiLSTMPooling | ECAPAPooling:
    """The encoder a ``head`` task parameter names.

    Raises:
        ValueError: an unknown head name.
    """
    if head == "bilstm":
        return BiLSTMPooling(dim, hidden)
    if head == "ecapa":
        attention = ecapa_attention
        return ECAPAPooling(dim, ecapa_channels, ecapa_embedding, attention, attention)
    raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")

"""The downstream front end shared by every task head: embeddings, then layer fusion.

Discrete tokens ``[B, N, K]`` are embedded per codebook; a continuous reference's features
``[B, N, K, D_in]`` are normalised and projected per layer. Either way the ``K`` per-layer
vectors are then fused into one ``[B, N, D]`` frame by :class:`LayerFusion`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.api import TokenizerInfo
from benchmark.models.embeddings import MultiCodebookEmbedding
from benchmark.models.fusion import LayerFusion


class TokenFrontEnd(nn.Module):
    """``[B, N, K]`` tokens -> ``[B, N, D]`` fused frames (+ ``[B, N, K]`` layer weights).

    Args:
        codebook_sizes: ``C_k`` per codebook.
        dim: embedding and fused size ``D``.
        fusion: ``attention`` / ``average`` / ``concat`` / ``single``.
        fusion_layer: codebook index for ``single``.
        init: optional ``[K, C, D_init]`` embedding initialisation (centroids, codebooks).
    """

    def __init__(
        self,
        codebook_sizes: Sequence[int],
        dim: int,
        fusion: str = "attention",
        fusion_layer: int = 0,
        init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.embedding = MultiCodebookEmbedding(codebook_sizes, dim, init=init)
        self.fusion = LayerFusion(len(codebook_sizes), dim, mode=fusion, layer=fusion_layer)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embed and fuse; ``mask [B, N]`` is True on valid frames.

        The attention scorer sees nothing but embedding-table rows, so when the table has
        fewer rows than the batch has tokens, each row is scored once, the scores are
        gathered, and the weighted sum of rows is one ``embedding_bag`` (the ``[B, N, K, D]``
        embeddings are never built): the same numbers as scoring and summing every token
        (80-codebook dMel at 80 Hz has ~200 k tokens in a mini ASR batch against 1360 rows;
        ``scripts/bench_fusion.py`` measures both ways). Otherwise each token is scored.
        """
        rows = self.embedding.rows(tokens, mask)  # [B, N, K]
        table = self.embedding.table.weight  # [R, D]
        if self.fusion.mode != "attention" or rows.numel() <= table.shape[0]:
            return self.fusion(self.embedding.table(rows))
        weights = torch.softmax(self.fusion.score(table)[rows], dim=-1)  # [B, N, K]
        batch, frames, codebooks = rows.shape
        fused = F.embedding_bag(
            rows.reshape(-1, codebooks),
            table,
            per_sample_weights=weights.reshape(-1, codebooks),
            mode="sum",
        )
        return fused.view(batch, frames, -1), weights


class FeatureFrontEnd(nn.Module):
    """``[B, N, K, D_in]`` continuous features -> ``[B, N, D]`` fused frames (+ weights).

    Each layer gets its own LayerNorm and linear projection to ``D`` before fusion.
    """

    def __init__(
        self,
        num_layers: int,
        in_dim: int,
        dim: int,
        fusion: str = "attention",
        fusion_layer: int = 0,
    ) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(in_dim) for _ in range(num_layers))
        self.projections = nn.ModuleList(nn.Linear(in_dim, dim) for _ in range(num_layers))
        self.fusion = LayerFusion(num_layers, dim, mode=fusion, layer=fusion_layer)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Project each layer, zero the padded frames, fuse."""
        projected = torch.stack(
            [
                projection(norm(features[:, :, k]))
                for k, (norm, projection) in enumerate(
                    zip(self.norms, self.projections, strict=True)
                )
            ],
            dim=2,
        )
        return self.fusion(projected * mask[:, :, None, None])


def build_frontend(
    info: TokenizerInfo,
    dim: int,
    fusion: str = "attention",
    fusion_layer: int = 0,
    init: torch.Tensor | None = None,
) -> nn.Module:
    """The front end that fits a tokenizer: embeddings for tokens, projections for features."""
    if info.is_continuous:
        return FeatureFrontEnd(info.num_codebooks, int(info.feature_dim), dim, fusion, fusion_layer)
    return TokenFrontEnd(info.codebook_sizes, dim, fusion, fusion_layer, init)

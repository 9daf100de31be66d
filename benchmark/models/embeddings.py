"""Token embeddings for multi-codebook tokens: one table per codebook, stored as one table.

Codebook ``k``'s ids are shifted by ``offset_k = sum_{j<k} C_j`` into one shared table (the
shift is computed into a new tensor; the input is never modified). Each codebook also gets
one extra row used as padding / "absent", so a padding id never collides with a real token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MultiCodebookEmbedding(nn.Module):
    """Embed ``[B, N, K]`` tokens to ``[B, N, K, D]``.

    Args:
        codebook_sizes: ``C_k`` per codebook.
        dim: embedding size ``D``.
        init: ``[K, C, D_init]`` vectors (k-means centroids or codec codebooks) to initialise
            from; projected to ``D`` by a fixed random orthogonal map when ``D_init != D``.
            None for random initialisation.
    """

    def __init__(
        self, codebook_sizes: Sequence[int], dim: int, init: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.codebook_sizes = tuple(int(c) for c in codebook_sizes)
        sizes = torch.tensor(self.codebook_sizes, dtype=torch.int64)
        # each codebook owns C_k + 1 rows: its ids, then its padding row
        starts = torch.cumsum(sizes + 1, dim=0) - (sizes + 1)
        self.register_buffer("offsets", starts, persistent=False)
        self.register_buffer("pad_ids", sizes, persistent=False)
        self.table = nn.Embedding(int((sizes + 1).sum()), dim)
        nn.init.normal_(self.table.weight, std=dim**-0.5)
        if init is not None:
            self._init_from(init)

    @property
    def num_codebooks(self) -> int:
        """``K``."""
        return len(self.codebook_sizes)

    def _init_from(self, init: torch.Tensor) -> None:
        k, c, d_in = init.shape
        if k != self.num_codebooks or any(c != size for size in self.codebook_sizes):
            raise ValueError(
                f"embedding init of shape {tuple(init.shape)} does not match codebooks "
                f"{self.codebook_sizes}"
            )
        vectors = init.float()
        vectors = (vectors - vectors.mean(dim=1, keepdim=True)) / (
            vectors.std(dim=1, keepdim=True) + 1e-5
        )
        dim = self.table.embedding_dim
        if d_in != dim:
            generator = torch.Generator().manual_seed(0)
            projection = torch.linalg.qr(torch.randn(max(d_in, dim), dim, generator=generator))[0]
            vectors = vectors @ projection[:d_in] * (d_in / dim) ** 0.5
        with torch.no_grad():
            for index, size in enumerate(self.codebook_sizes):
                start = int(self.offsets[index])
                self.table.weight[start : start + size] = vectors[index] * dim**-0.5

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Look the tokens up.

        Args:
            tokens: ``[B, N, K]`` int64 ids.
            mask: ``[B, N]`` bool, True on valid frames; invalid frames use the padding row.

        Returns:
            ``[B, N, K, D]`` embeddings.
        """
        if tokens.ndim != 3 or tokens.shape[2] != self.num_codebooks:
            raise ValueError(
                f"expected tokens [B, N, {self.num_codebooks}], got {tuple(tokens.shape)}"
            )
        ids = tokens.long()
        if mask is not None:
            ids = torch.where(mask.unsqueeze(-1), ids, self.pad_ids)
        return self.table(ids + self.offsets)

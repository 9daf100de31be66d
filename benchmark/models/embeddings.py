"""Token embeddings for multi-codebook tokens: one table per codebook, stored as one table.

Codebook ``k``'s ids are shifted by ``offset_k = sum_{j<k} C_j`` into one shared table (the
shift is computed into a new tensor; the input is never modified). Each codebook also gets
one extra row used as padding / "absent", so a padding id never collides with a real token.

Ids are range-checked where they enter (one min/max per codebook per batch): an id equal to
``C_k`` would silently read the padding row and ``C_k + 1`` the next codebook's first row, so
either is a :class:`~benchmark.errors.ContractError` naming the codebook and the value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchmark.errors import ContractError


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

    def check_ids(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, absent_ok: bool = False
    ) -> None:
        """Raise unless every id of a valid frame lies in ``[0, C_k)`` (``[0, C_k]`` if absent_ok).

        Costs one min and one max per codebook over the batch and one device sync.

        Args:
            ids: ``[B, N, K]`` integer ids.
            mask: ``[B, N]`` bool, True on valid frames (only those are checked); None checks
                every frame.
            absent_ok: also accept ``C_k``, the padding / absent row (the vocoder's ids).

        Raises:
            ContractError: an id out of range (one line naming the codebook and the value).
        """
        if ids.numel() == 0:
            return
        if mask is not None:
            ids = torch.where(mask.unsqueeze(-1), ids, 0)
        low, high = ids.amin(dim=(0, 1)), ids.amax(dim=(0, 1))
        limit = self.pad_ids + int(absent_ok)
        bad = (low < 0) | (high >= limit)
        if not bool(bad.any()):
            return
        k = int(bad.nonzero()[0, 0])
        value = int(low[k]) if int(low[k]) < 0 else int(high[k])
        size = self.codebook_sizes[k]
        top = f"{size}]" if absent_ok else f"{size})"
        raise ContractError(
            f"codebook {k} holds token id {value}, outside its range [0, {top} (codebook_sizes "
            f"{list(self.codebook_sizes)}); the tokens do not match the tokenizer's metadata"
        )

    def rows(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None, absent_ok: bool = False
    ) -> torch.Tensor:
        """The table row of every token: ``[B, N, K]`` int64 (checked, shifted, padded).

        Args and errors as :meth:`forward`.
        """
        if tokens.ndim != 3 or tokens.shape[2] != self.num_codebooks:
            raise ValueError(
                f"expected tokens [B, N, {self.num_codebooks}], got {tuple(tokens.shape)}"
            )
        ids = tokens.long()
        self.check_ids(ids, mask, absent_ok)
        if mask is not None:
            ids = torch.where(mask.unsqueeze(-1), ids, self.pad_ids)
        return ids + self.offsets

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None, absent_ok: bool = False
    ) -> torch.Tensor:
        """Look the tokens up.

        Args:
            tokens: ``[B, N, K]`` int64 ids, ``0 <= id < C_k`` on valid frames.
            mask: ``[B, N]`` bool, True on valid frames; invalid frames use the padding row.
            absent_ok: accept the id ``C_k`` (the padding / absent row) in ``tokens``.

        Returns:
            ``[B, N, K, D]`` embeddings.

        Raises:
            ValueError: tokens not ``[B, N, K]``.
            ContractError: an id out of range on a valid frame (see :meth:`check_ids`).
        """
        return self.table(self.rows(tokens, mask, absent_ok))

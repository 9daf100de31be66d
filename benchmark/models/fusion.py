"""Fusing per-codebook embeddings into one vector per frame.

The informed layer selector (Mousavi et al., Interspeech 2024, eqs. 1-2): at every frame an
MLP scores each layer's embedding, a softmax over layers turns the scores into weights, and
the weighted sum is the fused frame. Alternatives for comparison: one fixed layer, the
uniform average, and concatenation (projected back to ``D``).
"""

from __future__ import annotations

import torch
from torch import nn

FUSIONS = ("attention", "average", "concat", "single")


class LayerFusion(nn.Module):
    """Fuse ``[B, N, K, D]`` into ``[B, N, D]``, keeping the last weights for inspection.

    Args:
        num_codebooks: ``K``.
        dim: ``D``.
        mode: ``attention`` (informed layer selector), ``average``, ``concat`` or ``single``.
        layer: the codebook used by ``single``.
        hidden: width of the scoring MLP of ``attention``.
    """

    def __init__(
        self, num_codebooks: int, dim: int, mode: str = "attention", layer: int = 0, hidden: int = 0
    ) -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"unknown fusion {mode!r}; choose one of {', '.join(FUSIONS)}")
        if mode == "single" and not 0 <= layer < num_codebooks:
            raise ValueError(f"fusion layer {layer} is outside 0..{num_codebooks - 1}")
        self.mode, self.layer, self.num_codebooks = mode, layer, num_codebooks
        if mode == "attention":
            hidden = hidden or dim
            self.scorer = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        elif mode == "concat":
            self.projection = nn.Linear(num_codebooks * dim, dim)

    def forward(self, embedded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fuse per-layer embeddings.

        Args:
            embedded: ``[B, N, K, D]``.

        Returns:
            ``fused [B, N, D]`` and the layer weights ``[B, N, K]`` (None for ``concat``).
        """
        if self.mode == "attention":
            weights = torch.softmax(self.score(embedded), dim=-1)  # [B, N, K]
            return (weights.unsqueeze(-1) * embedded).sum(dim=2), weights
        if self.mode == "average":
            weights = embedded.new_full(embedded.shape[:3], 1.0 / self.num_codebooks)
            return embedded.mean(dim=2), weights
        if self.mode == "single":
            weights = torch.zeros(embedded.shape[:3], device=embedded.device)
            weights[..., self.layer] = 1.0
            return embedded[:, :, self.layer], weights
        batch, frames = embedded.shape[:2]
        return self.projection(embedded.reshape(batch, frames, -1)), None

    def score(self, vectors: torch.Tensor) -> torch.Tensor:
        """``attention``: the scoring MLP's logit of each vector, ``[..., D] -> [...]``."""
        return self.scorer(vectors).squeeze(-1)


class LayerWeightMeter:
    """Averages the per-frame layer weights of a fusion over every valid frame it sees.

    The mean over a test set is what the record stores, so the leaderboard can draw which
    layers each task uses (the paper's per-task layer-weight figure).
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.frames = 0

    def add(self, weights: torch.Tensor | None, mask: torch.Tensor) -> None:
        """Accumulate ``weights [B, N, K]`` on the frames where ``mask [B, N]`` is True."""
        if weights is None:
            return
        summed = (weights * mask.unsqueeze(-1)).sum(dim=(0, 1)).detach().cpu()
        self.total = summed if self.total is None else self.total + summed
        self.frames += int(mask.sum())

    def mean(self) -> list[float] | None:
        """Mean weight per layer ``[K]`` (sums to 1), or None when the fusion has no weights."""
        if self.total is None:
            return None
        return (self.total / max(self.frames, 1)).tolist()

"""Per-layer k-means codebooks on a device, and nearest-centroid assignment of many layers at once.

One batched matrix product per chunk of frames scores every layer against its own codebook:
``scores[l, n, c] = ||c_l||^2 - 2 x_ln . c_l`` (``||x||^2`` is the same for every centroid),
with ``torch.baddbmm`` when all layers have the same ``C`` (one call for all layers), else one
``addmm`` per layer. That is the computation of
:func:`~benchmark.models.assign.assign_nearest_per_layer`, on the features' device.

**Near ties.** float32 products carry rounding errors of about ``1e-6`` of the distances,
and a different summation order (another BLAS, batch size or device) moves them, so when two
centroids are almost equally near, the float32 winner is a coin toss. Frames whose two best
float32 scores lie within ``REFINE_RTOL * (||x||^2 + max ||c||^2)`` of each other are scored
again in float64 against every centroid of their layer and take the float64 argmin. Tokens
are therefore the float64 nearest centroid (first index on an exact tie), which is what
scikit-learn's ``KMeans.predict`` returns for speechbrain's quantizers (it casts torch
features to float64), whatever the batch shape, and independent of float32 kernel details.
The refined share is small (see ``scripts/bench_ssl_encode.py``, which reports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Relative gap under which a frame's float32 winner is checked in float64.
REFINE_RTOL = 1e-4
#: Frames per matrix product (bounds the ``[L, n, C]`` score tensor).
CHUNK = 8192


class LayerCodebooks:
    """The centroids of ``L`` layers on one device, float32 for speed and float64 for ties.

    Args:
        centroids: one ``[C_l, D]`` float tensor per layer (same ``D``).
        device: where assignment runs (the features' device).
    """

    def __init__(self, centroids: Sequence[torch.Tensor], device: torch.device | str) -> None:
        if not centroids:
            raise ValueError("LayerCodebooks needs at least one codebook")
        self.c32 = [c.detach().to(device, torch.float32).contiguous() for c in centroids]
        self.sq32 = [(c * c).sum(dim=1) for c in self.c32]
        self.c64 = [c.double() for c in self.c32]
        self.sq64 = [(c * c).sum(dim=1) for c in self.c64]
        self.sizes = tuple(c.shape[0] for c in self.c32)
        self.stacked: tuple[torch.Tensor, torch.Tensor] | None = None
        if len(set(self.sizes)) == 1:
            self.stacked = (torch.stack(self.c32), torch.stack(self.sq32))
        #: frames re-scored in float64 so far (diagnostics).
        self.refined = 0
        #: frames assigned so far, per layer.
        self.assigned = 0

    def centroids(self) -> list[torch.Tensor]:
        """The ``[C_l, D]`` float32 centroids per layer, on the device."""
        return list(self.c32)

    def _pick(self, scores: torch.Tensor, frames: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """``[L', n]`` ids from float32 ``scores [L', n, C]``, near ties settled in float64."""
        if scores.shape[2] == 1:
            return torch.zeros(scores.shape[:2], dtype=torch.int64, device=scores.device)
        best = scores.topk(2, dim=2, largest=False)
        ids = best.indices[..., 0].clone()
        gap = best.values[..., 1] - best.values[..., 0]
        sq_max = torch.stack([self.sq32[layer].max() for layer in layers])
        unsure = gap <= REFINE_RTOL * (frames.pow(2).sum(dim=2) + sq_max.unsqueeze(1))
        for row, layer in enumerate(layers):
            rows = unsure[row].nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            x64 = frames[row, rows].double()
            exact = torch.addmm(self.sq64[layer].unsqueeze(0), x64, self.c64[layer].T, alpha=-2.0)
            ids[row, rows] = exact.argmin(dim=1)
            self.refined += int(rows.numel())
        return ids

    def assign(self, frames: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids of every layer's frames.

        Args:
            frames: ``[L, M, D]`` float frames, layer ``l`` for codebook ``l``, on the device.

        Returns:
            ``[M, L]`` int64 ids on the frames' device.
        """
        n_layers = len(self.c32)
        if (
            frames.ndim != 3
            or frames.shape[0] != n_layers
            or frames.shape[2] != self.c32[0].shape[1]
        ):
            raise ValueError(
                f"LayerCodebooks.assign: frames {tuple(frames.shape)} must be [L={n_layers}, M, "
                f"D={self.c32[0].shape[1]}]"
            )
        frames = frames.to(torch.float32)
        out = torch.empty(frames.shape[1], n_layers, dtype=torch.int64, device=frames.device)
        for start in range(0, frames.shape[1], CHUNK):
            block = frames[:, start : start + CHUNK]
            if self.stacked is not None:
                centroids, sq_norms = self.stacked
                scores = torch.baddbmm(
                    sq_norms.unsqueeze(1), block, centroids.transpose(1, 2), alpha=-2.0
                )
                ids = self._pick(scores, block, list(range(n_layers)))
            else:
                ids = torch.stack(
                    [
                        self._pick(
                            torch.addmm(
                                self.sq32[layer].unsqueeze(0),
                                block[layer],
                                self.c32[layer].T,
                                alpha=-2.0,
                            ).unsqueeze(0),
                            block[layer : layer + 1],
                            [layer],
                        )[0]
                        for layer in range(n_layers)
                    ]
                )
            out[start : start + block.shape[1]] = ids.T
        self.assigned += frames.shape[1]
        return out

"""Nearest-centroid assignment with matrix products, on whatever device the tensors live.

``argmin_c ||x - c||^2 = argmin_c (||c||^2 - 2 x.c)``: the ``||x||^2`` term is the same for
every centroid, so one matrix product per chunk of frames gives every assignment. Used by
k-means training and by the SSL tokenizers' encoding.
"""

from __future__ import annotations

import torch


def assign_nearest(
    features: torch.Tensor,
    centroids: torch.Tensor,
    centroid_sq_norms: torch.Tensor | None = None,
    chunk_size: int = 32768,
) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean distance) of every frame.

    Args:
        features: ``[N, D]`` float frames.
        centroids: ``[C, D]`` float centroids, same device as ``features``.
        centroid_sq_norms: ``[C]`` precomputed ``||c||^2`` (computed when None).
        chunk_size: frames per matrix product, bounding memory to ``chunk_size * C`` floats.

    Returns:
        ``[N]`` int64 centroid ids.
    """
    if features.ndim != 2 or centroids.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"assign_nearest: features {tuple(features.shape)} and centroids "
            f"{tuple(centroids.shape)} must be [N, D] and [C, D] with the same D"
        )
    centroids = centroids.to(features.dtype)
    if centroid_sq_norms is None:
        centroid_sq_norms = (centroids * centroids).sum(dim=1)
    out = torch.empty(features.shape[0], dtype=torch.int64, device=features.device)
    for start in range(0, features.shape[0], chunk_size):
        block = features[start : start + chunk_size]
        # distances up to a per-row constant: ||c||^2 - 2 x.c   -> [n, C]
        scores = torch.addmm(centroid_sq_norms.unsqueeze(0), block, centroids.T, alpha=-2.0)
        out[start : start + chunk_size] = scores.argmin(dim=1)
    return out


def assign_nearest_per_layer(
    features: torch.Tensor, centroids: torch.Tensor, centroid_sq_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Nearest centroid for several layers at once with one batched matrix product.

    Args:
        features: ``[L, N, D]`` frames of ``L`` layers.
        centroids: ``[L, C, D]`` one codebook per layer (same size ``C``).
        centroid_sq_norms: ``[L, C]`` precomputed squared norms, or None.

    Returns:
        ``[N, L]`` int64 ids, column ``l`` for layer ``l``.
    """
    if features.ndim != 3 or centroids.ndim != 3 or features.shape[0] != centroids.shape[0]:
        raise ValueError(
            f"assign_nearest_per_layer: features {tuple(features.shape)} and centroids "
            f"{tuple(centroids.shape)} must be [L, N, D] and [L, C, D]"
        )
    centroids = centroids.to(features.dtype)
    if centroid_sq_norms is None:
        centroid_sq_norms = (centroids * centroids).sum(dim=2)
    scores = torch.baddbmm(
        centroid_sq_norms.unsqueeze(1), features, centroids.transpose(1, 2), alpha=-2.0
    )  # [L, N, C]
    return scores.argmin(dim=2).T.contiguous()

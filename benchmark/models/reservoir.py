"""A bounded uniform sample of feature frames, for training k-means on a corpus of any size.

Tokenizers that fit k-means (:mod:`benchmark.tokenizers.discrete_ssl`,
:mod:`benchmark.tokenizers.kmeans_logmel`) stream every valid frame into a
:class:`FrameReservoir` and hand its :meth:`~FrameReservoir.chunks` to
:func:`benchmark.models.kmeans.fit_kmeans`, so memory stays ``capacity * D`` float32 however
long the corpus is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch


class FrameReservoir:
    """A uniform sample of at most ``capacity`` frames ``[D]``, in memory or in a file.

    Bottom-``capacity`` of i.i.d. uniform keys (reservoir sampling): while fewer frames than
    ``capacity`` have arrived it holds all of them, in arrival order; later frames replace the
    rows whose keys leave the bottom ``capacity``. Deterministic for a seed and a stream.

    Args:
        path: a ``.npy`` file to keep the sample in (memory-mapped float32, created or
            overwritten), or None for a preallocated tensor (pages are touched only as rows
            fill).
        capacity: most frames kept.
        dim: feature size ``D``.
        seed: seeds the keys.
        arrival_order: frames that replace evicted rows are written in arrival order; False
            writes them in key order (how :mod:`~benchmark.tokenizers.kmeans_logmel` has
            always filled its sample; the rows' order feeds k-means, so changing it would
            change that tokenizer's codebooks).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        capacity: int,
        dim: int,
        seed: int,
        arrival_order: bool = True,
    ) -> None:
        self.path = path
        self.capacity = capacity
        if path is None:
            self.data = torch.empty(capacity, dim)
        else:
            mapped = np.lib.format.open_memmap(path, "w+", np.float32, (capacity, dim))
            self.data = torch.from_numpy(mapped)
        self.keys = torch.full((capacity,), math.inf, dtype=torch.float64)
        self.filled = 0
        self.seen = 0
        self.arrival_order = arrival_order
        self._generator = torch.Generator().manual_seed(seed)

    def add(self, frames: torch.Tensor) -> None:
        """Offer ``[n, D]`` frames (any device) to the sample."""
        x = frames.detach().to("cpu", torch.float32)
        keys = torch.rand(x.shape[0], generator=self._generator, dtype=torch.float64)
        self.seen += x.shape[0]
        take = min(self.capacity - self.filled, x.shape[0])
        if take:
            self.data[self.filled : self.filled + take] = x[:take]
            self.keys[self.filled : self.filled + take] = keys[:take]
            self.filled += take
            x, keys = x[take:], keys[take:]
        if x.shape[0] == 0:
            return
        merged = torch.cat([self.keys, keys])
        chosen = torch.topk(merged, self.capacity, largest=False).indices  # by key
        new_rows = chosen[chosen >= self.capacity] - self.capacity
        if new_rows.numel() == 0:
            return
        if self.arrival_order:
            new_rows = new_rows.sort().values
        kept = torch.zeros(self.capacity, dtype=torch.bool)
        kept[chosen[chosen < self.capacity]] = True
        free = (~kept).nonzero().squeeze(1)
        self.data[free] = x[new_rows]
        self.keys[free] = keys[new_rows]

    def chunks(self, size: int = 65536) -> Iterator[torch.Tensor]:
        """``[n, D]`` float32 chunks of the sample, ``size`` rows at most (a fresh iterator)."""
        return (self.data[s : min(s + size, self.filled)] for s in range(0, self.filled, size))

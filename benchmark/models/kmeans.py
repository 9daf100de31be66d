"""Streaming k-means in torch, and the quantizer (codebook) it produces.

How :func:`fit_kmeans` trades exactness for memory
--------------------------------------------------
The features arrive as a re-iterable stream of ``[n, D]`` chunks; the whole ``[N, D]``
matrix is never held. Memory is ``O(S * D + C * D)`` for a reservoir of ``S`` frames and
``C`` centroids, plus one chunk.

1. **Scan** (one pass): validates every chunk (2-D, same ``D``, finite), counts the frames and
   keeps a uniform random sample of ``S`` frames (bottom-``S`` of random keys, i.e. reservoir
   sampling). ``S = init_size``, by default ``64 * C`` (at least ``3 * batch_size``).
2. **Seeding**: greedy k-means++ (each step draws several candidates by ``D^2`` sampling and
   keeps the one that lowers the potential most, as scikit-learn does) on the sample only.
   This is the one approximation: the seeding sees ``S`` frames, not ``N``. It matters: on
   100 000 synthetic 1024-d frames with K=1000, seeding on 30 000 / 64 000 / all frames ended
   at inertias of about 59.1 / 58.0 / 57.0; hence the default of 64 frames per centroid.
   Lloyd iterations on the sample alone were tried as a cheap warm start and left out: they
   overfit the sample and end in a worse local minimum.
3. **Exact streaming Lloyd passes**: each pass streams all frames once, assigns each to its
   nearest centroid with one matrix product per block (:func:`assign_nearest`), and
   accumulates per-centroid sums (float64) and counts; the new centroid is the exact mean.
   So every pass is exactly one Lloyd iteration over all ``N`` frames - no mini-batch noise -
   at ``O(C * D)`` memory. Passes stop when the relative decrease of the mean inertia falls
   below ``tol`` or after ``max_iter`` passes. A centroid that receives no frame is moved to
   the sample frame farthest from its nearest centroid (this never raises the inertia).

When the stream holds no more than ``S`` frames everything runs in memory and step 3 is plain
exact Lloyd on all the data. Each pass re-iterates the source, so it should be cheap to
re-read (cached features), not recomputed by a large model each time; each pass costs
``2 * N * C * D`` flops (one matrix product per block), on the GPU when ``device="cuda"``.
On CPU the result is deterministic for a given seed and chunking; on CUDA the per-centroid
sums use atomic adds, so the last bits may vary between runs.

The quantizer (:mod:`benchmark.models.quantizer`) is saved in our own format (``torch.save``
of a plain dict, loadable with ``weights_only=True``); :mod:`benchmark.models.sb_quantizers`
converts to and from the scikit-learn pickles that speechbrain releases. The settings and the
result types live in :mod:`benchmark.models.kmeans_config`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.errors import DataError
from benchmark.models.assign import assign_nearest
from benchmark.models.kmeans_config import KMeansConfig, KMeansConfigError, KMeansResult

log = logging.getLogger(__name__)

#: What :func:`fit_kmeans` accepts as features: a ``[N, D]`` tensor or array, a callable that
#: returns a fresh iterable of ``[n, D]`` chunks, or a re-iterable collection of chunks.
FeatureSource = Any

#: Bumped whenever the algorithm's output changes, so fitted caches keyed on it are redone.
ALGORITHM_VERSION = 2


def _as_stream(source: FeatureSource, batch_size: int) -> Callable[[], Iterator[Any]]:
    """Turns the accepted source kinds into a callable giving a fresh iterator of chunks."""
    if isinstance(source, torch.Tensor) or (
        hasattr(source, "__array__") and hasattr(source, "shape") and not callable(source)
    ):
        matrix = torch.as_tensor(source)
        if matrix.ndim != 2:
            raise DataError(
                f"k-means: features have shape {tuple(matrix.shape)}; expected [frames, dim]"
            )
        return lambda: (matrix[s : s + batch_size] for s in range(0, matrix.shape[0], batch_size))
    if callable(source):
        return lambda: iter(source())
    if isinstance(source, Iterator):
        raise KMeansConfigError(
            "k-means: the features are a one-shot iterator but k-means reads them several "
            "times; pass a callable that returns a fresh iterator, a list of chunks or a tensor"
        )
    if isinstance(source, Iterable):
        return lambda: iter(source)
    raise KMeansConfigError(
        f"k-means: cannot read features from {type(source).__name__}; pass a [N, D] tensor, "
        "a list of [n, D] chunks or a callable returning an iterable of chunks"
    )


def _chunks(
    stream: Callable[[], Iterator[Any]], dim: int | None, device: torch.device
) -> Iterator[torch.Tensor]:
    """Validated float32 ``[n, D]`` chunks on ``device``; empty chunks are skipped."""
    start = 0
    for index, chunk in enumerate(stream()):
        x = torch.as_tensor(chunk)
        if x.ndim != 2:
            raise DataError(
                f"k-means: chunk {index} has shape {tuple(x.shape)}; expected [frames, dim] "
                "(flatten batch and time first)"
            )
        if x.shape[0] == 0:
            continue
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise DataError(
                f"k-means: chunk {index} has dim {x.shape[1]} but the first chunk has {dim}; "
                "feed the features of one layer only"
            )
        x = x.to(device=device, dtype=torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise DataError(
                f"k-means: chunk {index} (frames {start}-{start + x.shape[0] - 1}) holds NaN or "
                "inf values; drop or repair those frames before training"
            )
        start += x.shape[0]
        yield x


def _scan(
    stream: Callable[[], Iterator[Any]],
    size: int,
    device: torch.device,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """One pass: validates and counts the frames and keeps a uniform sample of them.

    Returns:
        ``([min(size, N), D] sample on device, N)``. The sample keeps the ``size`` frames with
        the smallest random keys (bottom-k reservoir sampling), so memory is ``size * D``.
    """
    buffer: torch.Tensor | None = None
    keys = torch.full((size,), math.inf, dtype=torch.float64, device=device)
    n_frames = 0
    for x in _chunks(stream, None, device):
        if buffer is None:
            buffer = torch.empty(0, x.shape[1], device=device)
        new_keys = torch.rand(x.shape[0], generator=generator, dtype=torch.float64).to(device)
        merged = torch.cat([keys, new_keys])
        chosen = torch.topk(merged, size, largest=False, sorted=False).indices
        keep_old = torch.zeros(size, dtype=torch.bool, device=device)
        keep_old[chosen[chosen < size]] = True
        new_rows = chosen[chosen >= size] - size
        free = (~keep_old).nonzero().squeeze(1)[: new_rows.numel()]
        if free.numel() and int(free.max()) >= buffer.shape[0]:  # grow up to `size` rows
            rows = min(size, max(int(free.max()) + 1, 2 * buffer.shape[0]))
            buffer = torch.cat([buffer, buffer.new_empty(rows - buffer.shape[0], buffer.shape[1])])
        buffer[free] = x[new_rows]
        keys[free] = new_keys[new_rows]
        n_frames += x.shape[0]
    if buffer is None:
        raise DataError("k-means: the feature stream yielded no frames; give a non-empty source")
    return buffer[torch.isfinite(keys[: buffer.shape[0]])], n_frames


# --------------------------------------------------------------------------- seeding


def _kmeans_plusplus(
    x: torch.Tensor, k: int, trials: int, generator: torch.Generator, progress: bool
) -> torch.Tensor:
    """Greedy k-means++ seeding on the in-memory sample.

    Args:
        x: ``[S, D]`` float32 sample frames.
        k: centroids wanted (``k <= S``).
        trials: candidates drawn per step by ``D^2`` sampling; the one that lowers the
            potential (sum of squared distances to the nearest centre) most is kept.
        generator: CPU generator driving every random draw.
        progress: show a progress bar.

    Returns:
        ``[k, D]`` centroids, rows of ``x``.
    """
    n = x.shape[0]
    device = x.device
    sq = (x * x).sum(dim=1)
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    closest = (sq - 2.0 * (x @ x[first]) + sq[first]).clamp_(min=0)
    closest[first] = 0.0
    columns = torch.arange(trials, device=device)
    for _ in tqdm(range(1, k), desc="k-means++", disable=not progress, leave=False):
        cumulative = torch.cumsum(closest, dim=0, dtype=torch.float64)
        total = cumulative[-1]
        draws = torch.rand(trials, generator=generator, dtype=torch.float64).to(device)
        if bool(total <= 0):  # fewer distinct frames than centroids: fall back to uniform
            candidates = torch.randint(n, (trials,), generator=generator).to(device)
        else:
            candidates = torch.searchsorted(cumulative, draws * total).clamp_(max=n - 1)
        # squared distances of every frame to every candidate, capped by the current ones
        dist = torch.addmm(sq[candidates].unsqueeze(0), x, x[candidates].T, alpha=-2.0)
        dist.add_(sq.unsqueeze(1)).clamp_(min=0)  # [S, trials]
        torch.minimum(dist, closest.unsqueeze(1), out=dist)
        dist[candidates, columns] = 0.0
        best = int(dist.sum(dim=0, dtype=torch.float64).argmin())
        closest = dist[:, best].contiguous()
        chosen.append(int(candidates[best]))
    return x[torch.tensor(chosen, device=device)].clone()


# --------------------------------------------------------------------------- Lloyd


class _PassStats:
    """Per-centroid sums (float64) and counts accumulated over one pass."""

    def __init__(self, k: int, dim: int, device: torch.device) -> None:
        self.sums = torch.zeros(k, dim, dtype=torch.float64, device=device)
        self.counts = torch.zeros(k, dtype=torch.int64, device=device)
        self.sq_error = torch.zeros((), dtype=torch.float64, device=device)
        self.frames = 0

    def add(self, x: torch.Tensor, centroids: torch.Tensor, sq_norms: torch.Tensor, block: int):
        labels = assign_nearest(x, centroids, sq_norms, chunk_size=block)
        self.sq_error += (x - centroids[labels]).pow_(2).sum(dtype=torch.float64)
        if x.shape[0] >= centroids.shape[0]:  # float32 within the chunk, float64 across
            self.sums += torch.zeros_like(centroids).index_add_(0, labels, x)
        else:
            self.sums.index_add_(0, labels, x.double())
        self.counts += torch.bincount(labels, minlength=centroids.shape[0])
        self.frames += x.shape[0]

    @property
    def inertia(self) -> float:
        return float(self.sq_error) / max(self.frames, 1)


def _update(stats: _PassStats, centroids: torch.Tensor, sample: torch.Tensor, block: int):
    """New centroids = cluster means; empty clusters move to the farthest sample frames.

    Returns:
        ``(new centroids [C, D] float32, number of reseeded clusters)``.
    """
    filled = stats.counts > 0
    new = centroids.clone()
    new[filled] = (stats.sums[filled] / stats.counts[filled].unsqueeze(1)).float()
    empty = (~filled).nonzero().squeeze(1)
    if empty.numel() == 0:
        return new, 0
    keep = new[filled]
    labels = assign_nearest(sample, keep, chunk_size=block)
    far = (sample - keep[labels]).pow_(2).sum(dim=1)
    take = min(empty.numel(), sample.shape[0])
    new[empty[:take]] = sample[torch.topk(far, take).indices]
    log.debug("k-means: moved %d empty clusters to far frames", take)
    return new, take


def _lloyd(
    chunks: Callable[[], Iterable[torch.Tensor]],
    centroids: torch.Tensor,
    sample: torch.Tensor,
    cfg: KMeansConfig,
    n_frames: int,
) -> tuple[torch.Tensor, list[float], int, bool, torch.Tensor | None]:
    """Exact Lloyd iterations, each one streaming ``chunks()`` (``n_frames`` frames) once.

    Returns:
        ``(centroids, inertia history, reseeded, converged, counts of the last pass)``.
    """
    history: list[float] = []
    reseeded = 0
    counts = None
    bar = tqdm(range(cfg.max_iter), desc="k-means", disable=not cfg.progress, leave=False)
    for _ in bar:
        stats = _PassStats(centroids.shape[0], centroids.shape[1], centroids.device)
        sq_norms = (centroids * centroids).sum(dim=1)
        for x in chunks():
            stats.add(x, centroids, sq_norms, cfg.batch_size)
        if stats.frames != n_frames:
            raise DataError(
                f"k-means: the stream gave {stats.frames} frames in pass {len(history) + 1} but "
                f"{n_frames} in the first; the source must yield the same data every time"
            )
        history.append(stats.inertia)
        counts = stats.counts
        centroids, moved = _update(stats, centroids, sample, cfg.batch_size)
        reseeded += moved
        bar.set_postfix(inertia=f"{history[-1]:.5g}")
        if len(history) >= 2 and moved == 0:
            previous, current = history[-2], history[-1]
            if current <= 0 or (previous - current) <= cfg.tol * current:
                return centroids, history, reseeded, True, counts
    return centroids, history, reseeded, False, counts


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise KMeansConfigError(f"k-means: device={device!r} is not a torch device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise KMeansConfigError("k-means: device='cuda' but CUDA is not available; use 'cpu'")
    return resolved


def fit_kmeans(features: FeatureSource, config: KMeansConfig) -> KMeansResult:
    """Trains k-means on a stream of feature chunks (see the module docstring for the method).

    Args:
        features: a ``[N, D]`` tensor or array, a list of ``[n, D]`` chunks, or a callable
            returning a fresh iterable of ``[n, D]`` chunks (called once per pass; it must
            yield the same frames every time). Any float dtype; computed in float32.
        config: the settings.

    Returns:
        The centroids ``[C, D]`` (float32, CPU), mean inertia per frame and the pass history.

    Raises:
        DataError: empty stream, non-finite values, chunks of different dims, fewer frames
            than centroids, or a stream that changes between passes.
        KMeansConfigError: an unusable source or device.
    """
    started = time.perf_counter()
    cfg = config
    device = _resolve_device(cfg.device)
    stream = _as_stream(features, cfg.batch_size)
    generator = torch.Generator().manual_seed(cfg.seed)

    timings: dict[str, float] = {}
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = now - mark
        mark = now

    sample, n_frames = _scan(stream, cfg.sample_size, device, generator)
    lap("scan")
    k, dim = cfg.n_clusters, sample.shape[1]
    if n_frames < k:
        raise DataError(
            f"k-means: K={k} but only {n_frames} training frames; lower K or give more data"
        )
    log.info("k-means: K=%d on %d frames x %d dims, sample %d", k, n_frames, dim, len(sample))

    if cfg.init == "k-means++":
        centroids = _kmeans_plusplus(sample, k, cfg.local_trials, generator, cfg.progress)
    else:
        rows = torch.randperm(sample.shape[0], generator=generator)[:k].to(device)
        centroids = sample[rows].clone()
    lap("seeding")

    in_memory = sample.shape[0] == n_frames

    def sample_blocks() -> Iterator[torch.Tensor]:
        return (sample[s : s + cfg.batch_size] for s in range(0, len(sample), cfg.batch_size))

    def stream_blocks() -> Iterator[torch.Tensor]:
        return _chunks(stream, dim, device)

    blocks = sample_blocks if in_memory else stream_blocks
    centroids, history, reseeded, converged, counts = _lloyd(
        blocks, centroids, sample, cfg, n_frames
    )
    lap("passes")
    inertia = history[-1] if history else math.nan
    if cfg.evaluate_final or not history:
        stats = _PassStats(k, dim, device)
        sq_norms = (centroids * centroids).sum(dim=1)
        for x in blocks():
            stats.add(x, centroids, sq_norms, cfg.batch_size)
        inertia, counts = stats.inertia, stats.counts
        lap("final_eval")
    log.info(
        "k-means: %d passes, inertia %.6g, %s; seconds %s",
        len(history),
        inertia,
        "converged" if converged else "stopped at max_iter",
        {name: round(seconds, 2) for name, seconds in timings.items()},
    )
    return KMeansResult(
        centroids=centroids.float().cpu().contiguous(),
        inertia=inertia,
        n_iter=len(history),
        n_frames_seen=n_frames,
        history=history,
        cluster_sizes=None if counts is None else counts.cpu(),
        n_reseeded=reseeded,
        converged=converged,
        seconds=time.perf_counter() - started,
        timings=timings,
    )


from benchmark.models.quantizer import (  # noqa: E402  (re-exported: the codebook type)
    QUANTIZER_FORMAT,
    QUANTIZER_FORMAT_VERSION,
    KMeansQuantizer,
    QuantizerError,
)

__all__ = [
    "ALGORITHM_VERSION",
    "QUANTIZER_FORMAT",
    "QUANTIZER_FORMAT_VERSION",
    "KMeansConfig",
    "KMeansConfigError",
    "KMeansQuantizer",
    "KMeansResult",
    "QuantizerError",
    "fit_kmeans",
]

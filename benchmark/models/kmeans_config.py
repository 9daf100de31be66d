"""Settings and result of :func:`benchmark.models.kmeans.fit_kmeans`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from benchmark.errors import BenchmarkError


class KMeansConfigError(BenchmarkError, ValueError):
    """An invalid k-means setting (non-positive K, unknown init, one-shot iterator...)."""


@dataclass(frozen=True)
class KMeansConfig:
    """Settings of :func:`fit_kmeans`.

    Attributes:
        n_clusters: number of centroids ``C`` (the codebook size, e.g. 1000).
        seed: seeds the sampling and the seeding; same seed + same data -> same centroids on CPU.
        batch_size: frames per matrix product when assigning (memory ``batch_size * C`` floats).
        max_iter: maximum number of exact Lloyd passes over the whole stream.
        tol: stop the passes when the mean inertia decreases by less than this fraction.
        init: ``"k-means++"`` (greedy, on the sample) or ``"random"`` (sample frames).
        init_size: frames kept in the reservoir sample used for seeding and for re-seeding
            empty clusters (memory ``init_size * D`` floats); None means ``64 * C``, at least
            ``3 * batch_size`` (scikit-learn's seeding sample). At least ``3 * C`` are kept.
        n_init_candidates: candidates tried per greedy k-means++ step; None means
            ``2 + int(ln C)`` (scikit-learn's choice).
        device: ``"cpu"``, ``"cuda"``, ... ; None picks CUDA when available.
        progress: show tqdm progress bars.
        evaluate_final: spend one more pass to measure the exact inertia of the returned
            centroids (otherwise the last pass's inertia, an upper bound, is reported).
    """

    n_clusters: int
    seed: int = 0
    batch_size: int = 10000
    max_iter: int = 100
    tol: float = 1e-4
    init: str = "k-means++"
    init_size: int | None = None
    n_init_candidates: int | None = None
    device: str | None = None
    progress: bool = False
    evaluate_final: bool = False

    def __post_init__(self) -> None:
        positive = {"n_clusters": self.n_clusters, "batch_size": self.batch_size}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise KMeansConfigError(f"k-means: {name}={value!r} must be a positive integer")
        if not isinstance(self.max_iter, int) or self.max_iter < 0:
            raise KMeansConfigError(f"k-means: max_iter={self.max_iter!r} must be an int >= 0")
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 0):
            raise KMeansConfigError(f"k-means: tol={self.tol!r} must be a finite number >= 0")
        if self.init not in ("k-means++", "random"):
            raise KMeansConfigError(
                f"k-means: init={self.init!r} is unknown; use 'k-means++' or 'random'"
            )
        for name in ("init_size", "n_init_candidates"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise KMeansConfigError(f"k-means: {name}={value!r} must be None or an int >= 1")

    @property
    def sample_size(self) -> int:
        """Frames kept in the reservoir (see ``init_size``)."""
        default = max(64 * self.n_clusters, 3 * self.batch_size)
        return max(self.init_size or default, 3 * self.n_clusters)

    @property
    def local_trials(self) -> int:
        """Greedy k-means++ candidates per step."""
        return self.n_init_candidates or 2 + int(math.log(self.n_clusters))

    def to_dict(self) -> dict[str, Any]:
        """The settings that shape the result (no device, no progress switch)."""
        out = asdict(self)
        out.pop("device")
        out.pop("progress")
        return out


@dataclass
class KMeansResult:
    """What :func:`fit_kmeans` returns.

    Attributes:
        centroids: ``[C, D]`` float32 CPU centroids.
        inertia: mean squared Euclidean distance per frame (feature units squared) of all the
            frames to their nearest centroid: exact for ``centroids`` with
            ``evaluate_final=True``, else measured in the last pass (an upper bound).
        n_iter: exact Lloyd passes over the stream.
        n_frames_seen: frames in the stream (one pass).
        history: mean inertia measured in each pass, in order.
        cluster_sizes: ``[C]`` int64 frames assigned to each centroid in the last pass.
        n_reseeded: empty clusters moved to far frames, over the whole fit.
        converged: whether ``tol`` stopped the passes (False when ``max_iter`` did).
        seconds: wall time of the fit.
        timings: wall seconds of each stage (scan, seeding, passes, final_eval).
    """

    centroids: torch.Tensor
    inertia: float
    n_iter: int
    n_frames_seen: int
    history: list[float] = field(default_factory=list)
    cluster_sizes: torch.Tensor | None = None
    n_reseeded: int = 0
    converged: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- streams

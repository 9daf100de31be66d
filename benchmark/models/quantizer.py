"""The k-means codebook: nearest-centroid assignment, saving and loading.

Saved in our own format: ``torch.save`` of a plain dict (``format``, ``version``,
centroids, provenance), loadable with ``weights_only=True``, written atomically.
:mod:`benchmark.models.sb_quantizers` converts to and from speechbrain's scikit-learn files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from benchmark.errors import BenchmarkError, DataError
from benchmark.models.assign import assign_nearest
from benchmark.pipeline.store import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.models.kmeans import KMeansConfig, KMeansResult

QUANTIZER_FORMAT = "benchmark.kmeans_quantizer"
QUANTIZER_FORMAT_VERSION = 1


class QuantizerError(BenchmarkError):
    """A k-means quantizer file that is missing, malformed, or for another encoder/layer/K."""


class KMeansQuantizer:
    """A k-means codebook: maps ``[..., D]`` features to the index of the nearest centroid.

    Args:
        centroids: ``[C, D]`` float centroids (stored as float32 on CPU).
        provenance: JSON-like facts about how they were made (encoder, layer, data, ...).
    """

    def __init__(
        self, centroids: torch.Tensor, provenance: Mapping[str, Any] | None = None
    ) -> None:
        centroids = torch.as_tensor(centroids)
        if centroids.ndim != 2 or centroids.shape[0] < 1 or not centroids.is_floating_point():
            raise QuantizerError(
                f"k-means quantizer: centroids of shape {tuple(centroids.shape)} and dtype "
                f"{centroids.dtype}; expected a float [C, D] matrix"
            )
        if not bool(torch.isfinite(centroids).all()):
            raise QuantizerError("k-means quantizer: centroids hold NaN or inf values")
        self.centroids = centroids.detach().to("cpu", torch.float32).contiguous().clone()
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.provenance["n_clusters"] = self.n_clusters
        self.provenance["dim"] = self.dim
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_result(
        cls,
        result: KMeansResult,
        *,
        encoder: str | None = None,
        layer: int | None = None,
        data: str | None = None,
        config: KMeansConfig | None = None,
    ) -> KMeansQuantizer:
        """Wraps a :class:`KMeansResult` with its provenance (no timestamps: deterministic)."""
        provenance = {
            "encoder": encoder,
            "layer": layer,
            "data": data,
            "n_frames": result.n_frames_seen,
            "inertia": result.inertia,
            "n_iter": result.n_iter,
            "seed": None if config is None else config.seed,
            "config": None if config is None else config.to_dict(),
            "cluster_sizes": None
            if result.cluster_sizes is None
            else [int(c) for c in result.cluster_sizes],
            "source": "benchmark.models.kmeans.fit_kmeans",
        }
        return cls(result.centroids, provenance)

    @property
    def n_clusters(self) -> int:
        """Codebook size ``C``."""
        return self.centroids.shape[0]

    @property
    def dim(self) -> int:
        """Feature dimension ``D``."""
        return self.centroids.shape[1]

    @property
    def encoder(self) -> str | None:
        """Encoder the codebook was trained for (None when unknown)."""
        return self.provenance.get("encoder")

    @property
    def layer(self) -> int | None:
        """Encoder layer the codebook was trained for (None when unknown)."""
        return self.provenance.get("layer")

    def _centroids_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            c = self.centroids.to(device)
            self._on_device[device] = (c, (c * c).sum(dim=1))
        return self._on_device[device]

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids of every frame.

        Args:
            features: ``[..., D]`` float frames on any device (computed in float32).

        Returns:
            ``[...]`` int64 ids in ``[0, C)`` on the features' device.
        """
        features = torch.as_tensor(features)
        if features.ndim < 1 or features.shape[-1] != self.dim:
            raise DataError(
                f"k-means quantizer: features of shape {tuple(features.shape)} do not end with "
                f"the codebook dim {self.dim}"
            )
        flat = features.reshape(-1, self.dim).to(torch.float32)
        centroids, sq_norms = self._centroids_on(flat.device)
        return assign_nearest(flat, centroids, sq_norms).reshape(features.shape[:-1])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the quantizer atomically (temp file + rename); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": QUANTIZER_FORMAT,
            "version": QUANTIZER_FORMAT_VERSION,
            "centroids": self.centroids,
            "provenance": self.provenance,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expect_encoder: str | None = None,
        expect_layer: int | None = None,
        expect_n_clusters: int | None = None,
    ) -> KMeansQuantizer:
        """Reads a quantizer written by :meth:`save`, checking what it was trained for.

        Raises:
            QuantizerError: missing or malformed file, or encoder / layer / K other than
                expected.
        """
        path = Path(path)
        if not path.is_file():
            raise QuantizerError(f"k-means quantizer {path} does not exist; train or download it")
        try:
            with warnings.catch_warnings():  # a foreign pickle warns before it fails
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise QuantizerError(
                f"k-means quantizer {path} is not in our format ({type(exc).__name__}); for a "
                "speechbrain/scikit-learn file use sb_quantizers.import_sb_quantizer"
            ) from exc
        if (
            not isinstance(payload, dict)
            or payload.get("format") != QUANTIZER_FORMAT
            or not isinstance(payload.get("centroids"), torch.Tensor)
        ):
            raise QuantizerError(f"k-means quantizer {path} is not a {QUANTIZER_FORMAT} file")
        if payload.get("version") != QUANTIZER_FORMAT_VERSION:
            raise QuantizerError(
                f"k-means quantizer {path} has format version {payload.get('version')!r}; this "
                f"code reads version {QUANTIZER_FORMAT_VERSION}"
            )
        quantizer = cls(payload["centroids"], payload.get("provenance") or {})
        quantizer.check(expect_encoder, expect_layer, expect_n_clusters, where=str(path))
        return quantizer

    def check(
        self,
        expect_encoder: str | None = None,
        expect_layer: int | None = None,
        expect_n_clusters: int | None = None,
        where: str = "k-means quantizer",
    ) -> None:
        """Raises :class:`QuantizerError` unless the codebook is for that encoder/layer/K."""
        found = f"encoder={self.encoder!r} layer={self.layer!r} K={self.n_clusters}"
        expected = {"encoder": expect_encoder, "layer": expect_layer, "K": expect_n_clusters}
        actual = {"encoder": self.encoder, "layer": self.layer, "K": self.n_clusters}
        wrong = [name for name, value in expected.items() if value is not None]
        wrong = [name for name in wrong if actual[name] != expected[name]]
        if wrong:
            want = " ".join(f"{name}={expected[name]!r}" for name in wrong)
            raise QuantizerError(
                f"{where} was trained for {found} but {want} is expected; "
                "load the quantizer of that encoder and layer, or retrain it"
            )

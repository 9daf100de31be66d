"""Import and export of the k-means quantizers that speechbrain / DASB release.

speechbrain trains one scikit-learn ``MiniBatchKMeans`` per SSL layer and stores it with
``joblib.dump`` under ``<data>_<encoder>_k<K>_L<layer>.pt`` (e.g.
``LibriSpeech_wavlm_k1000_L7.pt``), where ``<encoder>`` is the lower-cased class name of the
SSL model (``wavlm``, ``hubert``, ``wav2vec2``). Its ``DiscreteSSL`` tokenizer ``joblib.load``s
the file, reads ``cluster_centers_`` and calls ``predict`` on float32 frames. This module
converts such files to :class:`~benchmark.models.kmeans.KMeansQuantizer` and back; the exported
estimator predicts exactly what our quantizer predicts.

``joblib.load`` unpickles arbitrary objects: import only files from a source you trust, as
speechbrain itself does.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import ContractError, MissingDependencyError
from benchmark.models.kmeans import KMeansQuantizer, QuantizerError
from benchmark.pipeline.store import atomic_path

_NAME = re.compile(r"^(?P<data>.+)_(?P<encoder>[^_]+)_k(?P<k>[0-9]+)_L(?P<layer>[0-9]+)\.pt$")


@dataclass(frozen=True)
class SBQuantizerName:
    """The parts of a speechbrain quantizer filename ``<data>_<encoder>_k<K>_L<layer>.pt``."""

    data: str
    encoder: str
    k: int
    layer: int


def sb_quantizer_filename(data: str, encoder: str, k: int, layer: int) -> str:
    """The speechbrain filename ``<data>_<encoder>_k<K>_L<layer>.pt``.

    Raises:
        QuantizerError: a part that would make the name ambiguous or unparsable (an encoder
            with ``_``, a path separator, an empty data name, negative K or layer).
    """
    bad = (
        not data
        or not encoder
        or "_" in encoder
        or any(sep in part for part in (data, encoder) for sep in ("/", "\\"))
        or not isinstance(k, int)
        or k < 1
        or not isinstance(layer, int)
        or layer < 0
    )
    if bad:
        raise QuantizerError(
            f"speechbrain quantizer name: data={data!r} encoder={encoder!r} k={k!r} "
            f"layer={layer!r} cannot form <data>_<encoder>_k<K>_L<layer>.pt; use a non-empty "
            "data name, an encoder without '_' and non-negative integers"
        )
    return f"{data}_{encoder}_k{k}_L{layer}.pt"


def parse_sb_quantizer_filename(name: str | os.PathLike[str]) -> SBQuantizerName:
    """Splits ``<data>_<encoder>_k<K>_L<layer>.pt`` (a bare name or a path) into its parts.

    Raises:
        QuantizerError: a name that does not follow the pattern.
    """
    base = Path(name).name
    match = _NAME.match(base)
    if match is None:
        raise QuantizerError(
            f"speechbrain quantizer name {base!r} does not match "
            "<data>_<encoder>_k<K>_L<layer>.pt (e.g. LibriSpeech_wavlm_k1000_L7.pt); rename it"
        )
    return SBQuantizerName(
        data=match["data"], encoder=match["encoder"], k=int(match["k"]), layer=int(match["layer"])
    )


def _sklearn() -> Any:
    try:
        import joblib
        from sklearn.cluster import MiniBatchKMeans
    except ImportError as exc:  # pragma: no cover - both are project dependencies
        raise MissingDependencyError(
            "speechbrain quantizers need scikit-learn and joblib; pip install scikit-learn joblib"
        ) from exc
    return joblib, MiniBatchKMeans


def import_sb_quantizer(
    path: str | os.PathLike[str],
    expect_encoder: str | None = None,
    expect_layer: int | None = None,
    expect_k: int | None = None,
) -> KMeansQuantizer:
    """Loads a speechbrain (joblib-pickled scikit-learn) k-means as a :class:`KMeansQuantizer`.

    Args:
        path: the ``.pt`` file. Its name gives the encoder, layer and K when it follows the
            speechbrain pattern; a renamed file is accepted when nothing is expected.
        expect_encoder: speechbrain encoder name the file must be for (e.g. ``"wavlm"``).
        expect_layer: layer the file must be for.
        expect_k: codebook size the file must have.

    Returns:
        The quantizer; its centroids are ``cluster_centers_`` as float32 ``[K, D]``.

    Raises:
        QuantizerError: missing/unreadable file, an object without ``cluster_centers_``, a name
            that disagrees with the content, or an encoder/layer/K other than expected.
    """
    path = Path(path)
    if not path.is_file():
        raise QuantizerError(f"speechbrain quantizer {path} does not exist; download it first")
    try:
        parsed: SBQuantizerName | None = parse_sb_quantizer_filename(path)
    except QuantizerError:
        if expect_encoder is not None or expect_layer is not None:
            raise
        parsed = None
    for label, found, wanted in (
        ("encoder", None if parsed is None else parsed.encoder, expect_encoder),
        ("layer", None if parsed is None else parsed.layer, expect_layer),
    ):
        if wanted is not None and found != wanted:
            raise QuantizerError(
                f"speechbrain quantizer {path.name} is for {label} {found!r} but {wanted!r} is "
                f"expected; pick the file named for {label} {wanted!r}"
            )
    joblib, _ = _sklearn()
    try:
        model = joblib.load(path)
    except Exception as exc:
        raise QuantizerError(
            f"speechbrain quantizer {path} cannot be unpickled ({type(exc).__name__}: {exc}); "
            "re-download it or check the scikit-learn version"
        ) from exc
    centers = getattr(model, "cluster_centers_", None)
    if centers is None:
        raise QuantizerError(
            f"speechbrain quantizer {path} holds a {type(model).__name__} without "
            "cluster_centers_; expected a fitted scikit-learn MiniBatchKMeans"
        )
    centers = np.asarray(centers)
    if centers.ndim != 2:
        raise QuantizerError(
            f"speechbrain quantizer {path}: cluster_centers_ has shape {centers.shape}; "
            "expected [K, D]"
        )
    k = centers.shape[0]
    if parsed is not None and parsed.k != k:
        raise QuantizerError(
            f"speechbrain quantizer {path.name} is named for K={parsed.k} but holds {k} centroids; "
            "the file is misnamed or corrupt"
        )
    if expect_k is not None and k != expect_k:
        raise QuantizerError(
            f"speechbrain quantizer {path.name} has K={k} but K={expect_k} is expected"
        )
    provenance = {
        "encoder": None if parsed is None else parsed.encoder,
        "layer": None if parsed is None else parsed.layer,
        "data": None if parsed is None else parsed.data,
        "n_frames": None,
        "inertia": None,
        "seed": _int_or_none(getattr(model, "random_state", None)),
        "config": None,
        "source": f"speechbrain:{path.name}",
        "sklearn_class": type(model).__name__,
        "sklearn_dtype": str(centers.dtype),
    }
    return KMeansQuantizer(np.ascontiguousarray(centers, dtype=np.float32), provenance)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_sklearn(quantizer: KMeansQuantizer) -> Any:
    """A fitted ``sklearn.cluster.MiniBatchKMeans`` whose ``predict`` matches ``quantizer``.

    It is fitted through scikit-learn's public ``fit`` on the centroids themselves (init at the
    centroids, one step, no reassignment), which sets every fitted attribute scikit-learn
    needs; then ``cluster_centers_`` is set to the exact float32 centroids (the step may move
    them by rounding), ``_counts`` to the training cluster sizes when known (so a later
    ``partial_fit`` continues with sensible learning rates) and ``inertia_`` to the training
    inertia (a sum, as scikit-learn reports it; NaN when unknown). A last check predicts the
    centroids with both implementations.
    """
    _, MiniBatchKMeans = _sklearn()
    centroids = quantizer.centroids.numpy().astype(np.float32, copy=True)
    k = quantizer.n_clusters
    seed = _int_or_none(quantizer.provenance.get("seed"))
    estimator = MiniBatchKMeans(
        n_clusters=k,
        init=centroids.copy(),
        n_init=1,
        max_iter=1,
        batch_size=k,
        tol=0.0,
        max_no_improvement=None,
        reassignment_ratio=0.0,
        compute_labels=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(centroids)
    del estimator.labels_  # labels of the centroids themselves: meaningless
    estimator.cluster_centers_ = centroids
    sizes = quantizer.provenance.get("cluster_sizes")
    if isinstance(sizes, list) and len(sizes) == k:
        estimator._counts = np.asarray(sizes, dtype=np.float32)
    n_frames, inertia = quantizer.provenance.get("n_frames"), quantizer.provenance.get("inertia")
    known = isinstance(n_frames, int) and isinstance(inertia, float)
    estimator.inertia_ = inertia * n_frames if known else float("nan")
    n_iter = quantizer.provenance.get("n_iter")
    if isinstance(n_iter, int):
        estimator.n_iter_ = n_iter
    if not np.array_equal(
        estimator.predict(centroids), quantizer.predict(quantizer.centroids).numpy()
    ):
        raise ContractError("speechbrain export: scikit-learn's predict disagrees with ours")
    return estimator


def export_sb_quantizer(
    quantizer: KMeansQuantizer,
    folder: str | os.PathLike[str],
    data: str,
    encoder: str,
    layer: int | None = None,
) -> Path:
    """Writes ``quantizer`` as speechbrain does: a joblib-dumped MiniBatchKMeans.

    Args:
        quantizer: the codebook to export.
        folder: where to write (created if missing).
        data: the training-data name in the filename (e.g. ``"LibriSpeech"``).
        encoder: speechbrain's encoder name (e.g. ``"wavlm"``).
        layer: the layer in the filename; defaults to the quantizer's recorded layer.

    Returns:
        The path ``folder/<data>_<encoder>_k<K>_L<layer>.pt``, written atomically.

    Raises:
        QuantizerError: no layer given or recorded, or parts that cannot form the name.
    """
    layer = quantizer.layer if layer is None else layer
    if layer is None:
        raise QuantizerError(
            "speechbrain export: the quantizer records no layer; pass layer= to name the file"
        )
    name = sb_quantizer_filename(data, encoder, quantizer.n_clusters, layer)
    joblib, _ = _sklearn()
    estimator = to_sklearn(quantizer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with atomic_path(target) as tmp:
        joblib.dump(estimator, tmp)
    return target

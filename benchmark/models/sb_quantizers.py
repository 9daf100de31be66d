"""Import and export of the k-means quantizers that speechbrain / DASB release.

speechbrain trains one scikit-learn ``MiniBatchKMeans`` per SSL layer and stores it with
``joblib.dump`` under ``<data>_<encoder>_k<K>_L<layer>.pt`` (e.g.
``LibriSpeech_wavlm_k1000_L7.pt``), where ``<encoder>`` is the lower-cased class name of the
SSL model (``wavlm``, ``hubert``, ``wav2vec2``). Its ``DiscreteSSL`` tokenizer ``joblib.load``s
the file, reads ``cluster_centers_`` and calls ``predict`` on the SSL features as a float32
*torch tensor*; scikit-learn's input validation does not recognise a torch dtype and converts
the tensor to float64, so ``cluster_centers_`` must be float64 (as in the released files,
which were fitted on such tensors), or ``predict`` raises "Buffer dtype mismatch". This module
converts such files to :class:`~benchmark.models.kmeans.KMeansQuantizer` and back; the
exported estimator holds float64 centres (our float32 centroids, exactly) and predicts what
our quantizer predicts.

Importing released files into a tokenizer (:func:`import_sb_quantizers`, the
``kmeans_import: {speechbrain: FOLDER}`` parameter of
:class:`~benchmark.tokenizers.discrete_ssl.DiscreteSSLTokenizer`): speechbrain names a file
only by the encoder *family* (``wavlm``), not by the exact weights, so an imported codebook
is accepted for the family, layer and K its name gives and the dimension of its centres; its
file name and sha256 are kept in the quantizer's provenance (``imported``) and in the
tokenizer's fingerprint.

``joblib.load`` unpickles arbitrary objects: import only files from a source you trust, as
speechbrain itself does.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
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
        The quantizer; its centroids are ``cluster_centers_`` as float32 ``[K, D]``, its
        provenance records ``imported = {format, file, sha256, data}`` and the file's encoder
        name (the family, e.g. ``wavlm``) as ``encoder``.

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
        "imported": {
            "format": "speechbrain",
            "file": path.name,
            "sha256": _sha256(path),
            "data": None if parsed is None else parsed.data,
        },
    }
    return KMeansQuantizer(np.ascontiguousarray(centers, dtype=np.float32), provenance)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_sklearn(quantizer: KMeansQuantizer, center_dtype: str = "float64") -> Any:
    """A fitted ``sklearn.cluster.MiniBatchKMeans`` whose ``predict`` matches ``quantizer``.

    It is fitted through scikit-learn's public ``fit`` on the centroids themselves (init at the
    centroids, one step, no reassignment), in float64, which sets every fitted attribute
    scikit-learn needs; then ``cluster_centers_`` is set to the exact centroids as float64
    (the step may move them by rounding), ``_counts`` to the training cluster sizes when known
    (so a later ``partial_fit`` continues with sensible learning rates) and ``inertia_`` to the
    training inertia (a sum, as scikit-learn reports it; NaN when unknown). Float64 centres are
    what speechbrain's ``DiscreteSSL.encode`` needs: it hands ``predict`` a torch tensor, which
    scikit-learn converts to float64 (a float32 numpy array would then be refused, as by the
    released files). ``center_dtype="float32"`` suits speechbrain's ``MiniBatchKMeansSklearn``
    wrapper instead, which predicts on float32 numpy arrays. A last check predicts the
    centroids with both implementations.

    Raises:
        QuantizerError: a ``center_dtype`` other than ``float64`` / ``float32``.
    """
    if center_dtype not in ("float64", "float32"):
        raise QuantizerError(
            f"speechbrain export: center_dtype must be 'float64' or 'float32', got {center_dtype!r}"
        )
    _, MiniBatchKMeans = _sklearn()
    centroids = quantizer.centroids.numpy().astype(center_dtype, copy=True)
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
        estimator._counts = np.asarray(sizes, dtype=centroids.dtype)
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
    center_dtype: str = "float64",
) -> Path:
    """Writes ``quantizer`` as speechbrain does: a joblib-dumped MiniBatchKMeans.

    Args:
        quantizer: the codebook to export.
        folder: where to write (created if missing).
        data: the training-data name in the filename (e.g. ``"LibriSpeech"``).
        encoder: speechbrain's encoder name (e.g. ``"wavlm"``).
        layer: the layer in the filename; defaults to the quantizer's recorded layer.
        center_dtype: ``float64`` (default: what ``DiscreteSSL.encode`` and the released files
            need) or ``float32`` (speechbrain's ``MiniBatchKMeansSklearn`` wrapper, which
            predicts on float32 numpy arrays); see :func:`to_sklearn`.

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
    estimator = to_sklearn(quantizer, center_dtype)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with atomic_path(target) as tmp:
        joblib.dump(estimator, tmp)
    return target


def find_sb_quantizer(
    folder: str | os.PathLike[str], encoder: str, layer: int, k: int, data: str | None = None
) -> Path:
    """The released file ``<data>_<encoder>_k<K>_L<layer>.pt`` in ``folder`` or ``folder/kmeans``.

    ``folder`` is a snapshot of a speechbrain repository that releases k-means (e.g.
    ``speechbrain/hifigan-wavlm-k1000-LibriTTS``, whose ``kmeans/`` holds
    ``LibriSpeech_wavlm_k1000_L<layer>.pt``) or a folder of such files.

    Args:
        folder: where to look.
        encoder: speechbrain's encoder name (our family: ``wavlm``, ``hubert``, ``wav2vec2``).
        layer: SSL layer.
        k: codebook size.
        data: the training-data part of the name; None accepts any when only one matches.

    Raises:
        QuantizerError: no such file, or files for several datasets and no ``data`` (names them).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise QuantizerError(
            f"speechbrain k-means folder {root} does not exist; download the released files "
            "(e.g. huggingface-cli download speechbrain/hifigan-wavlm-k1000-LibriTTS "
            "--local-dir DIR) and point kmeans_import at DIR"
        )
    found: list[Path] = []
    for place in (root, root / "kmeans"):
        for path in sorted(place.glob(f"*_{encoder}_k{k}_L{layer}.pt")):
            try:
                parsed = parse_sb_quantizer_filename(path)
            except QuantizerError:
                continue
            if (parsed.encoder, parsed.k, parsed.layer) == (encoder, k, layer) and (
                data is None or parsed.data == data
            ):
                found.append(path)
    name = sb_quantizer_filename(data or "<data>", encoder, k, layer)
    if not found:
        raise QuantizerError(
            f"no speechbrain k-means {name} in {root} or {root / 'kmeans'}; download the file "
            f"for encoder {encoder!r}, layer {layer}, K={k}, or change the tokenizer's layers/K"
        )
    if len(found) > 1:
        datasets = sorted({parse_sb_quantizer_filename(p).data for p in found})
        raise QuantizerError(
            f"several speechbrain k-means match {name} in {root} (data {datasets}); pick one "
            "with kmeans_import: {speechbrain: FOLDER, data: NAME}"
        )
    return found[0]


def import_sb_quantizers(
    spec: Mapping[str, Any], encoder: str, layers: Sequence[int], ks: Sequence[int]
) -> list[KMeansQuantizer]:
    """The released codebooks a card's ``kmeans_import`` names, one per layer.

    Args:
        spec: ``{"speechbrain": FOLDER}`` or ``{"speechbrain": FOLDER, "data": NAME}``.
        encoder: speechbrain's encoder name (our family).
        layers: SSL layers, one codebook each.
        ks: codebook size per layer.

    Returns:
        One :class:`KMeansQuantizer` per layer, in ``layers`` order (see
        :func:`import_sb_quantizer` for their provenance).

    Raises:
        QuantizerError: a malformed spec, a missing file, or a file that disagrees with its
            name (one line each).
    """
    if (
        not isinstance(spec, Mapping)
        or "speechbrain" not in spec
        or set(spec) - {"speechbrain", "data"}
        or not isinstance(spec["speechbrain"], str | os.PathLike)
        or not isinstance(spec.get("data", ""), str)
    ):
        raise QuantizerError(
            f"kmeans_import must be {{speechbrain: FOLDER}} or {{speechbrain: FOLDER, data: "
            f"NAME}}, got {spec!r}"
        )
    folder, data = spec["speechbrain"], spec.get("data")
    return [
        import_sb_quantizer(
            find_sb_quantizer(folder, encoder, layer, k, data),
            expect_encoder=encoder,
            expect_layer=layer,
            expect_k=k,
        )
        for layer, k in zip(layers, ks, strict=True)
    ]

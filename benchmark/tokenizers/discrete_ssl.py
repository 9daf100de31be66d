"""Discrete SSL tokens: one k-means per layer of WavLM / HuBERT / wav2vec 2.0 (Mousavi et al. 2024).

``DiscreteSSLTokenizer`` quantises ``K`` transformer layers of a self-supervised encoder, each
with its own k-means codebook, into ``K`` token streams at 50 Hz (the paper: WavLM-large or
HuBERT-large, layers 3, 7, 12, 18, 23, 1000 centroids each).

Fitting (``needs_fit``): the harness hands :meth:`~DiscreteSSLTokenizer.fit` the audio of the
corpus split named by ``kmeans_data`` (``{"corpus", "subset", "split"}``: in-domain, e.g. the
task's own ``asr`` train split, or out-of-domain, e.g. LibriSpeech 960 h in ``full`` and the
``ood`` subset in ``mini``). One forward pass per batch extracts every requested layer; each
layer's valid frames go to a bounded uniform reservoir (``kmeans_max_frames`` rows) kept in a
memory-mapped file, so memory never holds the corpus's feature matrix. Then
:func:`~benchmark.models.kmeans.fit_kmeans` trains one codebook per layer on its reservoir
(exact streaming Lloyd passes), and each is saved as ``kmeans_L<layer>_k<K>.pt`` with its
provenance (encoder id and revision, layer, K, data name, frames).

Released codebooks (``kmeans_import``): instead of fitting, the tokenizer can use the k-means
files that speechbrain / DASB release (``{speechbrain: FOLDER}``, optionally ``data: NAME``;
``FOLDER`` or ``FOLDER/kmeans`` holds ``<data>_<family>_k<K>_L<layer>.pt``, see
:mod:`benchmark.models.sb_quantizers`). Then ``needs_fit`` is False, each codebook is accepted
for the family, layer and K its file names (speechbrain does not record the exact weights;
the centres' dimension must match the encoder's), and the files' names and sha256 are in the
quantizers' provenance and in :meth:`~DiscreteSSLTokenizer.state_fingerprint`.

Encoding: :class:`~benchmark.models.ssl_features.SSLLayerExtractor` runs the encoder only up
to the deepest requested layer on the padded batch with an attention mask (see its module for
normalisation, the short-clip rule - clips under 400 samples are zero-padded to 400 and give
one frame - and group-norm front ends), on CUDA when the context's device is, and every
layer's valid frames are assigned to their nearest centroid with batched matrix products on
that device (:class:`~benchmark.models.ssl_codebooks.LayerCodebooks`: float32 products, near
ties settled in float64, so tokens do not depend on batch shape or BLAS).

Weights: the context's card weights (``{hub, revision}`` or ``{path}``), or in the ``mini``
preset a tiny encoder of the same architecture made under ``workdir/models`` and loaded through
the same path route (:mod:`benchmark.models.ssl_mini`): ``tiny_model: pretrained`` (the mini
cards' default) is pretrained on the mini corpus by the ``pretrain`` step of the harness's
graph (:meth:`~DiscreteSSLTokenizer.pretrain_spec` declares it, the step calls
:meth:`~DiscreteSSLTokenizer.pretrain`, and :meth:`~DiscreteSSLTokenizer.load_pretrained`
opens its folder; building the tokenizer trains nothing), ``tiny_model: random`` (or
``true``) keeps it randomly initialised, for comparison. Its label ("pretrained by the harness
on mini, N steps") is the info's ``model_label`` and part of
:meth:`~DiscreteSSLTokenizer.state_fingerprint`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.api import BuildContext, FitData, Tokenizer, TokenizerInfo
from benchmark.data.manifest import Manifest
from benchmark.errors import BenchmarkError, DataError
from benchmark.models.kmeans import ALGORITHM_VERSION as KMEANS_ALGORITHM_VERSION
from benchmark.models.kmeans import KMeansConfig, KMeansQuantizer, QuantizerError, fit_kmeans
from benchmark.models.reservoir import FrameReservoir
from benchmark.models.sb_quantizers import import_sb_quantizers
from benchmark.models.ssl_codebooks import LayerCodebooks
from benchmark.models.ssl_features import DTYPES, SSLConfigError, SSLLayerExtractor
from benchmark.models.ssl_loading import FAMILIES, SSLModelInfo
from benchmark.models.ssl_mini import TinyOrigin
from benchmark.models.ssl_tiny_encoder import TinyEncoder
from benchmark.tokenizers.ssl_params import (
    architecture_depth,
    check_clusters_budget,
    check_fit_frames,
    check_layer_range,
    clusters_param,
    data_param,
    layers_param,
)

log = logging.getLogger(__name__)

#: Bump when a change here changes tokens without changing the card or the weights.
TOKENIZER_VERSION = 1


def quantizer_filename(layer: int, n_clusters: int) -> str:
    """File name of one layer's codebook in a fit folder: ``kmeans_L<layer>_k<K>.pt``."""
    return f"kmeans_L{layer}_k{n_clusters}.pt"


class DiscreteSSLTokenizer(Tokenizer):
    """K-means tokens of several layers of a WavLM / HuBERT / wav2vec 2.0 encoder.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        layers: 1-based transformer layers to quantise, one codebook each (e.g. 3, 7, 12, 18,
            23); each must lie in ``1..num_hidden_layers`` of the model.
        num_clusters: centroids per codebook ``C``, one int for all layers or one per layer.
        kmeans_data: the corpus split k-means is trained on, ``{"corpus", "subset",
            "split"}`` (default ``mini/ood/train``).
        kmeans_max_frames: frames sampled uniformly per layer for k-means (reservoir size).
        kmeans_seed: seed of the reservoir and of k-means.
        kmeans_max_iter: maximum exact Lloyd passes.
        dtype: ``fp32`` (default) or ``bf16`` (autocast forward; measured agreement with fp32
            is reported by ``scripts/bench_ssl_encode.py``).
        tiny_model: false to load ``context.weights``; ``pretrained`` for the mini preset's
            tiny encoder pretrained by the harness on mini (opened by
            :meth:`load_pretrained`), ``random`` (or true) for the same architecture randomly
            initialised.
        pretrain: overrides of the pretraining settings
            (:class:`~benchmark.models.ssl_pretrain.PretrainConfig` fields and ``seed``);
            only with ``tiny_model: pretrained``.
        normalize_wav: normalise each waveform; None follows the model's preprocessor config.
        vocoder: ``{path: vocoder.pt}`` or ``{speechbrain: FOLDER}`` to decode with; None
            (default) makes the tokenizer encode-only.
        kmeans_import: ``{speechbrain: FOLDER}`` (optionally with ``data: NAME``) to use the
            released speechbrain / DASB k-means files of ``FOLDER`` (or ``FOLDER/kmeans``)
            instead of fitting; None (default) fits k-means on ``kmeans_data``.
        name: registry name.
        context: the harness's build context (device, workdir, weights).

    Raises:
        SSLConfigError: an unusable parameter (one line).
        WeightsUnavailableError: weights that cannot be loaded (one line).
        QuantizerError: ``kmeans_import`` files that are missing or do not fit the encoder.
    """

    needs_fit = True

    def __init__(
        self,
        family: str = "wavlm",
        layers: Sequence[int] = (3, 7, 12, 18, 23),
        num_clusters: int | Sequence[int] = 1000,
        kmeans_data: Mapping[str, str] | None = None,
        kmeans_max_frames: int = 500_000,
        kmeans_seed: int = 0,
        kmeans_max_iter: int = 100,
        dtype: str = "fp32",
        tiny_model: bool | str = False,
        normalize_wav: bool | None = None,
        vocoder: Mapping[str, str] | None = None,
        kmeans_import: Mapping[str, str] | None = None,
        pretrain: Mapping[str, Any] | None = None,
        name: str = "discrete-ssl",
        context: BuildContext | None = None,
    ) -> None:
        context = context or BuildContext()
        if family not in FAMILIES:
            raise SSLConfigError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
        if dtype not in DTYPES:
            raise SSLConfigError(f"dtype {dtype!r} is not supported; choose one of {DTYPES}")
        for label, value, low in (
            ("kmeans_max_frames", kmeans_max_frames, 1),
            ("kmeans_seed", kmeans_seed, 0),
            ("kmeans_max_iter", kmeans_max_iter, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SSLConfigError(f"{label} must be an int >= {low}, got {value!r}")
        self.family = family
        self.layers = layers_param(layers)
        self.num_clusters = clusters_param(num_clusters, self.layers)
        self.kmeans_data = data_param(kmeans_data)
        depth, model = architecture_depth(family, tiny_model, context.weights)
        check_layer_range(self.layers, depth, model)
        if kmeans_import is None:
            check_clusters_budget(self.num_clusters, kmeans_max_frames)
        self.kmeans_max_frames = kmeans_max_frames
        self.kmeans_seed = kmeans_seed
        self.kmeans_max_iter = kmeans_max_iter
        self.dtype = dtype
        self.progress = context.progress
        self.encoder = TinyEncoder(
            family, self.layers, tiny_model, context, dtype, normalize_wav, pretrain
        )
        self.tiny_model = self.origin is not None
        self.codebooks: LayerCodebooks | None = None
        #: provenance of each layer's codebook (fitted or imported), in ``layers`` order
        self.quantizer_provenance: list[dict[str, Any]] = []
        geometry = self.encoder.geometry()
        self.info = TokenizerInfo(
            name=name,
            sample_rate=geometry["sample_rate"],
            frame_rate=geometry["sample_rate"] / geometry["hop"],
            codebook_sizes=self.num_clusters,
            can_decode=vocoder is not None,
            layers=self.layers,
            model_label=self.origin.label if self.origin is not None else None,
        )
        self.vocoder_spec = dict(vocoder) if vocoder else None
        self._vocoder: Any = None
        self._device = str(context.device or "cpu")
        self.kmeans_import = dict(kmeans_import) if kmeans_import is not None else None
        self.needs_fit = self.kmeans_import is None
        if self.kmeans_import is not None:
            if not self.encoder.loaded:
                raise SSLConfigError("kmeans_import needs card weights, not tiny_model: pretrained")
            self.set_quantizers(
                import_sb_quantizers(self.kmeans_import, family, self.layers, self.num_clusters)
            )

    @property
    def extractor(self) -> SSLLayerExtractor:
        """The open encoder (raises ``PretrainNotRunError`` before a pretrained one is loaded)."""
        return self.encoder.extractor

    @property
    def model(self) -> torch.nn.Module:
        """The transformers encoder."""
        return self.extractor.model

    @property
    def model_info(self) -> SSLModelInfo:
        """What was loaded (weights identity, geometry)."""
        return self.extractor.info

    @property
    def origin(self) -> TinyOrigin | None:
        """Which tiny encoder (None for card weights)."""
        return self.encoder.origin

    # ------------------------------------------------------------------ pretraining

    def pretrain_spec(self) -> Mapping[str, Any] | None:
        """For ``tiny_model: pretrained``: the pretraining the harness must run first."""
        return self.encoder.pretrain_spec()

    def pretrain(self, data: Mapping[str, Manifest], out_dir: Path) -> dict[str, Any]:
        """Pretrain the tiny encoder on ``data`` (``pretrain_spec()["data"]`` by name) into
        ``out_dir``; returns the summary that records carry."""
        return self.encoder.pretrain(data, out_dir)

    def load_pretrained(self, folder: Path) -> None:
        """Open the encoder the pretrain step saved in ``folder`` (before ``load_fitted``)."""
        self.encoder.load(folder)

    # ------------------------------------------------------------------ fitting

    def fit_data_spec(self) -> Mapping[str, Any]:
        """The k-means training split ``{"corpus", "subset", "split"}``."""
        return dict(self.kmeans_data)

    def _valid_frames(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[L, M, D]`` features of the batch's valid frames (M summed over items)."""
        features, frames = self.extractor(wav, lengths)
        valid = torch.arange(features.shape[2]).unsqueeze(0) < frames.unsqueeze(1)
        return features[:, valid.to(features.device)]

    def check_fit_data(self, manifest: Manifest) -> None:
        """Refuse, before any extraction, fit data with fewer frames than ``num_clusters``.

        Raises:
            SSLConfigError: the largest K exceeds the frames the manifest can give.
        """
        if self.needs_fit:
            durations = [u.duration for u in manifest]
            name = str(manifest.source or "the k-means data")
            check_fit_frames(self.num_clusters, durations, self.info.frame_rate, name)

    def fit(self, data: FitData, out_dir: Path) -> None:
        """Train one k-means per layer on ``data`` and save the codebooks under ``out_dir``.

        Raises:
            DataError: no audio, or fewer frames than ``K`` (the k-means error).
        """
        out_dir = Path(out_dir)
        scratch = out_dir / "_features"
        scratch.mkdir(parents=True, exist_ok=True)
        dim = self.model_info.hidden_size
        try:
            reservoirs = [
                FrameReservoir(
                    scratch / f"L{layer}.npy",
                    capacity=self.kmeans_max_frames,
                    dim=dim,
                    seed=self.kmeans_seed + 1000 * layer,
                )
                for layer in self.layers
            ]
            bar = tqdm(
                data,
                total=None,
                desc=f"k-means features {self.info.name}",
                unit="batch",
                disable=not self.progress,
                leave=False,
            )
            for batch in bar:
                wav, lengths = batch[-2], batch[-1]  # (ids, wav, lengths) or (wav, lengths)
                valid = self._valid_frames(wav, lengths)
                for reservoir, layer_frames in zip(reservoirs, valid, strict=True):
                    reservoir.add(layer_frames)
            if reservoirs[0].seen == 0:
                raise DataError(f"k-means data {data.name!r} holds no audio frames")
            summary = self._train(reservoirs, data.name, out_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (out_dir / "fit.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def _train(self, reservoirs: list[FrameReservoir], data_name: str, out_dir: Path) -> dict:
        info = self.model_info
        summary: dict[str, Any] = {"encoder": info.encoder_id, "data": data_name, "layers": {}}
        for layer, k, reservoir in zip(self.layers, self.num_clusters, reservoirs, strict=True):
            config = KMeansConfig(
                n_clusters=k,
                seed=self.kmeans_seed,
                max_iter=self.kmeans_max_iter,
                device=str(self.extractor.device),
                progress=self.progress,
            )
            log.info("k-means layer %d: K=%d on %d frames", layer, k, reservoir.filled)
            result = fit_kmeans(reservoir.chunks, config)
            quantizer = KMeansQuantizer.from_result(
                result, encoder=info.encoder_id, layer=layer, data=data_name, config=config
            )
            quantizer.provenance.update(
                family=self.family,
                hub=info.name if info.source == "hub" else None,
                revision=info.revision,
                kmeans_data=dict(self.kmeans_data),
                frames_available=reservoir.seen,
            )
            quantizer.save(out_dir / quantizer_filename(layer, k))
            summary["layers"][str(layer)] = {
                "K": k,
                "frames": reservoir.filled,
                "frames_available": reservoir.seen,
                "inertia": result.inertia,
                "passes": result.n_iter,
                "seconds": round(result.seconds, 3),
            }
        return summary

    def load_fitted(self, out_dir: Path) -> None:
        """Load the codebooks :meth:`fit` saved, checking encoder, layer and K of each.

        Raises:
            QuantizerError: a missing file, or one for another encoder, layer, K or dimension.
        """
        quantizers = [
            KMeansQuantizer.load(
                Path(out_dir) / quantizer_filename(layer, k),
                expect_encoder=self.model_info.encoder_id,
                expect_layer=layer,
                expect_n_clusters=k,
            )
            for layer, k in zip(self.layers, self.num_clusters, strict=True)
        ]
        self.set_quantizers(quantizers)

    def set_quantizers(self, quantizers: Sequence[KMeansQuantizer]) -> None:
        """Use these codebooks, one per layer in ``layers`` order (checked as in ``load_fitted``).

        A codebook imported from speechbrain's files (provenance ``imported``) names only the
        encoder family, so it is checked against ``family`` instead of the exact weights.

        Raises:
            QuantizerError: wrong count, or a codebook for another encoder/layer/K/dimension.
        """
        if len(quantizers) != len(self.layers):
            raise QuantizerError(
                f"{len(quantizers)} quantizers for {len(self.layers)} layers {list(self.layers)}"
            )
        dim = self.model_info.hidden_size
        for quantizer, layer, k in zip(quantizers, self.layers, self.num_clusters, strict=True):
            imported = quantizer.provenance.get("imported")
            encoder = self.family if isinstance(imported, Mapping) else self.model_info.encoder_id
            quantizer.check(encoder, layer, k, where=f"quantizer of layer {layer}")
            if isinstance(imported, Mapping):
                log.info(
                    "layer %d: k-means imported from %s file %s (sha256 %s), accepted for "
                    "family %s; it was not trained on %s's exact weights here",
                    layer,
                    imported.get("format"),
                    imported.get("file"),
                    str(imported.get("sha256"))[:12],
                    self.family,
                    self.model_info.encoder_id,
                )
            if quantizer.dim != dim:
                raise QuantizerError(
                    f"quantizer of layer {layer} has dim {quantizer.dim} but "
                    f"{self.model_info.encoder_id} layers have {dim}; it is for another encoder"
                )
        self.codebooks = LayerCodebooks([q.centroids for q in quantizers], self.extractor.device)
        self.quantizer_provenance = [dict(q.provenance) for q in quantizers]

    # ------------------------------------------------------------------ encoding

    def assign(self, valid: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids ``[M, L]`` int64 of ``[L, M, D]`` frames, on their device."""
        if self.codebooks is None:
            raise BenchmarkError(
                f"tokenizer {self.info.name!r} has no k-means codebooks yet; fit it or call "
                "load_fitted(out_dir) first"
            )
        return self.codebooks.assign(valid)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of a padded batch.

        Args:
            wav: ``[B, T]`` float waveforms at 16 kHz, zero-padded (not modified).
            lengths: ``[B]`` int64 valid sample counts (>= 1; clips under 400 samples give one
                frame).

        Returns:
            ``tokens [B, N, K]`` int64 (CPU; padded frames hold 0) and ``token_lengths [B]``.
        """
        features, frames = self.extractor(wav, lengths)
        mask = torch.arange(features.shape[2]).unsqueeze(0) < frames.unsqueeze(1)
        device_mask = mask.to(features.device)
        ids = self.assign(features[:, device_mask])
        tokens = torch.zeros(
            features.shape[1], features.shape[2], len(self.layers), dtype=torch.int64
        )
        tokens[mask] = ids.cpu()
        return tokens, frames

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, T]`` at 16 kHz from tokens ``[B, N, K]`` through the card's vocoder.

        The vocoder is the card's ``vocoder`` param: ``{path: vocoder.pt}`` (a scalable unit
        HiFi-GAN trained by ``train-vocoder``, which decodes any subset of layers) or
        ``{speechbrain: FOLDER}`` (speechbrain's released discrete HiFi-GAN). Loaded on first
        use and checked against this tokenizer's codebook sizes (and layers).

        Raises:
            NotImplementedError: the card names no vocoder.
            VocoderError: a subset the vocoder was not trained for, ids out of range, or a
                vocoder made for another tokenizer (one line).
        """
        if self.vocoder_spec is None:
            raise NotImplementedError(
                f"tokenizer {self.info.name!r} has no vocoder: train one with `python -m "
                f"benchmark train-vocoder --tokenizer {self.info.name}` and set "
                "vocoder: {path: ...} in the card (or --tokenizer-param)"
            )
        if self._vocoder is None:
            from benchmark.vocoders.speechbrain_vocoder import open_vocoder

            self._vocoder = open_vocoder(
                self.vocoder_spec,
                codebook_layers=self.layers,
                expect_codebook_sizes=self.num_clusters,
                device=self._device,
            )
        return self._vocoder.decode(tokens, token_lengths, codebooks)

    def embeddings(self) -> torch.Tensor | None:
        """Centroids ``[K, C, D]`` (CPU float32) when every codebook has the same size."""
        if self.codebooks is None or len(set(self.num_clusters)) != 1:
            return None
        return torch.stack([c.cpu() for c in self.codebooks.centroids()])

    def state_fingerprint(self) -> Mapping[str, Any]:
        """Resolved weights (hub id + revision, or config/weight hashes), dtype and settings.

        With ``kmeans_import``, also ``kmeans_import``: per layer the imported file's format,
        name, sha256 and data name (the codebooks are then part of the token identity).
        """
        geometry = self.encoder.geometry()
        state: dict[str, Any] = {
            "version": TOKENIZER_VERSION,
            "kmeans_algorithm": KMEANS_ALGORITHM_VERSION,
            "weights": self.encoder.weights_fingerprint(),
            "dtype": self.dtype,
            "normalize_wav": geometry["normalize"],
            "layers": list(self.layers),
            "num_clusters": list(self.num_clusters),
            "kmeans_data": dict(self.kmeans_data),
            "vocoder": self.vocoder_spec,
            "short_clips": f"zero-padded to {geometry['receptive_field']} samples",
            "tiny_model": self.origin.to_dict() if self.origin is not None else None,
        }
        if self.kmeans_import is not None:
            state["kmeans_import"] = {
                str(layer): dict(provenance["imported"])
                for layer, provenance in zip(self.layers, self.quantizer_provenance, strict=True)
            }
        return state

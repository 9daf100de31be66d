"""One k-means codebook on log-mel frames: the weight-free counterpart of discrete SSL tokens.

``KMeansLogMelTokenizer`` is the recipe of the discrete SSL tokenizers (Mousavi et al. 2024;
DASB) with the self-supervised encoder replaced by a log-mel analysis, so the leaderboard can
tell what the SSL layers add over the spectrum itself: one stream of ``num_clusters`` ids
(``K = 1000`` like DASB by default) at 50 frames/s (``hop_length = 320`` at 16 kHz, the SSL
frame rate), i.e. ``50 * log2(1000) ~ 498`` bit/s.

Features. Frame ``t`` is the harness's shared log-mel analysis
(:meth:`benchmark.tokenizers.dummy.MelBandTokenizer.band_db`, ``n_mels`` bands in dB relative
to a full-scale sine) scaled as the ``continuous-logmel`` reference scales it,
``(dB - min_db) / (max_db - min_db)`` with the dummy's bounds (-90 dB, 10 dB), so with
``stack_neighbours = 0`` k-means quantises exactly the continuous reference's features.
``stack_neighbours = c`` concatenates frames ``t - c .. t + c`` (oldest first; the item's
first and last frames repeat at its edges, so an item's tokens never depend on its batch):
``D = n_mels * (2c + 1)``, a spectro-temporal patch that carries the local dynamics deltas
would (deltas are fixed linear combinations of such neighbours). No deltas are appended.

Fitting (``needs_fit``). The harness hands :meth:`~KMeansLogMelTokenizer.fit` the audio of the
split named by ``kmeans_data`` (``{"corpus", "subset", "split"}``): out-of-domain by default,
the mini ``ood`` subset like the SSL tokenizers' mini preset, or in-domain (``subset: asr``).
Valid frames stream into a bounded uniform reservoir of ``kmeans_max_frames`` rows (memory
``kmeans_max_frames * D * 4`` bytes, never the corpus's feature matrix), then
:func:`benchmark.models.kmeans.fit_kmeans` trains on the reservoir's chunks and the codebook is
saved with its provenance as ``kmeans_logmel_k<K>.pt`` (:class:`KMeansQuantizer`).

Decoding. Each id's centroid gives the centre frame of its patch, mapped back to dB and phased
with Griffin-Lim through the ``dummy`` tokenizer's vocoding path (the documented fallback), or
decoded by ``vocoder`` when it is set (:data:`~benchmark.tokenizers.dmel.Vocoder`: a token
vocoder gets the ids, a mel vocoder the centre frames in dB).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.api import BuildContext, FitData, Tokenizer, TokenizerInfo
from benchmark.data.manifest import Manifest
from benchmark.decode_validation import check_decode_inputs
from benchmark.errors import BenchmarkError, DataError
from benchmark.models.kmeans import ALGORITHM_VERSION as KMEANS_ALGORITHM_VERSION
from benchmark.models.kmeans import KMeansConfig, KMeansQuantizer, QuantizerError, fit_kmeans
from benchmark.models.reservoir import FrameReservoir
from benchmark.tokenizers.dmel import (
    TokenVocoder,
    Vocoder,
    WeightFreeConfigError,
    check_int,
    check_vocoder,
    data_spec,
    fit_batches,
    mel_bands,
)
from benchmark.tokenizers.ssl_params import check_fit_frames

log = logging.getLogger(__name__)

#: Bump when a change here changes tokens without changing the card or the codebook.
TOKENIZER_VERSION = 1
#: Out-of-domain k-means data by default, as for the discrete SSL tokenizers.
DEFAULT_KMEANS_DATA: dict[str, str] = {"corpus": "mini", "subset": "ood", "split": "train"}


def quantizer_filename(n_clusters: int) -> str:
    """File name of the codebook in a fit folder: ``kmeans_logmel_k<K>.pt``."""
    return f"kmeans_logmel_k{n_clusters}.pt"


class KMeansLogMelTokenizer(Tokenizer):
    """One codebook of ``num_clusters`` log-mel (patch) centroids, ``K = 1`` stream.

    Args:
        num_clusters: codebook size ``C`` (1000 like DASB; fewer for the small mini corpus).
        n_mels: mel bands per frame.
        sample_rate: audio rate in Hz.
        hop_length: samples per frame (320 at 16 kHz: 50 frames/s, the SSL frame rate).
        stack_neighbours: frames stacked on each side of the centre frame (0 = single frames).
        kmeans_data: the split k-means is trained on, ``{"corpus", "subset", "split"}``;
            defaults to mini ``ood`` train (out-of-domain).
        kmeans_max_frames: size of the uniform frame sample k-means is trained on.
        kmeans_max_iter: most exact Lloyd passes over the sample.
        kmeans_seed: seeds the sampling and the k-means++ seeding.
        vocoder: a :data:`~benchmark.tokenizers.dmel.Vocoder` to decode through; None
            (the default) uses Griffin-Lim. Set it in code; cards cannot name one yet.
        name: registry name recorded in :attr:`info`.
        context: the harness's build context (``device`` for k-means training, ``progress``).

    Raises:
        WeightFreeConfigError: a parameter of the wrong type or range.
    """

    needs_fit = True

    def __init__(
        self,
        num_clusters: int = 1000,
        n_mels: int = 80,
        sample_rate: int = 16000,
        hop_length: int = 320,
        stack_neighbours: int = 0,
        kmeans_data: Mapping[str, str] | None = None,
        kmeans_max_frames: int = 200_000,
        kmeans_max_iter: int = 100,
        kmeans_seed: int = 0,
        vocoder: Vocoder | None = None,
        name: str = "kmeans-logmel",
        context: BuildContext | None = None,
    ) -> None:
        owner = f"KMeansLogMelTokenizer {name!r}"
        self.num_clusters = check_int(owner, "num_clusters", num_clusters, 2)
        self.n_mels = check_int(owner, "n_mels", n_mels, 1)
        self.stack_neighbours = check_int(owner, "stack_neighbours", stack_neighbours, 0)
        self.kmeans_max_frames = check_int(owner, "kmeans_max_frames", kmeans_max_frames, 1)
        if self.num_clusters > self.kmeans_max_frames:
            raise WeightFreeConfigError(
                f"{owner}: num_clusters {self.num_clusters} exceeds kmeans_max_frames="
                f"{self.kmeans_max_frames} (k-means needs at least K frames); lower num_clusters "
                "or raise kmeans_max_frames"
            )
        self.kmeans_max_iter = check_int(owner, "kmeans_max_iter", kmeans_max_iter, 0)
        self.kmeans_seed = check_int(owner, "kmeans_seed", kmeans_seed, 0)
        self.kmeans_data = data_spec(owner, "kmeans_data", kmeans_data, DEFAULT_KMEANS_DATA)
        self.vocoder = check_vocoder(owner, vocoder)
        self.device = "cpu" if context is None else context.device
        self.progress = True if context is None else context.progress
        try:
            self._analysis = mel_bands(
                n_bands=self.n_mels,
                levels=2,
                sample_rate=sample_rate,
                hop_length=hop_length,
                name=name,
            )
        except ValueError as exc:
            raise WeightFreeConfigError(f"{owner}: {exc}") from None
        self.sample_rate = self._analysis.sample_rate
        self.hop_length = self._analysis.hop_length
        self._scale = self._analysis.max_db - self._analysis.min_db
        #: Feature size ``D = n_mels * (2 * stack_neighbours + 1)``.
        self.dim = self.n_mels * (2 * self.stack_neighbours + 1)
        self.quantizer: KMeansQuantizer | None = None
        self.info = TokenizerInfo(
            name=name,
            sample_rate=self.sample_rate,
            frame_rate=self.sample_rate / self.hop_length,
            codebook_sizes=(self.num_clusters,),
            can_decode=True,
        )

    def check_fit_data(self, manifest: Manifest) -> None:
        """Refuse, before any extraction, fit data with fewer frames than ``num_clusters``.

        Raises:
            WeightFreeConfigError: ``num_clusters`` exceeds the frames the manifest can give.
        """
        name = str(manifest.source or "the k-means data")
        durations = [u.duration for u in manifest]
        check_fit_frames((self.num_clusters,), durations, self.info.frame_rate, name,
                         WeightFreeConfigError)  # fmt: skip

    @property
    def encoder_id(self) -> str:
        """What the codebook is for, checked when it is loaded: analysis and stacking."""
        return (
            f"logmel-{self.n_mels}@{self.sample_rate}Hz/hop{self.hop_length}"
            f"/stack{self.stack_neighbours}"
        )

    # ------------------------------------------------------------------ features

    def features(
        self, wav: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames k-means quantises.

        Args:
            wav: ``[B, T]`` float waveforms at ``sample_rate`` Hz, zero-padded.
            lengths: ``[B]`` integer valid sample counts.

        Returns:
            ``features [B, N, D]`` float32 (scaled log-mel, neighbours stacked; padded frames
            hold 0) and ``frame_lengths [B]`` int64 (``ceil(lengths / hop_length)``).
        """
        energies, frame_lengths = self._analysis.band_db(wav, lengths)
        scaled = (energies - self._analysis.min_db) / self._scale  # [B, N, M]
        c = self.stack_neighbours
        out = torch.zeros(scaled.shape[0], scaled.shape[1], self.dim)
        offsets = torch.arange(-c, c + 1)
        for b, frames in enumerate(frame_lengths.tolist()):
            if frames == 0:
                continue
            index = (torch.arange(frames).unsqueeze(1) + offsets).clamp(0, frames - 1)
            out[b, :frames] = scaled[b, index].reshape(frames, self.dim)
        return out, frame_lengths

    def centre_frames_db(self, centroids: torch.Tensor) -> torch.Tensor:
        """Band energies in dB ``[..., n_mels]`` of the centre frame of ``[..., D]`` patches."""
        c = self.stack_neighbours
        centre = centroids[..., c * self.n_mels : (c + 1) * self.n_mels]
        return centre * self._scale + self._analysis.min_db

    # ------------------------------------------------------------------ fitting

    def fit_data_spec(self) -> Mapping[str, Any]:
        """The k-means training split ``{"corpus", "subset", "split"}``."""
        return dict(self.kmeans_data)

    def fit(self, data: FitData, out_dir: Path) -> None:
        """Train the codebook on a uniform sample of ``data``'s frames; save it in ``out_dir``.

        Raises:
            DataError: no audio, or fewer frames than ``num_clusters`` (from k-means).
        """
        reservoir = FrameReservoir(
            capacity=self.kmeans_max_frames,
            dim=self.dim,
            seed=self.kmeans_seed,
            arrival_order=False,  # the row order this tokenizer's codebooks were fitted with
        )
        bar = tqdm(
            fit_batches(data),
            desc=f"log-mel frames {self.info.name}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        for wav, lengths in bar:
            features, frame_lengths = self.features(wav, lengths)
            valid = torch.arange(features.shape[1]) < frame_lengths.unsqueeze(1)
            reservoir.add(features[valid])
        if reservoir.seen == 0:
            raise DataError(f"k-means data {data.name!r} holds no audio frames")
        config = KMeansConfig(
            n_clusters=self.num_clusters,
            seed=self.kmeans_seed,
            max_iter=self.kmeans_max_iter,
            device=self.device,
            progress=self.progress,
        )
        log.info(
            "k-means %s: K=%d on %d of %d frames (D=%d)",
            self.info.name,
            self.num_clusters,
            reservoir.filled,
            reservoir.seen,
            self.dim,
        )
        result = fit_kmeans(reservoir.chunks, config)
        quantizer = KMeansQuantizer.from_result(
            result, encoder=self.encoder_id, data=data.name, config=config
        )
        quantizer.provenance.update(
            kmeans_data=dict(self.kmeans_data),
            frames_available=reservoir.seen,
            features="scaled log-mel (dB + 90) / 100, benchmark.tokenizers.dummy analysis",
            stack_neighbours=self.stack_neighbours,
        )
        out = Path(out_dir)
        quantizer.save(out / quantizer_filename(self.num_clusters))
        summary = {
            "encoder": self.encoder_id,
            "data": data.name,
            "K": self.num_clusters,
            "dim": self.dim,
            "frames": reservoir.filled,
            "frames_available": reservoir.seen,
            "inertia": result.inertia,
            "passes": result.n_iter,
            "converged": result.converged,
            "seconds": round(result.seconds, 3),
        }
        (out / "fit.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        self.set_quantizer(quantizer)

    def load_fitted(self, out_dir: Path) -> None:
        """Load the codebook :meth:`fit` saved, checking analysis, stacking, ``K`` and ``D``.

        Raises:
            QuantizerError: a missing file, or one for another analysis, K or dimension.
        """
        path = Path(out_dir) / quantizer_filename(self.num_clusters)
        quantizer = KMeansQuantizer.load(
            path, expect_encoder=self.encoder_id, expect_n_clusters=self.num_clusters
        )
        self.set_quantizer(quantizer)

    def set_quantizer(self, quantizer: KMeansQuantizer) -> None:
        """Use this codebook (checked as in :meth:`load_fitted`).

        Raises:
            QuantizerError: a codebook for another analysis, K or dimension.
        """
        quantizer.check(self.encoder_id, None, self.num_clusters, where="log-mel codebook")
        if quantizer.dim != self.dim:
            raise QuantizerError(
                f"log-mel codebook has dim {quantizer.dim} but {self.encoder_id} frames have "
                f"{self.dim}"
            )
        self.quantizer = quantizer

    def state_fingerprint(self) -> Mapping[str, Any]:
        """Code version, feature recipe, and a hash of the centroids (None until fitted)."""
        codebook = None
        if self.quantizer is not None:
            data = self.quantizer.centroids.numpy().tobytes()
            codebook = hashlib.sha256(data).hexdigest()[:16]
        return {
            "version": TOKENIZER_VERSION,
            "kmeans_algorithm": KMEANS_ALGORITHM_VERSION,
            "features": self.encoder_id,
            "kmeans_data": dict(self.kmeans_data),
            "codebook_sha256": codebook,
        }

    # ------------------------------------------------------------------ tokens

    def _codebook(self) -> KMeansQuantizer:
        if self.quantizer is None:
            raise BenchmarkError(
                f"tokenizer {self.info.name!r} has no k-means codebook yet; fit it or call "
                "load_fitted(out_dir) first"
            )
        return self.quantizer

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest-centroid ids of a padded batch.

        Args:
            wav: ``[B, T]`` float waveforms at ``sample_rate`` Hz, zero-padded (not modified).
            lengths: ``[B]`` integer valid sample counts.

        Returns:
            ``tokens [B, N, 1]`` int64 in ``[0, num_clusters)`` (padded frames hold 0) and
            ``token_lengths [B]`` int64, ``ceil(lengths / hop_length)``.

        Raises:
            BenchmarkError: no codebook yet.
            ValueError: inputs of the wrong type, shape or range.
        """
        quantizer = self._codebook()
        features, frame_lengths = self.features(wav, lengths)
        valid = torch.arange(features.shape[1]) < frame_lengths.unsqueeze(1)
        tokens = torch.zeros(features.shape[0], features.shape[1], 1, dtype=torch.int64)
        tokens[valid] = quantizer.predict(features[valid]).unsqueeze(1)
        return tokens, frame_lengths

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio from ids: Griffin-Lim on the centroids' centre frames, or :attr:`vocoder`.

        Args:
            tokens: ``[B, N, 1]`` integer ids.
            token_lengths: ``[B]`` integer valid frame counts.
            codebooks: None or ``[0]`` (there is one codebook).

        Returns:
            ``wav [B, T]`` float32 at ``sample_rate`` Hz and ``lengths [B]`` int64; with
            Griffin-Lim ``lengths = token_lengths * hop_length`` and ``T = max(lengths)``.

        Raises:
            BenchmarkError: no codebook yet.
            ValueError: tokens of the wrong type, shape or range, or a bad ``codebooks``.
        """
        quantizer = self._codebook()
        sizes = self.info.codebook_sizes
        check_decode_inputs(self.info.name, tokens, token_lengths, sizes, codebooks)
        if isinstance(self.vocoder, TokenVocoder):
            return self.vocoder.decode(tokens, token_lengths, codebooks)
        ids = tokens[:, :, 0].detach().cpu()
        counts = [int(n) for n in token_lengths.tolist()]
        if self.vocoder is not None:
            mel = self.centre_frames_db(quantizer.centroids[ids])  # [B, N, M]
            padded = torch.arange(ids.shape[1]) >= torch.tensor(counts).unsqueeze(1)
            mel[padded] = self._analysis.min_db
            return self.vocoder(mel, torch.tensor(counts, dtype=torch.int64))
        lengths = torch.tensor([n * self.hop_length for n in counts], dtype=torch.int64)
        out = torch.zeros(len(counts), int(lengths.max()) if counts else 0)
        for b, frames in enumerate(counts):
            if frames:
                energies = self.centre_frames_db(quantizer.centroids[ids[b, :frames]])
                out[b, : frames * self.hop_length] = self._analysis._vocode(energies)
        return out, lengths

    def embeddings(self) -> torch.Tensor | None:
        """The centroids ``[1, num_clusters, D]`` (float32, scaled log-mel), or None unfitted."""
        if self.quantizer is None:
            return None
        return self.quantizer.centroids.unsqueeze(0).clone()

"""The audio and the frame targets the tiny SSL encoders are pretrained on (HuBERT iteration 1).

What the tiny WavLM / HuBERT of the ``mini`` preset learn from (see
:mod:`benchmark.models.ssl_pretrain`):

- **audio**: the utterances of the given training manifests (the mini ``asr`` and ``ood``
  ``train`` splits), each normalised to zero mean and unit variance as the encoders'
  ``do_normalize`` asks, held in memory (float16, about 110 MB for the hour of mini audio);
- **targets**: per 20 ms frame, k-means cluster ids of hand-made spectral features: Kaldi
  log-mel filterbanks (``logmel``) or 13 MFCCs with their first and second differences
  (``mfcc``, HuBERT's first iteration), computed on exactly the samples the encoder's
  convolutional front end sees for that frame (frame ``i`` covers samples
  ``320 i .. 320 i + 399``), standardised per dimension over the training frames, then
  clustered with :func:`benchmark.models.kmeans.fit_kmeans` on every training frame.

Speakers held out for validation or testing never enter: :func:`check_pretrain_speakers`
refuses a manifest that is a ``valid`` or ``test`` split, or that holds a held-out speaker.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio
from tqdm.auto import tqdm

from benchmark.data.audio import load_audio
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError
from benchmark.models.kmeans import KMeansConfig, fit_kmeans

log = logging.getLogger(__name__)

#: Target feature kinds and their dimension.
FEATURE_KINDS: dict[str, int] = {"logmel": 40, "mfcc": 39}
#: Frame geometry of the tiny encoders' front end at 16 kHz (receptive field and hop).
FRAME_SAMPLES = 400
HOP_SAMPLES = 320
SAMPLE_RATE = 16000
_HELD_OUT_SPLITS = ("valid", "test", "dev")


class PretrainDataError(DataError):
    """Pretraining data that may not or cannot be used (held-out speakers, no audio)."""


def check_pretrain_speakers(
    manifests: Sequence[Manifest], heldout_speakers: Collection[str]
) -> list[str]:
    """Refuse data of held-out speakers; return the training speakers, sorted.

    Args:
        manifests: the manifests pretraining would read.
        heldout_speakers: speakers of every validation and test split (never trained on).

    Raises:
        PretrainDataError: a manifest read from a ``valid``/``test`` file, an utterance
            without a speaker, or one of a held-out speaker (one line, naming it).
    """
    if not manifests:
        raise PretrainDataError("pretraining got no manifests; give at least one train split")
    heldout = set(heldout_speakers)
    speakers: set[str] = set()
    for manifest in manifests:
        where = str(manifest.source or manifest.root)
        if manifest.source is not None and manifest.source.stem in _HELD_OUT_SPLITS:
            raise PretrainDataError(
                f"{where} is a {manifest.source.stem} split; pretraining reads train splits only"
            )
        for utterance in manifest:
            if utterance.speaker is None:
                raise PretrainDataError(
                    f"{where}: utterance {utterance.id!r} has no speaker, so held-out speakers "
                    "cannot be excluded; give every utterance a speaker"
                )
            if utterance.speaker in heldout:
                raise PretrainDataError(
                    f"{where}: utterance {utterance.id!r} is by held-out speaker "
                    f"{utterance.speaker!r}; valid/test speakers never enter pretraining"
                )
            speakers.add(utterance.speaker)
    return sorted(speakers)


def num_frames(samples: int) -> int:
    """Encoder frames of ``samples`` samples (0 below one receptive field)."""
    return max(0, (int(samples) - FRAME_SAMPLES) // HOP_SAMPLES + 1)


def frame_features(wav: torch.Tensor, kind: str) -> torch.Tensor:
    """Spectral features ``[N, D]`` of one waveform, frame ``i`` on samples ``320 i + [0, 400)``.

    Args:
        wav: ``[T]`` float waveform at 16 kHz (any scale; Kaldi features remove the DC and
            pre-emphasise).
        kind: ``logmel`` (40 log-mel filterbank energies) or ``mfcc`` (13 MFCCs + first and
            second differences = 39).

    Returns:
        ``[num_frames(T), D]`` float32.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown target feature {kind!r}; choose one of {list(FEATURE_KINDS)}")
    common = {
        "sample_frequency": float(SAMPLE_RATE),
        "frame_length": 1000.0 * FRAME_SAMPLES / SAMPLE_RATE,
        "frame_shift": 1000.0 * HOP_SAMPLES / SAMPLE_RATE,
        "dither": 0.0,
        "snip_edges": True,
    }
    x = wav.reshape(1, -1).to(torch.float32)
    if kind == "logmel":
        return torchaudio.compliance.kaldi.fbank(x, num_mel_bins=40, **common)
    mfcc = torchaudio.compliance.kaldi.mfcc(x, num_ceps=13, **common)  # [N, 13]
    first = torchaudio.functional.compute_deltas(mfcc.T)
    second = torchaudio.functional.compute_deltas(first)
    return torch.cat([mfcc.T, first, second]).T.contiguous()


@dataclass(frozen=True)
class PretrainCorpus:
    """Training audio in memory with its per-frame features.

    Attributes:
        audio: ``[S]`` float16 normalised samples of every utterance, one after another.
        sample_offsets: ``[U + 1]`` int64 start of utterance ``u`` in ``audio``.
        frame_offsets: ``[U + 1]`` int64 start of utterance ``u``'s frames in ``features``.
        features: kind -> ``[F, D]`` float32 standardised features of every frame.
        speakers: the training speakers, sorted.
        seconds: total audio duration.
    """

    audio: torch.Tensor
    sample_offsets: torch.Tensor
    frame_offsets: torch.Tensor
    features: dict[str, torch.Tensor]
    speakers: tuple[str, ...]
    seconds: float

    @property
    def num_utterances(self) -> int:
        return int(self.sample_offsets.numel()) - 1

    @property
    def num_frames(self) -> int:
        return int(self.frame_offsets[-1])


def load_pretrain_corpus(
    manifests: Sequence[Manifest],
    heldout_speakers: Collection[str],
    kinds: Sequence[str],
    progress: bool = False,
) -> PretrainCorpus:
    """Read, normalise and featurise the training audio (after the held-out speaker check).

    Raises:
        PretrainDataError: held-out speakers (see :func:`check_pretrain_speakers`), or no
            utterance as long as one frame.
        DataError: an unreadable audio file.
    """
    speakers = check_pretrain_speakers(manifests, heldout_speakers)
    waves: list[torch.Tensor] = []
    feats: dict[str, list[torch.Tensor]] = {kind: [] for kind in kinds}
    utterances = [(m, u) for m in manifests for u in m]
    for manifest, utterance in tqdm(
        utterances, desc="pretraining audio", unit="utt", disable=not progress, leave=False
    ):
        wav = load_audio(manifest.audio_path(utterance), SAMPLE_RATE)
        n = num_frames(wav.numel())
        if n == 0:
            log.debug("skipping %s: shorter than one frame", utterance.id)
            continue
        wav = wav[: (n - 1) * HOP_SAMPLES + FRAME_SAMPLES]  # whole frames only
        for kind in kinds:
            feats[kind].append(frame_features(wav, kind)[:n])
        waves.append(F.layer_norm(wav, wav.shape).to(torch.float16))
    if not waves:
        raise PretrainDataError("pretraining data holds no utterance of at least 25 ms")
    lengths = torch.tensor([0] + [w.numel() for w in waves], dtype=torch.int64)
    frames = torch.tensor([0] + [num_frames(w.numel()) for w in waves], dtype=torch.int64)
    features = {kind: standardise(torch.cat(rows)) for kind, rows in feats.items()}
    return PretrainCorpus(
        audio=torch.cat(waves),
        sample_offsets=lengths.cumsum(0),
        frame_offsets=frames.cumsum(0),
        features=features,
        speakers=tuple(speakers),
        seconds=float(lengths.sum()) / SAMPLE_RATE,
    )


def standardise(features: torch.Tensor) -> torch.Tensor:
    """``[F, D]`` features with zero mean and unit standard deviation per dimension (over the
    ``F`` frames; a constant dimension is divided by 1e-5 instead of 0)."""
    mean, std = features.mean(dim=0), features.std(dim=0).clamp(min=1e-5)
    return (features - mean) / std


def cluster_targets(
    features: torch.Tensor, n_clusters: int, seed: int, max_iter: int
) -> tuple[torch.Tensor, dict]:
    """K-means ids ``[F]`` int64 of every frame, and a summary (inertia, passes).

    Args:
        features: ``[F, D]`` standardised frame features.
        n_clusters: K.
        seed: k-means seed.
        max_iter: exact Lloyd passes at most.
    """
    config = KMeansConfig(n_clusters=n_clusters, seed=seed, max_iter=max_iter, device="cpu")
    result = fit_kmeans(features, config)
    from benchmark.models.assign import assign_nearest

    ids = assign_nearest(features, result.centroids)
    used = int(torch.bincount(ids, minlength=n_clusters).gt(0).sum())
    summary = {
        "K": n_clusters,
        "inertia": round(float(result.inertia), 5),
        "passes": result.n_iter,
        "clusters_used": used,
    }
    return ids, summary

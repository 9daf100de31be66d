"""Training data of the vocoder: (cached tokens, aligned audio) pairs, segments, layer dropout.

A pair is one utterance's tokens ``[N, K]`` (from the token cache) and its waveform at the
tokenizer's rate. Training draws random segments of ``S`` frames and the aligned
``S * hop`` samples (frame ``i`` covers samples ``[i * hop, (i + 1) * hop)``); an utterance
shorter than ``S`` frames is padded with absent ids and silence. Every random draw (which
utterance, which offset, which codebooks to blank) comes from one ``torch.Generator`` that
the trainer checkpoints, so a resumed run draws what the uninterrupted run would have.

Corpora: the ``mini`` synthetic corpus (``mini-tts``: one voice, ``mini-asr``: many
speakers), and for the full preset LJSpeech and LibriTTS from their standard layouts under
``--data-root``:

- ``LJSpeech-1.1/metadata.csv`` + ``LJSpeech-1.1/wavs/<id>.wav`` (22.05 kHz, resampled on
  load); the train / valid splits of :func:`benchmark.data.tts_corpora.ljspeech_split`
  (90 / 5 %; the TTS task's 5 % test split is never trained on);
- ``LibriTTS/<split>/<speaker>/<chapter>/<id>.wav`` (24 kHz); train on ``train-clean-100``,
  validate on ``dev-clean``.

Their manifests are cached under ``<workdir>/manifests/vocoder/`` keyed by a hash of the
folder listing. (These two recipes move to ``benchmark/data/`` when a task needs them.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.api import BuildContext, DataRef
from benchmark.data.audio import load_audio
from benchmark.data.corpora import resolve_data
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

log = logging.getLogger(__name__)

VOCODER_CORPORA: tuple[str, ...] = ("mini-tts", "mini-asr", "ljspeech", "libritts")


# ---------------------------------------------------------------------- corpora


def vocoder_manifests(corpus: str, context: BuildContext) -> dict[str, Manifest]:
    """``{"train": Manifest, "valid": Manifest}`` of a vocoder corpus.

    Raises:
        DataError: unknown corpus, missing ``--data-root`` or a folder not in the standard
            layout (names the path it looked for).
    """
    refs = vocoder_data_refs(corpus)
    return {split: resolve_data(ref, context) for split, ref in refs.items()}


def vocoder_data_refs(corpus: str) -> dict[str, DataRef]:
    """``{"train": DataRef, "valid": DataRef}`` of a vocoder corpus name.

    Raises:
        DataError: an unknown vocoder corpus.
    """
    if corpus in ("mini-tts", "mini-asr"):
        subset = corpus.split("-", 1)[1]
        return {s: DataRef("mini", subset, s) for s in ("train", "valid")}
    if corpus == "ljspeech":
        return {s: DataRef("ljspeech", "ljspeech", s) for s in ("train", "valid")}
    if corpus == "libritts":
        return {
            "train": DataRef("libritts", "libritts", "train-clean-100"),
            "valid": DataRef("libritts", "libritts", "dev-clean"),
        }
    raise DataError(
        f"unknown vocoder corpus {corpus!r}; choose one of {', '.join(VOCODER_CORPORA)}"
    )


# ---------------------------------------------------------------------- pairs


@dataclass
class PairItem:
    """One utterance: its tokens ``[N, K]`` and where its audio is.

    Attributes:
        id: utterance id.
        tokens: ``[N, K]`` integer ids (a view into the token cache is fine).
        audio: the audio file, or a ``[T]`` float32 waveform already at the vocoder's rate.
    """

    id: str
    tokens: np.ndarray
    audio: Path | torch.Tensor


class VocoderPairs:
    """Random-access (tokens, audio) pairs with aligned segment extraction.

    Args:
        items: the utterances.
        sample_rate: rate of the audio the vocoder outputs, in Hz.
        hop_length: samples per token frame.
        preload: read every file once into memory (small corpora); otherwise files are read
            when drawn, ``num_workers`` at a time.
        num_workers: threads reading audio when not preloaded.
    """

    def __init__(
        self,
        items: Sequence[PairItem],
        sample_rate: int,
        hop_length: int,
        preload: bool = True,
        num_workers: int = 4,
    ) -> None:
        if not items:
            raise DataError("vocoder training needs at least one utterance")
        self.items = list(items)
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.num_workers = max(1, num_workers)
        self.frames = np.asarray([len(item.tokens) for item in self.items], dtype=np.int64)
        self._audio: dict[int, torch.Tensor] = {}
        if preload:
            for index in range(len(self.items)):
                self._audio[index] = self._read(index)

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, index: int) -> torch.Tensor:
        audio = self.items[index].audio
        if isinstance(audio, torch.Tensor):
            return audio.detach().to(torch.float32).reshape(-1)
        return load_audio(Path(audio), self.sample_rate)

    def audio(self, index: int) -> torch.Tensor:
        """``[T]`` waveform of utterance ``index``."""
        cached = self._audio.get(index)
        return cached if cached is not None else self._read(index)

    def tokens(self, index: int) -> torch.Tensor:
        """``[N, K]`` int64 tokens of utterance ``index`` (a copy)."""
        return torch.from_numpy(np.asarray(self.items[index].tokens, dtype=np.int64))

    def aligned(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole utterance: ``tokens [N, K]`` and audio ``[N * hop]`` (cut or zero-padded)."""
        tokens = self.tokens(index)
        return tokens, _fit(self.audio(index), tokens.shape[0] * self.hop_length)

    def segment(
        self, index: int, offset: int, frames: int, absent_ids: torch.Tensor, wav: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` frames from ``offset`` and the aligned samples, padded past the end.

        Args:
            index: utterance.
            offset: first frame.
            frames: segment length ``S`` in frames.
            absent_ids: ``[K]`` id that pads missing frames.
            wav: the utterance's ``[T]`` audio (from :meth:`audio`).

        Returns:
            ``tokens [S, K]`` int64 and ``audio [S * hop]`` float32.
        """
        all_tokens = self.tokens(index)
        piece = all_tokens[offset : offset + frames]
        out = absent_ids.unsqueeze(0).repeat(frames, 1)
        out[: piece.shape[0]] = piece
        hop = self.hop_length
        samples = wav[offset * hop : offset * hop + frames * hop]
        return out, _fit(samples, frames * hop)

    def batch(
        self, plan: Sequence[tuple[int, int]], frames: int, absent_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Segments of a drawn plan: ``tokens [B, S, K]`` int64 and ``audio [B, S * hop]``."""
        indices = [index for index, _ in plan]
        missing = [i for i in dict.fromkeys(indices) if i not in self._audio]
        loaded = dict(self._audio)
        if missing:
            with ThreadPoolExecutor(min(self.num_workers, len(missing))) as pool:
                loaded.update(zip(missing, pool.map(self._read, missing), strict=True))
        pairs = [self.segment(i, o, frames, absent_ids, loaded[i]) for i, o in plan]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _fit(wav: torch.Tensor, length: int) -> torch.Tensor:
    if wav.shape[0] >= length:
        return wav[:length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[0]))


def draw_segments(
    frames: np.ndarray, batch_size: int, segment_frames: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """Draw ``batch_size`` (utterance, first frame) pairs, uniformly over utterances.

    Args:
        frames: ``[U]`` frames per utterance.
        batch_size: segments to draw.
        segment_frames: ``S``; the offset is uniform over the positions where the segment
            fits (0 for shorter utterances).
        generator: the training RNG (advanced by this call).
    """
    indices = torch.randint(len(frames), (batch_size,), generator=generator).tolist()
    room = torch.as_tensor(np.maximum(frames[indices] - segment_frames, 0) + 1)
    offsets = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * room).long()
    return list(zip(indices, offsets.tolist(), strict=True))


def layer_dropout(
    ids: torch.Tensor,
    absent_ids: torch.Tensor,
    trained_layers: Sequence[int],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Blank codebooks per utterance with the absent id (layer dropout).

    Codebooks outside ``trained_layers`` are always blanked. With a generator, each row
    additionally blanks ``n ~ Uniform{0, ..., L - 1}`` of its ``L`` trained codebooks, chosen
    uniformly, so at least one always stays; with None, only the untrained ones are blanked.

    Args:
        ids: ``[B, S, K]`` int64 (not modified).
        absent_ids: ``[K]`` absent id per codebook.
        trained_layers: codebooks the vocoder learns from.
        generator: RNG of the draws, or None for no dropout.

    Returns:
        ``[B, S, K]`` int64, a new tensor.
    """
    batch, _, k = ids.shape
    layers = torch.as_tensor(list(trained_layers), dtype=torch.int64)
    keep = torch.zeros(batch, k, dtype=torch.bool)
    if generator is None or len(layers) == 1:
        keep[:, layers] = True
    else:
        count = len(layers)
        drop = torch.randint(0, count, (batch,), generator=generator)
        rank = torch.argsort(torch.argsort(torch.rand(batch, count, generator=generator), 1), 1)
        keep[:, layers] = rank < (count - drop).unsqueeze(1)
    keep = keep.to(ids.device).unsqueeze(1)
    return torch.where(keep, ids, absent_ids.to(ids.device))


def tokens_frame_check(items: Sequence[PairItem], num_codebooks: int) -> None:
    """Raise DataError unless every item holds ``[N, K]`` tokens with ``N >= 1``."""
    for item in items:
        shape = tuple(np.shape(item.tokens))
        if len(shape) != 2 or shape[1] != num_codebooks or shape[0] < 1:
            raise DataError(
                f"utterance {item.id!r}: tokens of shape {shape}, expected [N >= 1, "
                f"{num_codebooks}]"
            )


def default_workers() -> int:
    """Audio-reading threads: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))

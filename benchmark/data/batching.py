"""Length-sorted batches of audio read from a manifest, for encoding."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from benchmark.data.audio import batch_audio, load_audio
from benchmark.data.manifest import Manifest, Utterance


def length_sorted_batches(
    utterances: list[Utterance] | tuple[Utterance, ...],
    max_batch_seconds: float = 160.0,
    max_batch_size: int = 32,
) -> list[list[Utterance]]:
    """Group utterances, longest first, so that ``batch size * longest`` stays under a budget.

    Args:
        utterances: what to group.
        max_batch_seconds: bound on padded audio per batch, in seconds.
        max_batch_size: bound on utterances per batch.

    Returns:
        Batches in order (deterministic: ties broken by id).
    """
    ordered = sorted(utterances, key=lambda u: (-u.duration, u.id))
    batches: list[list[Utterance]] = []
    current: list[Utterance] = []
    for utterance in ordered:
        longest = current[0].duration if current else utterance.duration
        if current and (
            len(current) >= max_batch_size or longest * (len(current) + 1) > max_batch_seconds
        ):
            batches.append(current)
            current = []
        current.append(utterance)
    if current:
        batches.append(current)
    return batches


def iter_audio_batches(
    manifest: Manifest,
    sample_rate: int,
    max_batch_seconds: float = 160.0,
    max_batch_size: int = 32,
) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Yield ``(ids, wav [B, T] float32, lengths [B] int64)`` at ``sample_rate`` Hz.

    Files are read (and resampled / down-mixed when needed) one batch at a time, so memory
    holds one batch, whatever the corpus size.
    """
    for batch in length_sorted_batches(manifest.utterances, max_batch_seconds, max_batch_size):
        waves = [load_audio(manifest.audio_path(u), sample_rate) for u in batch]
        wav, lengths = batch_audio(waves)
        yield [u.id for u in batch], wav, lengths

"""Audio I/O: load any file as mono float32 at a given rate, save 16-bit WAV atomically.

Shapes: a waveform is ``[T]`` (samples), a batch is ``[B, T]``; amplitudes are floats in
``[-1, 1]``; rates are in Hz.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from benchmark.errors import DataError
from benchmark.pipeline.store import atomic_write_bytes, describe_os_error

_PCM16_SCALE = 32768.0


def _check_rate(name: str, rate: int) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer in Hz, got {rate!r}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Resample along the last axis with torchaudio's band-limited sinc interpolation.

    Args:
        wav: float waveform(s) ``[..., T]`` at ``from_rate`` Hz.
        from_rate: input sample rate in Hz.
        to_rate: output sample rate in Hz.

    Returns:
        ``[..., T']`` float waveform(s) at ``to_rate`` Hz with ``T' = ceil(T * to / from)``;
        the input itself when the rates are equal (it is never modified).
    """
    _check_rate("from_rate", from_rate)
    _check_rate("to_rate", to_rate)
    if not torch.is_tensor(wav) or not wav.is_floating_point():
        raise ValueError("resample expects a floating-point torch.Tensor [..., T]")
    if from_rate == to_rate:
        return wav
    return torchaudio.functional.resample(wav, int(from_rate), int(to_rate))


def load_audio(path: Path, sample_rate: int) -> torch.Tensor:
    """Read an audio file as mono float32 at ``sample_rate``.

    Multichannel audio is down-mixed by averaging the channels (no clipping); other rates
    are resampled with :func:`resample`.

    Args:
        path: any file libsndfile reads (WAV, FLAC, OGG, ...).
        sample_rate: wanted rate in Hz.

    Returns:
        ``[T]`` float32 tensor in ``[-1, 1]`` (for integer formats).

    Raises:
        DataError: the file is missing, cannot be decoded, has no samples, or holds NaN or
            infinite samples. A bad file never comes back as silence.
    """
    _check_rate("sample_rate", sample_rate)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types (LibsndfileError, RuntimeError)
        try:  # libsndfile hides why a file cannot be opened (permissions, I/O errors)
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as os_error:
            raise DataError(f"cannot read audio {describe_os_error(os_error, path)}") from None
        raise DataError(f"{path}: cannot decode audio ({_one_line(exc)})") from None
    return _to_mono(data, int(rate), sample_rate, str(path))


def audio_from_bytes(data: bytes, sample_rate: int, name: str) -> torch.Tensor:
    """Decode an in-memory audio file (e.g. a program's standard output) like :func:`load_audio`.

    Args:
        data: the bytes of a file libsndfile reads.
        sample_rate: wanted rate in Hz.
        name: what produced the bytes, for messages.

    Returns:
        ``[T]`` float32 tensor.

    Raises:
        DataError: no bytes, undecodable, no samples, or NaN/infinite samples.
    """
    _check_rate("sample_rate", sample_rate)
    if not data:
        raise DataError(f"{name}: produced no audio bytes")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise DataError(f"{name}: cannot decode audio ({_one_line(exc)})") from None
    return _to_mono(samples, int(rate), sample_rate, name)


def _to_mono(data: np.ndarray, rate: int, sample_rate: int, name: str) -> torch.Tensor:
    if data.shape[0] == 0:
        raise DataError(f"{name}: audio file is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DataError(f"{name}: audio holds NaN or infinite samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64)
    wav = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if rate != sample_rate:
        wav = resample(wav, int(rate), int(sample_rate))
    return wav.contiguous()


def to_pcm16(wav: torch.Tensor | np.ndarray) -> np.ndarray:
    """Quantise a ``[T]`` float waveform to int16 (scale 32768, rounded, clipped)."""
    array = wav.detach().cpu().numpy() if torch.is_tensor(wav) else np.asarray(wav)
    if array.ndim != 1:
        raise ValueError(f"expected a mono waveform [T], got shape {tuple(array.shape)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("waveform holds NaN or infinite samples")
    return np.clip(np.round(array * _PCM16_SCALE), -32768, 32767).astype(np.int16)


def save_wav(path: Path, wav: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a mono 16-bit PCM WAV atomically (temp file in the same folder + rename).

    The same samples always give the same bytes: values are scaled by 32768, rounded and
    clipped to the int16 range (samples read back with :func:`load_audio` round-trip
    exactly).

    Args:
        path: destination ``.wav`` file; its folder is created if needed.
        wav: ``[T]`` float waveform (tensor or array), nominally in ``[-1, 1]``.
        sample_rate: rate in Hz written to the header.

    Raises:
        ValueError: not mono ``[T]``, or holds NaN/inf.
        StoreWriteError: the file cannot be written (names the path and the cause, e.g.
            no space left on device).
    """
    _check_rate("sample_rate", sample_rate)
    pcm = to_pcm16(wav)
    buffer = io.BytesIO()  # encoded in memory: a failed disk write then names its real cause
    sf.write(buffer, pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    atomic_write_bytes(Path(path), buffer.getvalue())


def batch_audio(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate ``[T_i]`` waveforms into a zero-padded batch.

    Args:
        waves: non-empty sequence of 1-D waveforms.

    Returns:
        ``wav [B, T_max]`` float32 (zeros after each length) and ``lengths [B]`` int64
        (samples).
    """
    if len(waves) == 0:
        raise ValueError("batch_audio needs at least one waveform")
    for index, wave in enumerate(waves):
        if not torch.is_tensor(wave) or wave.ndim != 1:
            shape = tuple(wave.shape) if hasattr(wave, "shape") else type(wave).__name__
            raise ValueError(f"waveform {index} must be a 1-D tensor [T], got {shape}")
    lengths = torch.tensor([int(w.shape[0]) for w in waves], dtype=torch.int64)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for index, wave in enumerate(waves):
        batch[index, : wave.shape[0]] = wave.to(torch.float32)
    return batch, lengths

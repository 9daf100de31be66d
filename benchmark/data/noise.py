"""Noise generators and exact-SNR mixing for the synthetic enhancement subset.

The generators and the mixer are pure NumPy: the output is a function of the arguments and
the :class:`numpy.random.Generator` state only. Waveforms are ``[T]`` float64 arrays.
:func:`mix_job` applies them to files on disk (one pair of the ``mini`` corpus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOISE_KINDS: tuple[str, ...] = ("white", "pink", "hum", "babble")


def white_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """Gaussian white noise ``[length]`` with unit variance."""
    return rng.standard_normal(length)


def pink_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """1/f (pink) noise ``[length]``: white noise shaped by ``1/sqrt(f)`` in the FFT domain."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.arange(spectrum.shape[0], dtype=np.float64)
    freqs[0] = np.inf  # no DC
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n=length)
    return pink / (np.std(pink) + 1e-12)


def hum_noise(rng: np.random.Generator, length: int, sample_rate: int) -> np.ndarray:
    """Mains hum ``[length]``: 50 or 60 Hz and 3-7 harmonics (amplitude 1/h, random phase)."""
    fundamental = float(rng.choice([50.0, 60.0]))
    harmonics = int(rng.integers(3, 8))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=harmonics)
    t = np.arange(length, dtype=np.float64) / sample_rate
    hum = np.zeros(length)
    for h in range(1, harmonics + 1):
        if h * fundamental < sample_rate / 2:
            hum += np.sin(2.0 * np.pi * h * fundamental * t + phases[h - 1]) / h
    return hum


def babble_noise(
    rng: np.random.Generator, length: int, sources: Sequence[np.ndarray]
) -> np.ndarray:
    """Babble ``[length]``: the sum of talkers, each looped from a random offset, unit RMS.

    Args:
        rng: draws each source's start offset.
        length: wanted length in samples.
        sources: ``[T_i]`` speech waveforms of other speakers (at least one).
    """
    if not sources:
        raise ValueError("babble needs at least one source utterance")
    babble = np.zeros(length)
    for source in sources:
        source = np.asarray(source, dtype=np.float64)
        if source.size == 0:
            raise ValueError("babble source utterance is empty")
        offset = int(rng.integers(source.shape[0]))
        looped = source[(offset + np.arange(length)) % source.shape[0]]
        babble += looped / (np.sqrt(np.mean(looped**2)) + 1e-12)
    return babble


def make_noise(
    kind: str,
    rng: np.random.Generator,
    length: int,
    sample_rate: int,
    sources: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """Noise of one of :data:`NOISE_KINDS`, ``[length]`` samples at ``sample_rate`` Hz."""
    if kind == "white":
        return white_noise(rng, length)
    if kind == "pink":
        return pink_noise(rng, length)
    if kind == "hum":
        return hum_noise(rng, length, sample_rate)
    if kind == "babble":
        return babble_noise(rng, length, sources)
    raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of ``noisy = clean + noise`` (powers over the whole file)."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noisy, dtype=np.float64) - clean
    return float(10.0 * np.log10(np.sum(clean**2) / np.sum(noise**2)))


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr: float, peak: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Add ``noise`` to ``clean`` at exactly ``snr`` dB, then guard against clipping.

    The noise is scaled so that ``10 log10(P_clean / P_noise) = snr`` (mean powers over the
    whole signals). If the mixture's (or the clean signal's) peak exceeds ``peak``, clean and
    noisy are scaled by the same factor, which keeps the SNR.

    Args:
        clean: ``[T]`` clean speech.
        noise: ``[T]`` noise (any level).
        snr: wanted SNR in dB.
        peak: largest allowed absolute sample of the mixture.

    Returns:
        ``(clean [T], noisy [T])``: the (possibly scaled) clean reference and the mixture.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape or clean.ndim != 1:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} must both be [T]")
    clean_power = float(np.mean(clean**2))
    noise_power = float(np.mean(noise**2))
    if clean_power <= 0.0 or noise_power <= 0.0:
        raise ValueError("cannot mix at an SNR: clean or noise is all zeros")
    gain = np.sqrt(clean_power / (noise_power * 10.0 ** (snr / 10.0)))
    noisy = clean + gain * noise
    top = max(float(np.max(np.abs(noisy))), float(np.max(np.abs(clean))))
    if top > peak:
        scale = peak / top
        clean, noisy = clean * scale, noisy * scale
    return clean, noisy


@dataclass(frozen=True)
class MixJob:
    """One noisy/clean pair to make from a clean file already on disk.

    Attributes:
        clean_rel: clean WAV relative to the build folder; overwritten with the scaled clean.
        noisy_rel: noisy WAV to write, relative to the build folder.
        kind: one of :data:`NOISE_KINDS`.
        snr_db: SNR of the mixture in dB.
        seed: seed of the noise generator.
        babble_rels: other speakers' WAVs summed into babble (only for ``kind="babble"``).
    """

    clean_rel: str
    noisy_rel: str
    kind: str
    snr_db: float
    seed: int
    babble_rels: tuple[str, ...] = ()


def mix_job(job: MixJob, folder: Path, sample_rate: int) -> int:
    """Make one pair (a pure function of ``job`` and the files it names); returns samples."""
    from benchmark.data.audio import load_audio, save_wav

    clean = load_audio(folder / job.clean_rel, sample_rate).numpy().astype(np.float64)
    sources = [load_audio(folder / rel, sample_rate).numpy() for rel in job.babble_rels]
    noise = make_noise(
        job.kind, np.random.default_rng(job.seed), clean.shape[0], sample_rate, sources
    )
    clean, noisy = mix_at_snr(clean, noise, job.snr_db)
    save_wav(folder / job.clean_rel, clean, sample_rate)
    save_wav(folder / job.noisy_rel, noisy, sample_rate)
    return int(clean.shape[0])

"""Seeded synthetic test signals (the conformance suite's probe batch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Durations of the synthetic batch's items, in seconds.
PROBE_DURATIONS: tuple[float, ...] = (1.0, 0.63, 1.37)


def synthetic_batch(
    sample_rate: int, seed: int = 0, durations: Sequence[float] = PROBE_DURATIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, zero-padded batch of chirps, harmonic tones and noise.

    Args:
        sample_rate: rate in Hz.
        seed: seed of the frequencies, amplitudes and noise.
        durations: item durations in seconds.

    Returns:
        ``wav [B, T]`` float32 in ``[-1, 1]`` and ``lengths [B]`` int64 samples.
    """
    generator = torch.Generator().manual_seed(seed)
    counts = [max(1, round(d * sample_rate)) for d in durations]
    wav = torch.zeros(len(counts), max(counts))
    nyquist = sample_rate / 2.0

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    for b, n in enumerate(counts):
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        duration = n / sample_rate
        f_start, f_end = uniform(100.0, 0.1 * nyquist), uniform(0.2 * nyquist, 0.8 * nyquist)
        chirp_phase = 2 * math.pi * (f_start * t + (f_end - f_start) * t**2 / (2 * duration))
        signal = 0.3 * torch.sin(chirp_phase)
        f0 = uniform(90.0, 300.0)
        for harmonic in range(1, 8):
            if harmonic * f0 < nyquist:
                signal += (0.2 / harmonic) * torch.sin(2 * math.pi * harmonic * f0 * t)
        envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * uniform(1.0, 4.0) * t) ** 2
        noise = torch.randn(n, generator=generator, dtype=torch.float64)
        signal = envelope * signal + uniform(0.01, 0.05) * noise
        wav[b, :n] = (signal / max(1.0, float(signal.abs().max()))).to(torch.float32)
    return wav, torch.tensor(counts, dtype=torch.int64)

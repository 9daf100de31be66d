"""Intrusive quality metrics: PESQ (wide-band) and STOI against the clean reference.

Both compare the generated audio with its clean reference (the clean twin of a noisy file,
the original of a resynthesis) at 16 kHz; files at other rates are resampled by
:func:`~benchmark.data.audio.load_audio`. The two signals are cut to the shorter one
(a decoder may add or drop a few samples; PESQ aligns the signals itself, STOI assumes
they are aligned).

Handling of what the algorithms cannot score (the utterance is skipped, counted in the
result's ``skipped``, never scored as a number):

- **PESQ** (ITU-T P.862.2 wide-band, ``pesq`` package): audio shorter than 0.25 s (the
  library's minimum), a reference in which PESQ detects no utterance, and a generated signal
  that is exactly silent (the library's level alignment divides by its zero energy).
- **STOI** (Taal et al. 2011, ``pystoi``): audio shorter than 0.4 s, and any utterance
  with fewer than 30 non-silent 384 ms analysis frames after STOI's own silent-frame removal
  (``pystoi`` warns and returns 1e-5 there; we skip instead).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from benchmark.data.audio import load_audio
from benchmark.errors import JudgeUnavailableError
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip

SAMPLE_RATE = 16000


def _package(name: str, module: str) -> str:
    """Version of an installed judge package, or JudgeUnavailableError."""
    try:
        __import__(module)
        return metadata.version(name)
    except (ImportError, metadata.PackageNotFoundError) as exc:
        raise JudgeUnavailableError(
            f"the {name} package cannot be imported ({exc}); install it with pip install {name}"
        ) from None


def load_pair(item: AudioItem) -> tuple[np.ndarray, np.ndarray]:
    """Generated and reference audio ``[T]`` float64 at 16 kHz, cut to the shorter."""
    generated = load_audio(item.audio, SAMPLE_RATE).double().numpy()
    reference = load_audio(item.reference_audio, SAMPLE_RATE).double().numpy()
    length = min(generated.shape[0], reference.shape[0])
    return generated[:length], reference[:length]


class PESQ(AudioMetric):
    """Wide-band PESQ (MOS-LQO, about 1.0-4.64) of the generated audio vs. its reference."""

    name = "pesq"
    direction = "higher"
    needs = ("audio", "reference_audio")
    min_seconds = 0.25

    def judge(self) -> dict[str, Any]:
        return {
            "name": "PESQ wide-band (ITU-T P.862.2)",
            "package": "pesq",
            "version": _package("pesq", "pesq"),
            "sample_rate": SAMPLE_RATE,
        }

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        from pesq import NoUtterancesError, pesq

        out: list[float | Skip] = []
        for item in items:
            generated, reference = load_pair(item)
            if generated.shape[0] < self.min_seconds * SAMPLE_RATE:
                out.append(Skip(f"overlap of generated and reference under {self.min_seconds} s"))
            elif not np.any(generated):
                out.append(Skip("generated audio is silent (PESQ is undefined)"))
            else:
                try:
                    out.append(float(pesq(SAMPLE_RATE, reference, generated, "wb")))
                except NoUtterancesError:
                    out.append(Skip("PESQ detects no utterance in the reference"))
        return out


class STOI(AudioMetric):
    """Short-time objective intelligibility (0-1) of the generated audio vs. its reference."""

    name = "stoi"
    direction = "higher"
    needs = ("audio", "reference_audio")
    min_seconds = 0.4

    def judge(self) -> dict[str, Any]:
        return {
            "name": "STOI (Taal et al. 2011)",
            "package": "pystoi",
            "version": _package("pystoi", "pystoi"),
            "extended": False,
        }

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        from pystoi import stoi

        out: list[float | Skip] = []
        for item in items:
            generated, reference = load_pair(item)
            if generated.shape[0] < self.min_seconds * SAMPLE_RATE:
                out.append(Skip(f"overlap of generated and reference under {self.min_seconds} s"))
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = float(stoi(reference, generated, SAMPLE_RATE, extended=False))
            if any("Not enough STFT frames" in str(w.message) for w in caught):
                out.append(Skip("fewer than 30 non-silent STOI frames"))
            else:
                out.append(value)
        return out

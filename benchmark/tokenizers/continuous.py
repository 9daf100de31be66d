"""Continuous references: the same heads on unquantised features (no codebooks, no bitrate).

DASB reports a continuous baseline beside every tokenizer (SSL hidden states fed to the same
downstream heads). :class:`LogMelReference` is the weight-free one: the log-mel analysis of
the ``dummy`` tokenizer without its quantisation, so ``dummy`` vs this reference measures
exactly what quantising the bands costs.
"""

from __future__ import annotations

import torch

from benchmark.api import Tokenizer, TokenizerInfo
from benchmark.tokenizers.dummy import MelBandTokenizer


class LogMelReference(Tokenizer):
    """Log-mel features ``[B, N, 1, n_mels]`` at ``sample_rate / hop_length`` frames per second.

    Args:
        n_mels: mel bands (feature size ``D``).
        sample_rate: input rate in Hz.
        hop_length: samples between frames (320 at 16 kHz = 50 Hz, the SSL frame rate).
        name: registry name.
    """

    def __init__(
        self,
        n_mels: int = 80,
        sample_rate: int = 16000,
        hop_length: int = 320,
        name: str = "continuous-logmel",
    ) -> None:
        self._analysis = MelBandTokenizer(
            n_bands=n_mels, levels=2, sample_rate=sample_rate, hop_length=hop_length, name=name
        )
        self._scale = self._analysis.max_db - self._analysis.min_db
        self.info = TokenizerInfo(
            name=name,
            sample_rate=sample_rate,
            frame_rate=sample_rate / hop_length,
            layers=(0,),
            feature_dim=n_mels,
        )

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, N, 1, n_mels]`` scaled to about [0, 1], and frame counts ``[B]``."""
        energies, frame_lengths = self._analysis.band_db(wav, lengths)
        features = (energies - self._analysis.min_db) / self._scale
        return features.unsqueeze(2), frame_lengths

"""Continuous references: the same heads on unquantised features (no codebooks, no bitrate).

DASB reports a continuous baseline beside every tokenizer (SSL hidden states fed to the same
downstream heads). :class:`LogMelReference` is the weight-free one: the log-mel analysis of
the ``dummy`` tokenizer without its quantisation, so ``dummy`` vs this reference measures
exactly what quantising the bands costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmark.api import BuildContext, Tokenizer, TokenizerInfo
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


class SSLHiddenStates(Tokenizer):
    """DASB's continuous baseline: hidden states of chosen SSL layers, ``[B, N, L, D]``.

    The heads fuse the layers with the same informed layer selector as for tokens (a learned
    weighting over layers), so the continuous row differs from ``wavlm-attn`` only by the
    absence of k-means.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        layers: 1-based transformer layers.
        tiny_model: false for the card's weights; ``pretrained`` or ``random`` (true) for
            the ``mini`` preset's tiny encoder (see :mod:`benchmark.models.ssl_mini`).
        dtype: ``fp32`` or ``bf16`` forward.
        pretrain: pretraining overrides (``tiny_model: pretrained`` only).
        name: registry name.
        context: build context (device, workdir, card weights).
    """

    def __init__(
        self,
        family: str = "wavlm",
        layers: tuple[int, ...] | list[int] = (3, 7, 12, 18, 23),
        tiny_model: bool | str = False,
        dtype: str = "fp32",
        pretrain: Mapping[str, Any] | None = None,
        name: str = "continuous",
        context: BuildContext | None = None,
    ) -> None:
        from benchmark.models.ssl_tiny_encoder import TinyEncoder

        self.dtype = dtype
        self.encoder = TinyEncoder(
            family, tuple(layers), tiny_model, context or BuildContext(), dtype, None, pretrain
        )
        origin = self.encoder.origin
        geometry = self.encoder.geometry()
        self.info = TokenizerInfo(
            name=name,
            sample_rate=geometry["sample_rate"],
            frame_rate=geometry["sample_rate"] / geometry["hop"],
            layers=tuple(layers),
            feature_dim=geometry["hidden_size"],
            model_label=origin.label if origin is not None else None,
        )

    @property
    def extractor(self) -> Any:
        """The open :class:`~benchmark.models.ssl_features.SSLLayerExtractor`."""
        return self.encoder.extractor

    def pretrain_spec(self) -> Mapping[str, Any] | None:
        """For ``tiny_model: pretrained``: the pretraining the harness must run first."""
        return self.encoder.pretrain_spec()

    def pretrain(self, data: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
        """Pretrain the tiny encoder on ``data`` (manifests by name) into ``out_dir``."""
        return self.encoder.pretrain(data, out_dir)

    def load_pretrained(self, folder: Path) -> None:
        """Open the encoder the pretrain step saved in ``folder``."""
        self.encoder.load(folder)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, N, L, D]`` (float32, CPU) and frame counts ``[B]``."""
        with torch.inference_mode():
            features, frames = self.extractor(wav, lengths)  # [L, B, N, D]
        return features.permute(1, 2, 0, 3).float().cpu(), frames

    def state_fingerprint(self) -> dict:
        """The loaded weights' identity."""
        origin = self.encoder.origin
        return {
            "weights": self.encoder.weights_fingerprint(),
            "dtype": self.dtype,
            "tiny_model": origin.to_dict() if origin is not None else None,
        }

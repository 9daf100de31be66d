"""Loading neural audio codecs (EnCodec, DAC, Mimi) from a card's weights, and their tiny twins.

Three families, all through transformers (``EncodecModel``, ``DacModel``, ``MimiModel``).
Weights are ``{"hub": id, "revision": sha}`` or ``{"path": dir}``, loaded through
:func:`benchmark.models.hf_weights.load_weights` (cache first, the hub only when reachable,
one-line :class:`~benchmark.errors.WeightsUnavailableError` otherwise); this module adds the
codec families, :class:`CodecWeightsInfo` and the tiny codecs' usable random codebooks.

:func:`tiny_codec_dir` makes the ``mini`` preset's codecs: randomly initialised models of the
real architectures (same sample rate, strides, codebook count and codebook sizes, so the same
frame rate and bitrate) but a few channels wide, created once per configuration, saved with
``save_pretrained`` and loaded back through :func:`load_codec` like any local folder. Random
codebooks of EnCodec and Mimi are all zeros after transformers' initialisation (every id would
be 0), so each residual level is drawn from a Gaussian fitted to that level's residuals on a
seeded calibration signal (a cheap stand-in for the k-means initialisation the real codecs
were trained from); DAC's cosine-similarity codebooks are usable as initialised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import WeightsUnavailableError
from benchmark.models import hf_weights

log = logging.getLogger(__name__)

#: Families and their transformers ``(config class, model class, model_type)`` names.
FAMILIES: dict[str, tuple[str, str, str]] = {
    "encodec": ("EncodecConfig", "EncodecModel", "encodec"),
    "dac": ("DacConfig", "DacModel", "dac"),
    "mimi": ("MimiConfig", "MimiModel", "mimi"),
}

#: Bump when the tiny models change in a way their configuration does not show.
TINY_VERSION = 1
#: Seed of every tiny model (fixed: the run's seed must not change the tokens).
TINY_SEED = 0
#: Tiny configurations: the real 24 kHz architectures (rates, strides, codebook count and
#: size) with a few channels, two transformer layers for Mimi.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "encodec": {  # facebook/encodec_24khz: hidden 128, 32 filters
        "sampling_rate": 24000,
        "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
        "upsampling_ratios": [8, 5, 4, 2],
        "codebook_size": 1024,
        "normalize": False,
        "use_causal_conv": True,
        "hidden_size": 16,
        "num_filters": 4,
    },
    "dac": {  # descript/dac_24khz: encoder 64, decoder 1536
        "sampling_rate": 24000,
        "downsampling_ratios": [2, 4, 5, 8],
        "n_codebooks": 32,
        "codebook_size": 1024,
        "codebook_dim": 8,
        "encoder_hidden_size": 4,
        "decoder_hidden_size": 16,
    },
    "mimi": {  # kyutai/mimi: hidden 512, 64 filters, 8 layers x 8 heads
        "sampling_rate": 24000,
        "upsampling_ratios": [8, 6, 5, 4],
        "codebook_size": 2048,
        "num_quantizers": 32,
        "num_semantic_quantizers": 1,
        "hidden_size": 32,
        "num_filters": 4,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 64,
        "codebook_dim": 16,
        "vector_quantization_hidden_dimension": 16,
        "upsample_groups": 32,
    },
}


@dataclass(frozen=True)
class CodecWeightsInfo:
    """What was loaded, for fingerprints and provenance.

    Attributes:
        family: ``encodec``, ``dac`` or ``mimi``.
        source: ``hub`` or ``path``.
        name: hub id, or the resolved local folder.
        revision: pinned hub revision (None for a local folder).
        config_sha256: hash of ``config.json``.
        weight_files: weight file name -> size in bytes.
        weights_sha256: hash of the weight files when they total at most 64 MiB, else None.
    """

    family: str
    source: str
    name: str
    revision: str | None
    config_sha256: str
    weight_files: Mapping[str, int] = field(default_factory=dict)
    weights_sha256: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """What of the weights changes the tokens (no local path: a folder may move)."""
        return hf_weights.weights_fingerprint(self)


def check_family(family: str) -> None:
    """Raise :class:`WeightsUnavailableError` unless ``family`` is a supported codec."""
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown codec family {family!r}; choose one of {', '.join(FAMILIES)}"
        )


def _classes(family: str) -> tuple[Any, Any]:
    config_name, model_name, _ = FAMILIES[family]
    return hf_weights.transformers_classes(config_name, model_name)


def load_codec(
    weights: Mapping[str, Any] | None, family: str, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, CodecWeightsInfo]:
    """Load a codec in eval mode, float32, on ``device``, with gradients off.

    Args:
        weights: ``{"hub": id, "revision": sha}`` or ``{"path": dir}``.
        family: ``encodec``, ``dac`` or ``mimi`` (checked against the config's ``model_type``).
        device: torch device.

    Returns:
        ``(model, info)``: the transformers model and what was loaded.

    Raises:
        WeightsUnavailableError: no weights, hub weights neither cached nor downloadable, a
            missing or invalid folder, or weights of another family. One line each.
    """
    check_family(family)
    from transformers import AutoConfig  # any family's config: a wrong family is a clear error

    loaded = hf_weights.load_weights(
        weights,
        family=family,
        what="codec",
        classes=(AutoConfig, _classes(family)[1]),
        model_type=FAMILIES[family][2],
        device=device,
    )
    info = CodecWeightsInfo(
        family=family,
        source=loaded.source,
        name=loaded.name,
        revision=loaded.revision,
        config_sha256=loaded.config_sha256,
        weight_files=dict(loaded.weight_files),
        weights_sha256=loaded.weights_sha256,
    )
    revision = f"@{loaded.revision}" if loaded.revision else ""
    log.info("loaded %s codec %s%s on %s", family, loaded.name, revision, device)
    return loaded.model, info


# --------------------------------------------------------------------------- tiny models


def tiny_codec_spec(family: str) -> dict[str, Any]:
    """The full description of a tiny codec (what its folder name hashes)."""
    check_family(family)
    return {
        "version": TINY_VERSION,
        "family": family,
        "seed": TINY_SEED,
        "config": TINY_CONFIGS[family],
    }


def _calibration_audio(
    sample_rate: int, seconds: float, generator: torch.Generator
) -> torch.Tensor:
    """``[1, 1, T]`` seeded harmonic tone plus noise, amplitude ~0.3."""
    n = round(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    f0 = 110.0 + 90.0 * float(torch.rand((), generator=generator))
    signal = sum((0.3 / h) * torch.sin(2 * math.pi * h * f0 * t) for h in range(1, 6))
    signal = signal * (0.6 + 0.4 * torch.sin(2 * math.pi * 3.0 * t))
    return (signal + 0.05 * torch.randn(n, generator=generator)).reshape(1, 1, n)


def _seed_rvq_levels(
    layers: Any,
    residual: torch.Tensor,
    set_codebook: Callable[[Any, torch.Tensor], None],
    codebook_size: int,
    generator: torch.Generator,
) -> None:
    """Draw each residual level's codebook from a Gaussian fitted to that level's residual.

    Args:
        layers: the RVQ's vector quantisers (``encode([B, D, N]) -> [B, N]``, ``decode``).
        residual: ``[B, D, N]`` latents entering the first level.
        set_codebook: writes a ``[C, D]`` codebook into one layer.
        codebook_size: ``C``.
        generator: seeded generator.
    """
    for layer in layers:
        frames = residual.transpose(1, 2).reshape(-1, residual.shape[1])
        mean, std = frames.mean(dim=0), frames.std(dim=0).clamp(min=1e-4)
        noise = torch.randn(codebook_size, frames.shape[1], generator=generator)
        set_codebook(layer, mean + std * noise)
        residual = residual - layer.decode(layer.encode(residual))


def _init_tiny_codebooks(family: str, model: Any, generator: torch.Generator) -> None:
    """Give a freshly initialised EnCodec or Mimi usable random codebooks (in place)."""
    config = model.config
    audio = _calibration_audio(config.sampling_rate, 2.0, generator)
    if family == "encodec":

        def set_encodec(layer: Any, codebook: torch.Tensor) -> None:
            layer.codebook.embed.copy_(codebook)
            layer.codebook.embed_avg.copy_(codebook)
            layer.codebook.cluster_size.fill_(1.0)
            layer.codebook.inited.fill_(1.0)

        latents = model.encoder(audio)
        layers = model.quantizer.layers
        _seed_rvq_levels(layers, latents, set_encodec, config.codebook_size, generator)
    elif family == "mimi":

        def set_mimi(layer: Any, codebook: torch.Tensor) -> None:
            layer.codebook.embed_sum.copy_(codebook)
            layer.codebook.cluster_usage.fill_(1.0)
            layer.codebook._embed = None  # transformers caches embed_sum / cluster_usage

        latents = model.encoder(audio).latents
        quantizer = model.quantizer
        for rvq in (
            quantizer.semantic_residual_vector_quantizer,
            quantizer.acoustic_residual_vector_quantizer,
        ):
            projected = rvq.input_proj(latents) if rvq.input_proj is not None else latents
            _seed_rvq_levels(rvq.layers, projected, set_mimi, config.codebook_size, generator)


def tiny_codec_dir(family: str, root: Path) -> Path:
    """A tiny randomly initialised codec of ``family`` saved with ``save_pretrained``.

    Created once per configuration under ``root/<family>-tiny-<hash>`` (built in a temporary
    sibling folder and renamed into place, so a killed build never looks finished); later
    calls return the existing folder. Load it with ``load_codec({"path": folder}, family)``.

    Args:
        family: ``encodec``, ``dac`` or ``mimi``.
        root: parent folder (e.g. ``workdir / "models"``).

    Returns:
        The folder, holding ``config.json``, ``model.safetensors`` and a ``TINY_COMPLETE``
        marker with the spec.
    """
    spec = tiny_codec_spec(family)

    def save(folder: Path) -> None:
        config_cls, model_cls = _classes(family)
        generator = torch.Generator().manual_seed(TINY_SEED)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(TINY_SEED)
            model = model_cls(config_cls(**TINY_CONFIGS[family])).eval()
            _init_tiny_codebooks(family, model, generator)
        model.save_pretrained(folder)

    return hf_weights.tiny_model_dir(root, f"{family}-tiny", spec, save)

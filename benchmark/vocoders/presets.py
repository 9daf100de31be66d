"""Vocoder training presets: ``mini`` (CPU, well under a minute) and ``full`` (the recipe).

``mini`` is a tiny generator (32-d embeddings, 64 initial channels, one residual block per
stage, 72 k parameters) trained for 400 steps of 4 segments of 16 frames on the training
speakers of the synthetic ``mini-asr`` corpus (many voices, like LibriTTS in ``full``, and the
same tokens the ASR task encodes, so the generative path costs no extra extraction), on one
CPU thread, with the mel loss except for its last
3 steps: speechbrain's discriminators (70 M parameters, the same in every preset) cost
seconds per step on a CPU. ``adversarial_steps`` (``--adversarial-steps``) sets how many final
steps are adversarial.

``full`` is the DASB / speechbrain unit HiFi-GAN recipe for a GPU: LibriTTS train-clean-100
(``dev-clean`` for validation), 1024-d embeddings, 512 initial channels, upsampling
5 x 4 x 4 x 2 x 2 = 320 with kernels 11, 8, 8, 4, 4, residual blocks of kind 1 (kernels 3, 7,
11, dilations 1, 3, 5), batch 32, segments of 28 frames (8960 samples), AdamW lr 2e-4 with
betas (0.8, 0.99) decayed by 0.9999 every 1000 steps (about one epoch), mel weight 45,
feature matching 10, adversarial 1, every step adversarial.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import UsageError
from benchmark.vocoders.model import VocoderConfig, VocoderError

#: Shortest input speechbrain's multi-period discriminator takes (its reflect padding).
MIN_DISCRIMINATOR_SAMPLES = 1800

ARCHITECTURE_KEYS = (
    "embedding_dim",
    "attn_dim",
    "upsample_initial_channel",
    "upsample_factors",
    "upsample_kernel_sizes",
    "resblock_type",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)


@dataclass(frozen=True)
class VocoderPreset:
    """Budget, data and optimiser settings of a vocoder training run.

    Attributes:
        name: ``mini`` or ``full``.
        corpus: a :data:`~benchmark.vocoders.data.VOCODER_CORPORA` name.
        architecture: :class:`~benchmark.vocoders.model.VocoderConfig` fields (sizes).
        steps: generator updates.
        batch_size: segments per step.
        segment_frames: token frames per segment (``* hop`` samples of audio).
        lr: AdamW learning rate of both networks.
        betas: AdamW betas.
        weight_decay: AdamW weight decay.
        lr_gamma: ``ExponentialLR`` factor, applied every ``lr_decay_every`` steps.
        lr_decay_every: steps between learning-rate decays.
        mel_weight: weight of the mel L1 loss.
        adversarial_weight: weight of the generator's MSE adversarial loss.
        feature_weight: weight of the feature-matching loss.
        adversarial_steps: how many final steps train adversarially (mel loss only before
            them); None = every step (the published recipe), 0 = never.
        discriminator_frames: frames of a random crop the discriminator sees (same crop of
            real and generated audio); None = the whole segment.
        checkpoint_every: steps between checkpoints.
        validate_every: steps between validations.
        valid_utterances: validation utterances decoded for the mel distance.
        dnsmos_utterances: how many of them DNSMOS scores (0 = none).
        preload_audio: read the training audio into memory once.
        cpu_threads: torch intra-op threads while training on CPU (None = torch's default);
            the mini preset's tiny convolutions run fastest, and deterministically, on one.
    """

    name: str
    corpus: str
    architecture: Mapping[str, Any]
    steps: int
    batch_size: int
    segment_frames: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_gamma: float = 0.9999
    lr_decay_every: int = 1
    mel_weight: float = 45.0
    adversarial_weight: float = 1.0
    feature_weight: float = 10.0
    adversarial_steps: int | None = None
    discriminator_frames: int | None = None
    checkpoint_every: int = 1000
    validate_every: int = 1000
    valid_utterances: int = 20
    dnsmos_utterances: int = 4
    preload_audio: bool = False
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.architecture) - set(ARCHITECTURE_KEYS)
        if unknown:
            raise VocoderError(f"vocoder preset {self.name!r}: unknown architecture keys {unknown}")
        for name in ("steps", "batch_size", "segment_frames", "checkpoint_every", "validate_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VocoderError(f"vocoder preset {self.name!r}: {name} must be an int >= 1")

    @property
    def adversarial_start(self) -> int:
        """First step that trains adversarially (``steps`` when none does)."""
        if self.adversarial_steps is None:
            return 0
        return max(0, self.steps - self.adversarial_steps)

    @property
    def hop_length(self) -> int:
        """Samples per frame of the preset's generator."""
        return math.prod(self.architecture["upsample_factors"])

    def replace(self, **changes: Any) -> VocoderPreset:
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        out = dataclasses.asdict(self)
        out["architecture"] = json.loads(json.dumps(dict(self.architecture)))
        out["betas"] = list(self.betas)
        return out


PRESETS: dict[str, VocoderPreset] = {
    "mini": VocoderPreset(
        name="mini",
        corpus="mini-asr",
        architecture={
            "embedding_dim": 32,
            "attn_dim": 32,
            "upsample_initial_channel": 64,
            "upsample_factors": (8, 5, 4, 2),
            "upsample_kernel_sizes": (16, 11, 8, 4),
            "resblock_type": "2",
            "resblock_kernel_sizes": (3,),
            "resblock_dilation_sizes": ((1, 3),),
        },
        steps=400,
        batch_size=4,
        segment_frames=16,
        lr=1e-3,
        lr_gamma=0.999,
        adversarial_steps=3,
        discriminator_frames=8,
        checkpoint_every=100,
        validate_every=100,
        valid_utterances=8,
        # no DNSMOS in the mini vocoder's validations (8 files, ~20 s of its ~85 s): the
        # generative jobs judge every decoded file anyway
        dnsmos_utterances=0,
        preload_audio=True,
        cpu_threads=1,
    ),
    "full": VocoderPreset(
        name="full",
        corpus="libritts",
        architecture={
            "embedding_dim": 1024,
            "attn_dim": 128,
            "upsample_initial_channel": 512,
            "upsample_factors": (5, 4, 4, 2, 2),
            "upsample_kernel_sizes": (11, 8, 8, 4, 4),
            "resblock_type": "1",
            "resblock_kernel_sizes": (3, 7, 11),
            "resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        },
        steps=150_000,
        batch_size=32,
        segment_frames=28,
        lr_gamma=0.9999,
        lr_decay_every=1000,
        checkpoint_every=5000,
        validate_every=5000,
        valid_utterances=100,
        dnsmos_utterances=10,
    ),
}


def vocoder_config(
    preset: VocoderPreset,
    codebook_sizes: tuple[int, ...],
    trained_layers: tuple[int, ...],
    layer_dropout: bool,
    sample_rate: int,
    frame_rate: float,
) -> VocoderConfig:
    """The vocoder architecture of a preset for a tokenizer's codebooks."""
    return VocoderConfig(
        codebook_sizes=codebook_sizes,
        trained_layers=trained_layers,
        layer_dropout=layer_dropout and len(trained_layers) > 1,
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        **dict(preset.architecture),
    )


def resolve_preset(name: str) -> VocoderPreset:
    """The preset called ``name``."""
    if name not in PRESETS:
        raise UsageError(f"unknown vocoder preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]

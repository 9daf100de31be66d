"""Loading self-supervised speech encoders (WavLM, HuBERT, wav2vec 2.0) from a card's weights.

Weights are ``{"hub": id, "revision": sha}`` or ``{"path": dir}``, loaded through
:func:`benchmark.models.hf_weights.load_weights` (cache first, the hub only when reachable,
one-line :class:`~benchmark.errors.WeightsUnavailableError` otherwise); this module adds
what is specific to SSL encoders: the family's transformers classes, the input normalisation
in ``preprocessor_config.json``, the conv front end's receptive field and hop, and
:class:`SSLModelInfo`.

:func:`tiny_ssl_model_dir` makes the ``mini`` preset's encoders: randomly initialised models
of the real architectures (24 transformer layers, so the paper's layer indices stay valid)
but 64 wide with 2 attention heads and a narrow convolutional front end (32 channels in the
first layer, 64 in the six others; the standard
kernels and strides, so 50 frames/s at 16 kHz), created once per configuration, saved with
``save_pretrained`` and loaded back through :func:`load_ssl_model` like any local folder.
(With transformers' 512-channel front end, the convolutions alone would cost minutes per hour
of audio on a laptop CPU; four 16-wide heads cost twice what two 32-wide ones do. A 16-channel
front end costs about 35 % less per pretraining step but learns much more slowly on mini (see
:mod:`benchmark.models.ssl_pretrain`; mean loss of the last 50 of 300 steps): with MFCC targets
and lr 2e-3, 7.16 with 16 channels, 7.06 with 32 in the first five layers and 64 in the last
two, 6.36 with 64 everywhere; with the default targets and lr 5e-3, 6.34 with 64 everywhere and
6.27 with 32 in the first layer and 64 in the others, which costs about 20 % less.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import WeightsUnavailableError
from benchmark.models import hf_weights
from benchmark.models.hf_weights import hub_offline as hub_offline  # re-exported
from benchmark.models.hf_weights import hub_reachable as hub_reachable  # re-exported

log = logging.getLogger(__name__)

#: Families and their transformers ``(config class, model class, model_type)`` names.
FAMILIES: dict[str, tuple[str, str, str]] = {
    "wavlm": ("WavLMConfig", "WavLMModel", "wavlm"),
    "hubert": ("HubertConfig", "HubertModel", "hubert"),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "wav2vec2"),
}

#: Bump when the tiny models change in a way their configuration does not show.
TINY_VERSION = 1
#: Architecture of the mini preset's tiny encoders (same for every family).
TINY_SPEC: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 24,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": (32,) + (64,) * 6,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_bias": True,
    # the Base models' front end (group norm after the first convolution only): the Large
    # models' layer norm after every convolution cost a quarter of a pretraining step here
    "feat_extract_norm": "group",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 32,
    "num_conv_pos_embedding_groups": 4,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
    # transformers' default 0.02 leaves a random 24-layer pre-norm stack nearly an identity
    # (layers 3 and 23 differ by ~16%); 0.05 makes the layers differ (~100%) at sane norms
    "initializer_range": 0.05,
}


@dataclass(frozen=True)
class SSLModelInfo:
    """What was loaded, for fingerprints, provenance and input handling.

    Attributes:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        source: ``hub`` or ``path``.
        name: hub id, or the resolved local folder.
        revision: pinned hub revision (None for a local folder).
        folder: the folder the files were read from (hub cache snapshot or local folder).
        encoder_id: stable identity of the weights, recorded in quantizer provenance:
            ``<hub id>@<revision>``, or ``<model_type>:<hash>`` of a local folder's config
            and weight files (so it survives moving the folder).
        config_sha256: hash of ``config.json``.
        weight_files: weight file name -> size in bytes.
        weights_sha256: hash of the weight files' bytes when they are small (<= 64 MiB),
            else None (sizes stand in).
        num_hidden_layers: transformer layers of the model.
        hidden_size: feature dimension ``D`` of every layer.
        sample_rate: input rate in Hz (16000 for every supported model).
        do_normalize: whether the model expects each waveform normalised to zero mean and
            unit variance (``preprocessor_config.json``'s ``do_normalize``).
        feat_extract_norm: ``layer`` or ``group`` normalisation in the conv front end.
        receptive_field: samples seen by one output frame of the conv front end.
        hop: samples between two frames (320 = 20 ms at 16 kHz).
    """

    family: str
    source: str
    name: str
    revision: str | None
    folder: str
    encoder_id: str
    config_sha256: str
    weight_files: Mapping[str, int] = field(default_factory=dict)
    weights_sha256: str | None = None
    num_hidden_layers: int = 0
    hidden_size: int = 0
    sample_rate: int = 16000
    do_normalize: bool = False
    feat_extract_norm: str = "layer"
    receptive_field: int = 400
    hop: int = 320

    def fingerprint(self) -> dict[str, Any]:
        """What of the weights changes the tokens (no local folder path: it may move)."""
        return hf_weights.weights_fingerprint(
            self, encoder_id=self.encoder_id, do_normalize=self.do_normalize
        )


# --------------------------------------------------------------------------- helpers


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown SSL family {family!r}; choose one of {', '.join(FAMILIES)}"
        )


def _classes(family: str) -> tuple[Any, Any]:
    _check_family(family)
    config_name, model_name, _ = FAMILIES[family]
    return hf_weights.transformers_classes(config_name, model_name)


def _receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int]:
    """``(receptive field, hop)`` in samples of a stack of 1-D convolutions."""
    field_size, hop = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field_size += (kernel - 1) * hop
        hop *= stride
    return field_size, hop


def _preprocessor(folder: Path) -> dict[str, Any]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsUnavailableError(
            f"{path} is not valid JSON ({exc}); fix or remove it"
        ) from None


# --------------------------------------------------------------------------- loading


def load_ssl_model(
    weights: Mapping[str, Any] | None, family: str, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, SSLModelInfo]:
    """Load an SSL encoder in eval mode, float32, on ``device``.

    Args:
        weights: ``{"hub": id, "revision": sha}`` or ``{"path": dir}``.
        family: ``wavlm``, ``hubert`` or ``wav2vec2`` (checked against the config's
            ``model_type``).
        device: torch device.

    Returns:
        ``(model, info)``: the transformers base model (``WavLMModel``, ...) and what was
        loaded.

    Raises:
        WeightsUnavailableError: no weights, hub weights neither cached nor downloadable, a
            missing or invalid folder, or weights of another family. One line each.
    """
    loaded = hf_weights.load_weights(
        weights,
        family=family,
        what="encoder",
        classes=_classes(family),
        model_type=FAMILIES[family][2],
        device=device,
        hub_files=("preprocessor_config.json",),  # the model's input normalisation
    )
    model, folder, config = loaded.model, loaded.folder, loaded.model.config
    files = dict(loaded.weight_files)
    if loaded.source == "hub":
        encoder_id = f"{loaded.name}@{loaded.revision}"
    else:
        identity = json.dumps([loaded.config_sha256, sorted(files.items()), loaded.weights_sha256])
        encoder_id = f"{config.model_type}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    preprocessor = _preprocessor(folder)
    receptive, hop = _receptive_field(tuple(config.conv_kernel), tuple(config.conv_stride))
    info = SSLModelInfo(
        family=family,
        source=loaded.source,
        name=loaded.name,
        revision=loaded.revision,
        folder=str(folder),
        encoder_id=encoder_id,
        config_sha256=loaded.config_sha256,
        weight_files=files,
        weights_sha256=loaded.weights_sha256,
        num_hidden_layers=int(config.num_hidden_layers),
        hidden_size=int(config.hidden_size),
        sample_rate=int(preprocessor.get("sampling_rate", 16000)),
        do_normalize=bool(preprocessor.get("do_normalize", False)),
        feat_extract_norm=str(config.feat_extract_norm),
        receptive_field=receptive,
        hop=hop,
    )
    log.info(
        "loaded %s encoder %s (%d layers x %d dims) on %s",
        family,
        encoder_id,
        info.num_hidden_layers,
        info.hidden_size,
        device,
    )
    return model, info


# --------------------------------------------------------------------------- tiny models


def tiny_ssl_spec(family: str, seed: int = 0) -> dict[str, Any]:
    """The full description of a tiny model (what its folder name hashes)."""
    _check_family(family)
    return {"version": TINY_VERSION, "family": family, "seed": seed, "config": TINY_SPEC}


def tiny_ssl_model_dir(family: str, root: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised encoder of ``family`` saved with ``save_pretrained``.

    Created once per configuration under ``root/tiny-<family>-<hash>`` (see
    :func:`~benchmark.models.hf_weights.tiny_model_dir`: built in a temporary sibling folder
    and renamed into place, so a killed build never looks finished); later calls return the
    existing folder. Load it with ``load_ssl_model({"path": folder}, ...)``.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        root: parent folder (e.g. ``workdir / "models"``).
        seed: seed of the random initialisation.

    Returns:
        The folder, holding ``config.json``, ``model.safetensors`` and
        ``preprocessor_config.json`` (16 kHz, ``do_normalize: true``).
    """
    spec = tiny_ssl_spec(family, seed)

    def save(folder: Path) -> None:
        config_cls, model_cls = _classes(family)
        from transformers import Wav2Vec2FeatureExtractor

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_cls(config_cls(**TINY_SPEC)).eval()
        model.save_pretrained(folder)
        Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        ).save_pretrained(folder)

    return hf_weights.tiny_model_dir(root, f"tiny-{family}", spec, save)

"""Loading self-supervised speech encoders (WavLM, HuBERT, wav2vec 2.0) from a card's weights.

Two weight forms, one loading path:

- ``{"hub": "microsoft/wavlm-large", "revision": "<commit>"}``: the Hugging Face cache is
  tried first (offline); when the files are not cached, they are downloaded only if the hub
  can be reached and ``HF_HUB_OFFLINE`` is not set. Otherwise a
  :class:`~benchmark.errors.WeightsUnavailableError` names the model and how to provide it.
- ``{"path": "/local/dir"}``: a folder written by ``save_pretrained`` (``config.json`` plus
  ``*.safetensors`` or ``pytorch_model.bin``).

:func:`tiny_ssl_model_dir` makes the ``mini`` preset's encoders: randomly initialised models
of the real architectures (24 transformer layers, so the paper's layer indices stay valid)
but 64 wide with 2 attention heads and a 16-channel convolutional front end (the standard
kernels and strides, so 50 frames/s at 16 kHz), created once per configuration, saved with
``save_pretrained`` and loaded back through :func:`load_ssl_model` like any local folder.
(With transformers' 512-channel front end, the convolutions alone would cost minutes per hour
of audio on a laptop CPU; four 16-wide heads cost twice what two 32-wide ones do.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from benchmark.errors import WeightsUnavailableError

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
    "conv_dim": (16,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 32,
    "num_conv_pos_embedding_groups": 4,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
    # transformers' default 0.02 leaves a random 24-layer pre-norm stack nearly an identity
    # (layers 3 and 23 differ by ~16%); 0.05 makes the layers differ (~100%) at sane norms
    "initializer_range": 0.05,
}
_TRUE = {"1", "true", "yes", "on"}


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
        out: dict[str, Any] = {"family": self.family, "source": self.source}
        if self.source == "hub":
            out.update(hub=self.name, revision=self.revision)
        out.update(
            encoder_id=self.encoder_id,
            config_sha256=self.config_sha256,
            weight_files=dict(sorted(self.weight_files.items())),
            weights_sha256=self.weights_sha256,
            do_normalize=self.do_normalize,
        )
        return out


# --------------------------------------------------------------------------- helpers


def _transformers_class(family: str, which: int) -> Any:
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown SSL family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    import transformers

    return getattr(transformers, FAMILIES[family][which])


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub endpoint (``HF_ENDPOINT``) opens within ``timeout``."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weight_files(folder: Path) -> dict[str, int]:
    return {
        p.name: p.stat().st_size
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in (".safetensors", ".bin") and not p.name.startswith(".")
    }


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


def _hub_message(hub: str, revision: str) -> str:
    return (
        f"{hub}@{revision} is not in the Hugging Face cache and the hub cannot be reached; "
        f"download it on a connected machine (huggingface-cli download {hub} --revision "
        f"{revision}) or set weights: {{path: /local/dir}} in the card"
    )


# --------------------------------------------------------------------------- loading


def _check_family(config: Any, family: str, where: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type != FAMILIES[family][2]:
        raise WeightsUnavailableError(
            f"{where} holds a {model_type!r} model but the card says family {family!r}; "
            "fix the card's family or weights"
        )


def _load_from_hub(hub: str, revision: str, family: str) -> tuple[Any, Path]:
    config_cls, model_cls = _transformers_class(family, 0), _transformers_class(family, 1)
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    def attempt(local_only: bool) -> tuple[Any, Path]:
        config = config_cls.from_pretrained(hub, revision=revision, local_files_only=local_only)
        _check_family(config, family, f"{hub}@{revision}")
        model = model_cls.from_pretrained(
            hub, config=config, revision=revision, local_files_only=local_only
        )
        try:  # the model's input normalisation lives in preprocessor_config.json
            hf_hub_download(
                hub, "preprocessor_config.json", revision=revision, local_files_only=local_only
            )
        except (OSError, ValueError) as exc:
            log.warning("%s@%s: no preprocessor_config.json (%s)", hub, revision, exc)
        cached = try_to_load_from_cache(hub, "config.json", revision=revision)
        if not isinstance(cached, str):  # pragma: no cover - just loaded from there
            raise WeightsUnavailableError(f"{hub}@{revision}: config.json vanished from the cache")
        return model, Path(cached).parent

    try:
        return attempt(local_only=True)
    except (OSError, ValueError) as exc:
        log.debug("%s@%s not loadable from the cache: %s", hub, revision, exc)
    if hub_offline() or not hub_reachable():
        raise WeightsUnavailableError(_hub_message(hub, revision))
    try:
        return attempt(local_only=False)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailableError(
            f"{hub}@{revision} could not be downloaded ({reason}); check the hub id and "
            f"revision, or set weights: {{path: /local/dir}} in the card"
        ) from None


def _load_from_path(path: str, family: str) -> tuple[Any, Path]:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise WeightsUnavailableError(
            f"weights folder {folder} does not exist; point weights.path at a folder written "
            "by save_pretrained (config.json + model.safetensors)"
        )
    if not (folder / "config.json").is_file() or not _weight_files(folder):
        raise WeightsUnavailableError(
            f"weights folder {folder} lacks config.json or a *.safetensors/*.bin weight file; "
            "point weights.path at a folder written by save_pretrained"
        )
    config_cls, model_cls = _transformers_class(family, 0), _transformers_class(family, 1)
    try:
        config = config_cls.from_pretrained(folder, local_files_only=True)
        _check_family(config, family, f"weights folder {folder}")
        model = model_cls.from_pretrained(folder, config=config, local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailableError(
            f"weights folder {folder} cannot be loaded as a {family} model ({reason})"
        ) from None
    return model, folder.resolve()


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
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown SSL family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    if not weights:
        raise WeightsUnavailableError(
            f"no weights given for the {family} encoder; set weights: {{hub: ..., revision: ...}}"
            " or {path: /local/dir} in the card"
        )
    keys = set(weights)
    if keys == {"hub", "revision"}:
        hub, revision = str(weights["hub"]), str(weights["revision"])
        model, folder = _load_from_hub(hub, revision, family)
        source, name = "hub", hub
    elif keys == {"path"}:
        model, folder = _load_from_path(str(weights["path"]), family)
        source, name, revision = "path", str(folder), None
    else:
        raise WeightsUnavailableError(
            f"weights must be {{hub, revision}} or {{path}}, got keys {sorted(keys)}"
        )
    model = model.to(device=device, dtype=torch.float32).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    config = model.config
    config_sha = _sha256_file(folder / "config.json")
    files = _weight_files(folder)
    weights_sha = None
    if sum(files.values()) <= 64 << 20:
        digest = hashlib.sha256()
        for file_name in sorted(files):
            digest.update(_sha256_file(folder / file_name).encode())
        weights_sha = digest.hexdigest()
    if source == "hub":
        encoder_id = f"{name}@{revision}"
    else:
        identity = json.dumps([config_sha, sorted(files.items()), weights_sha])
        encoder_id = f"{config.model_type}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    preprocessor = _preprocessor(folder)
    receptive, hop = _receptive_field(tuple(config.conv_kernel), tuple(config.conv_stride))
    info = SSLModelInfo(
        family=family,
        source=source,
        name=name,
        revision=revision,
        folder=str(folder),
        encoder_id=encoder_id,
        config_sha256=config_sha,
        weight_files=files,
        weights_sha256=weights_sha,
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
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown SSL family {family!r}; choose one of {', '.join(FAMILIES)}"
        )
    return {"version": TINY_VERSION, "family": family, "seed": seed, "config": TINY_SPEC}


def tiny_ssl_model_dir(family: str, root: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised encoder of ``family`` saved with ``save_pretrained``.

    Created once per configuration under ``root/tiny-<family>-<hash>`` (built in a temporary
    sibling folder and renamed into place, so a killed build never looks finished); later
    calls return the existing folder. Load it with ``load_ssl_model({"path": folder}, ...)``.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        root: parent folder (e.g. ``workdir / "models"``).
        seed: seed of the random initialisation.

    Returns:
        The folder, holding ``config.json``, ``model.safetensors`` and
        ``preprocessor_config.json`` (16 kHz, ``do_normalize: true``).
    """
    spec = tiny_ssl_spec(family, seed)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(root)
    folder = root / f"tiny-{family}-{digest}"
    marker = folder / "TINY_COMPLETE"
    if marker.is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    config_cls, model_cls = _transformers_class(family, 0), _transformers_class(family, 1)
    from transformers import Wav2Vec2FeatureExtractor

    config = config_cls(**TINY_SPEC)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config).eval()
    try:
        model.save_pretrained(tmp)
        Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        ).save_pretrained(tmp)
        (tmp / "TINY_COMPLETE").write_text(json.dumps(spec, sort_keys=True) + "\n")
        if marker.is_file():  # another process finished first
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not marker.is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("created tiny %s encoder %s", family, folder)
    return folder

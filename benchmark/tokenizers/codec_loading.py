"""Loading neural audio codecs (EnCodec, DAC, Mimi) from a card's weights, and their tiny twins.

Three families, all through transformers (``EncodecModel``, ``DacModel``, ``MimiModel``), one
loading path:

- ``{"hub": "facebook/encodec_24khz", "revision": "<commit>"}``: the Hugging Face cache is tried
  first (offline); when the files are not cached they are downloaded only if the hub can be
  reached and ``HF_HUB_OFFLINE`` is not set. Otherwise a
  :class:`~benchmark.errors.WeightsUnavailableError` names the model and how to provide it.
- ``{"path": "/local/dir"}``: a folder written by ``save_pretrained``.

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

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import WeightsUnavailableError
from benchmark.models.ssl_loading import hub_offline, hub_reachable

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
#: Local folders whose weight files are at most this big are hashed for the fingerprint.
_HASH_LIMIT = 64 << 20


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
        out: dict[str, Any] = {"family": self.family, "source": self.source}
        if self.source == "hub":
            out.update(hub=self.name, revision=self.revision)
        out.update(
            config_sha256=self.config_sha256,
            weight_files=dict(sorted(self.weight_files.items())),
            weights_sha256=self.weights_sha256,
        )
        return out


def check_family(family: str) -> None:
    """Raise :class:`WeightsUnavailableError` unless ``family`` is a supported codec."""
    if family not in FAMILIES:
        raise WeightsUnavailableError(
            f"unknown codec family {family!r}; choose one of {', '.join(FAMILIES)}"
        )


def _classes(family: str) -> tuple[Any, Any]:
    import transformers

    config_name, model_name, _ = FAMILIES[family]
    return getattr(transformers, config_name), getattr(transformers, model_name)


def _auto_config(source: str | Path, **kwargs: Any) -> Any:
    """Any family's config (so weights of the wrong family get a clear error, not a crash)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, **kwargs)


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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_model_type(config: Any, family: str, where: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type != FAMILIES[family][2]:
        raise WeightsUnavailableError(
            f"{where} holds a {model_type!r} model but the card says family {family!r}; "
            "fix the card's family or weights"
        )


def _load_from_hub(hub: str, revision: str, family: str) -> tuple[Any, Path]:
    model_cls = _classes(family)[1]
    from huggingface_hub import try_to_load_from_cache

    def attempt(local_only: bool) -> tuple[Any, Path]:
        config = _auto_config(hub, revision=revision, local_files_only=local_only)
        _check_model_type(config, family, f"{hub}@{revision}")
        model = model_cls.from_pretrained(
            hub, config=config, revision=revision, local_files_only=local_only
        )
        cached = try_to_load_from_cache(hub, "config.json", revision=revision)
        if not isinstance(cached, str):  # pragma: no cover - just loaded from there
            raise WeightsUnavailableError(f"{hub}@{revision}: config.json vanished from the cache")
        return model, Path(cached).parent

    try:
        return attempt(local_only=True)
    except (OSError, ValueError) as exc:
        log.debug("%s@%s not loadable from the cache: %s", hub, revision, exc)
    if hub_offline() or not hub_reachable():
        raise WeightsUnavailableError(
            f"{hub}@{revision} ({family} codec) is not in the Hugging Face cache and the hub "
            f"cannot be reached; download it on a connected machine (huggingface-cli download "
            f"{hub} --revision {revision}) or set weights: {{path: /local/dir}} in the card"
        )
    try:
        return attempt(local_only=False)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"{hub}@{revision} ({family} codec) could not be downloaded ({_reason(exc)}); check "
            "the hub id and revision, or set weights: {path: /local/dir} in the card"
        ) from None


def _load_from_path(path: str, family: str) -> tuple[Any, Path]:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file() or not folder.is_dir() or not _weight_files(folder):
        raise WeightsUnavailableError(
            f"{family} codec folder {folder} is missing or lacks config.json and a "
            "*.safetensors/*.bin file; point weights.path at a folder written by save_pretrained"
        )
    model_cls = _classes(family)[1]
    try:
        config = _auto_config(folder, local_files_only=True)
        _check_model_type(config, family, f"codec folder {folder}")
        model = model_cls.from_pretrained(folder, config=config, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"codec folder {folder} cannot be loaded as a {family} model ({_reason(exc)})"
        ) from None
    return model, folder.resolve()


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
    if not weights:
        raise WeightsUnavailableError(
            f"no weights given for the {family} codec; set weights: {{hub: ..., revision: ...}} "
            "or {path: /local/dir} in the card, or tiny_model: true for a random test model"
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
    files = _weight_files(folder)
    weights_sha = None
    if sum(files.values()) <= _HASH_LIMIT:
        digest = hashlib.sha256()
        for file_name in sorted(files):
            digest.update(_sha256_file(folder / file_name).encode())
        weights_sha = digest.hexdigest()
    info = CodecWeightsInfo(
        family=family,
        source=source,
        name=name,
        revision=revision,
        config_sha256=_sha256_file(folder / "config.json"),
        weight_files=files,
        weights_sha256=weights_sha,
    )
    log.info("loaded %s codec %s%s on %s", family, name, f"@{revision}" if revision else "", device)
    return model, info


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
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(root)
    folder = root / f"{family}-tiny-{digest}"
    marker = folder / "TINY_COMPLETE"
    if marker.is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    config_cls, model_cls = _classes(family)
    config = config_cls(**TINY_CONFIGS[family])
    generator = torch.Generator().manual_seed(TINY_SEED)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(TINY_SEED)
        model = model_cls(config).eval()
        _init_tiny_codebooks(family, model, generator)
    try:
        model.save_pretrained(tmp)
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
    log.info("created tiny %s codec %s", family, folder)
    return folder

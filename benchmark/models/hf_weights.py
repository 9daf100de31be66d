"""Transformers weights named by a card: a hub id with a pinned revision, or a local folder.

One loading path for every model family that transformers holds (the SSL encoders of
:mod:`benchmark.models.ssl_loading`, the codecs of :mod:`benchmark.tokenizers.codec_loading`):

- ``{"hub": "microsoft/wavlm-large", "revision": "<commit>"}``: the Hugging Face cache is tried
  first (offline); when the files are not cached they are downloaded only if the hub can be
  reached and ``HF_HUB_OFFLINE`` is not set. Otherwise a one-line
  :class:`~benchmark.errors.WeightsUnavailableError` names the model and how to provide it.
- ``{"path": "/local/dir"}``: a folder written by ``save_pretrained`` (``config.json`` plus
  ``*.safetensors`` or ``pytorch_model.bin``).

:func:`load_weights` returns the model in eval mode, float32, gradients off, with what
identifies its weights for fingerprints (hashes of ``config.json`` and of small weight files).
:func:`tiny_model_dir` builds a family's tiny random stand-in once per specification.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from benchmark.errors import WeightsUnavailableError
from benchmark.pipeline.store import atomic_folder, output_lock

log = logging.getLogger(__name__)

#: Weight files totalling at most this many bytes are hashed for the fingerprint.
HASH_LIMIT = 64 << 20
#: Marker file of a finished tiny model folder (holds the specification as JSON).
TINY_MARKER = "TINY_COMPLETE"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class LoadedWeights:
    """A model loaded by :func:`load_weights` and what identifies its weights.

    Attributes:
        model: the transformers model (eval mode, float32, gradients off, on the device).
        source: ``hub`` or ``path``.
        name: hub id, or the resolved local folder.
        revision: pinned hub revision (None for a local folder).
        folder: the folder the files were read from (hub cache snapshot or local folder).
        config_sha256: hash of ``config.json``.
        weight_files: weight file name -> size in bytes.
        weights_sha256: hash of the weight files when they total at most 64 MiB, else None.
    """

    model: torch.nn.Module
    source: str
    name: str
    revision: str | None
    folder: Path
    config_sha256: str
    weight_files: Mapping[str, int] = field(default_factory=dict)
    weights_sha256: str | None = None


# --------------------------------------------------------------------------- hub access


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


def transformers_classes(config_name: str, model_name: str) -> tuple[Any, Any]:
    """``(config class, model class)`` of transformers by name (imports transformers)."""
    import transformers

    return getattr(transformers, config_name), getattr(transformers, model_name)


# --------------------------------------------------------------------------- identity


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_files(folder: Path) -> dict[str, int]:
    """``*.safetensors`` / ``*.bin`` file name -> size in bytes (hidden files skipped)."""
    return {
        p.name: p.stat().st_size
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in (".safetensors", ".bin") and not p.name.startswith(".")
    }


def weights_sha256(folder: Path, files: Mapping[str, int]) -> str | None:
    """Hash of the files' hashes (in name order) when they total at most 64 MiB, else None."""
    if sum(files.values()) > HASH_LIMIT:
        return None
    digest = hashlib.sha256()
    for file_name in sorted(files):
        digest.update(sha256_file(folder / file_name).encode())
    return digest.hexdigest()


def weights_fingerprint(info: Any, **extra: Any) -> dict[str, Any]:
    """What of loaded weights changes the outputs (no local folder path: a folder may move).

    Args:
        info: an info record with ``family``, ``source``, ``name``, ``revision``,
            ``config_sha256``, ``weight_files`` and ``weights_sha256`` attributes.
        **extra: family-specific entries added to the result.

    Returns:
        ``family``, ``source``, ``hub`` and ``revision`` (hub weights only), the hashes and
        sizes, then ``extra``.
    """
    out: dict[str, Any] = {"family": info.family, "source": info.source}
    if info.source == "hub":
        out.update(hub=info.name, revision=info.revision)
    out.update(
        config_sha256=info.config_sha256,
        weight_files=dict(sorted(info.weight_files.items())),
        weights_sha256=info.weights_sha256,
    )
    out.update(extra)
    return out


def spec_digest(spec: Mapping[str, Any]) -> str:
    """12 hex digits of a JSON-serialisable specification (key order does not matter)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- loading


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_model_type(config: Any, model_type: str, family: str, where: str) -> None:
    found = getattr(config, "model_type", None)
    if found != model_type:
        raise WeightsUnavailableError(
            f"{where} holds a {found!r} model but the card says family {family!r}; "
            "fix the card's family or weights"
        )


@dataclass(frozen=True)
class _Family:
    """How to load one family: its classes, its ``model_type`` and optional hub files."""

    config_cls: Any
    model_cls: Any
    model_type: str
    family: str
    hub_files: Sequence[str]


def _load_from_hub(hub: str, revision: str, spec: _Family) -> tuple[Any, Path]:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    def attempt(local_only: bool) -> tuple[Any, Path]:
        config = spec.config_cls.from_pretrained(
            hub, revision=revision, local_files_only=local_only
        )
        _check_model_type(config, spec.model_type, spec.family, f"{hub}@{revision}")
        model = spec.model_cls.from_pretrained(
            hub, config=config, revision=revision, local_files_only=local_only
        )
        for file_name in spec.hub_files:  # optional files that sit beside the weights
            try:
                hf_hub_download(hub, file_name, revision=revision, local_files_only=local_only)
            except (OSError, ValueError) as exc:
                log.warning("%s@%s: no %s (%s)", hub, revision, file_name, exc)
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
            f"{hub}@{revision} is not in the Hugging Face cache and the hub cannot be reached; "
            f"download it on a connected machine (huggingface-cli download {hub} --revision "
            f"{revision}) or set weights: {{path: /local/dir}} in the card"
        )
    try:
        return attempt(local_only=False)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"{hub}@{revision} could not be downloaded ({_reason(exc)}); check the hub id and "
            "revision, or set weights: {path: /local/dir} in the card"
        ) from None


def _load_from_path(path: str, spec: _Family) -> tuple[Any, Path]:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        missing = "it does not exist"
    elif not (folder / "config.json").is_file():
        missing = "no config.json"
    elif not weight_files(folder):
        missing = "no weight file"
    else:
        missing = ""
    if missing:
        raise WeightsUnavailableError(
            f"weights folder {folder} is missing or lacks config.json and a "
            f"*.safetensors/*.bin weight file ({missing}); point weights.path at a folder "
            "written by save_pretrained"
        )
    where = f"weights folder {folder}"
    try:
        config = spec.config_cls.from_pretrained(folder, local_files_only=True)
        _check_model_type(config, spec.model_type, spec.family, where)
        model = spec.model_cls.from_pretrained(folder, config=config, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"{where} cannot be loaded as a {spec.family} model ({_reason(exc)})"
        ) from None
    return model, folder.resolve()


def load_weights(
    weights: Mapping[str, Any] | None,
    *,
    family: str,
    what: str,
    classes: tuple[Any, Any],
    model_type: str,
    device: str | torch.device = "cpu",
    hub_files: Sequence[str] = (),
) -> LoadedWeights:
    """Load the model a card's ``weights`` name, in eval mode, float32, gradients off.

    Args:
        weights: ``{"hub": id, "revision": sha}`` or ``{"path": dir}``.
        family: the card's family (``wavlm``, ``encodec``, ...), for messages.
        what: what the model is (``encoder``, ``codec``), for messages.
        classes: ``(config class, model class)``; the config class's ``from_pretrained``
            reads ``config.json`` (``AutoConfig`` reads any family's).
        model_type: the ``model_type`` the config must have (weights of another family are
            a clear error, not a crash).
        device: torch device.
        hub_files: optional files fetched along with hub weights (a warning when absent).

    Returns:
        The model and what identifies its weights.

    Raises:
        WeightsUnavailableError: no weights, hub weights neither cached nor downloadable, a
            missing or invalid folder, or weights of another family. One line each.
    """
    if not weights:
        raise WeightsUnavailableError(
            f"no weights given for the {family} {what}; set weights: {{hub: ..., revision: ...}}"
            " or {path: /local/dir} in the card, or tiny_model: true for a random test model"
        )
    spec = _Family(classes[0], classes[1], model_type, family, tuple(hub_files))
    keys = set(weights)
    if keys == {"hub", "revision"}:
        hub, revision = str(weights["hub"]), str(weights["revision"])
        model, folder = _load_from_hub(hub, revision, spec)
        source, name = "hub", hub
    elif keys == {"path"}:
        model, folder = _load_from_path(str(weights["path"]), spec)
        source, name, revision = "path", str(folder), None
    else:
        raise WeightsUnavailableError(
            f"weights must be {{hub, revision}} or {{path}}, got keys {sorted(keys)}"
        )
    model = model.to(device=device, dtype=torch.float32).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    files = weight_files(folder)
    return LoadedWeights(
        model=model,
        source=source,
        name=name,
        revision=revision,
        folder=folder,
        config_sha256=sha256_file(folder / "config.json"),
        weight_files=files,
        weights_sha256=weights_sha256(folder, files),
    )


# --------------------------------------------------------------------------- tiny models


def tiny_model_dir(
    root: Path, prefix: str, spec: Mapping[str, Any], save: Callable[[Path], None]
) -> Path:
    """The folder ``root/<prefix>-<hash of spec>``, built by ``save(folder)`` once.

    ``save`` writes the model (``save_pretrained``) into a temporary sibling folder, which
    gets a ``TINY_COMPLETE`` marker holding ``spec`` and is then renamed into place, so a
    killed build never looks finished; later calls (and a process that lost the race to
    build it) return the existing folder.

    Args:
        root: parent folder (e.g. ``workdir / "models"``).
        prefix: folder name before the hash (``tiny-wavlm``, ``dac-tiny``).
        spec: JSON-serialisable description of everything that makes the model.
        save: builds the model and writes it into the folder it is given.

    Returns:
        The finished folder.
    """
    root = Path(root)
    folder = root / f"{prefix}-{spec_digest(spec)}"
    marker = folder / TINY_MARKER
    if marker.is_file():
        return folder
    with output_lock(folder, f"tiny model {folder.name}"):
        if marker.is_file():  # another process finished it while we waited
            return folder
        with atomic_folder(folder) as tmp:
            save(tmp)
            (tmp / TINY_MARKER).write_text(json.dumps(spec, sort_keys=True) + "\n")
    log.info("created tiny model %s", folder)
    return folder

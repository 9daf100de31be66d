"""Parameter checks of the discrete SSL tokenizer, done in its constructor before any load.

Each raises :class:`~benchmark.models.ssl_features.SSLConfigError` (a ``ValueError``), which the
planner turns into a usage error (exit code 2) before any corpus is prepared or any feature is
extracted: layers that are not a list of distinct ints or lie outside the encoder's depth
(read from the tiny model's spec or the weights' ``config.json`` without loading them), and
cluster counts that k-means cannot fit from the ``kmeans_max_frames`` frames it samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.models.ssl_features import SSLConfigError
from benchmark.models.ssl_loading import TINY_SPEC

DEFAULT_KMEANS_DATA: dict[str, str] = {"corpus": "mini", "subset": "ood", "split": "train"}


def layers_param(layers: Any) -> tuple[int, ...]:
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if not isinstance(layers, Sequence) or isinstance(layers, str) or not layers:
        raise SSLConfigError(f"layers must be a non-empty list of ints, got {layers!r}")
    if any(isinstance(x, bool) or not isinstance(x, int) for x in layers):
        raise SSLConfigError(f"layers must be ints, got {list(layers)!r}")
    if len(set(layers)) != len(layers):
        raise SSLConfigError(f"layers {list(layers)} repeat a layer; list each layer once")
    return tuple(layers)


def clusters_param(num_clusters: Any, layers: tuple[int, ...]) -> tuple[int, ...]:
    values = [num_clusters] * len(layers) if isinstance(num_clusters, int) else num_clusters
    if (
        not isinstance(values, Sequence)
        or len(values) != len(layers)
        or any(isinstance(k, bool) or not isinstance(k, int) or k < 2 for k in values)
    ):
        raise SSLConfigError(
            f"num_clusters must be an int >= 2 or one such int per layer ({len(layers)}), "
            f"got {num_clusters!r}"
        )
    return tuple(values)


def architecture_depth(
    family: str, tiny_model: bool, weights: Mapping[str, Any] | None
) -> tuple[int | None, str]:
    """Transformer layers of the encoder a card names, read without loading its weights.

    The mini preset's tiny encoder has :data:`TINY_SPEC`'s depth; a local weights folder or a
    hub snapshot already in the local cache has its ``config.json``.

    Returns:
        ``(depth, model)``: depth None when the configuration cannot be read yet (the model
        load then checks the layers); model names it (``wavlm:tiny``, ``wavlm:<hub id>``...).
    """
    if tiny_model:
        return int(TINY_SPEC["num_hidden_layers"]), f"{family}:tiny (mini preset)"
    config: Path | None = None
    model = f"{family}:(no weights)"
    if weights and weights.get("path"):
        model = f"{family}:{weights['path']}"
        config = Path(str(weights["path"])).expanduser() / "config.json"
    elif weights and weights.get("hub"):
        model = f"{family}:{weights['hub']}"
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(
            str(weights["hub"]), "config.json", revision=weights.get("revision")
        )
        config = Path(cached) if isinstance(cached, str) else None
    if config is None or not config.is_file():
        return None, model
    try:
        depth = json.loads(config.read_text(encoding="utf-8")).get("num_hidden_layers")
    except (OSError, ValueError, AttributeError):
        return None, model
    return (depth if isinstance(depth, int) and not isinstance(depth, bool) else None), model


def check_layer_range(layers: tuple[int, ...], depth: int | None, model: str) -> None:
    """Refuse layers outside ``1..depth`` (nothing to check when the depth is unknown)."""
    if depth is None:
        return
    outside = [layer for layer in layers if not 1 <= layer <= depth]
    if outside:
        raise SSLConfigError(
            f"layer {outside[0]} is outside {model}'s range 1..{depth} "
            f"({depth} transformer layers); pick layers in that range"
        )


def check_clusters_budget(num_clusters: tuple[int, ...], max_frames: int) -> None:
    """K-means needs at least K frames; the reservoir keeps at most ``max_frames`` per layer."""
    too_many = [k for k in num_clusters if k > max_frames]
    if too_many:
        raise SSLConfigError(
            f"num_clusters {too_many[0]} exceeds kmeans_max_frames={max_frames} (k-means needs "
            f"at least K frames and samples at most {max_frames} per layer); lower num_clusters "
            "or raise kmeans_max_frames"
        )


def data_param(kmeans_data: Any) -> dict[str, str]:
    spec = dict(DEFAULT_KMEANS_DATA if kmeans_data is None else kmeans_data)
    unknown = set(spec) - {"corpus", "subset", "split"}
    if unknown or "subset" not in spec:
        raise SSLConfigError(
            f"kmeans_data must be {{corpus, subset, split}} (subset required), got {kmeans_data!r}"
        )
    spec.setdefault("corpus", "mini")
    spec.setdefault("split", "train")
    if any(not isinstance(v, str) or not v for v in spec.values()):
        raise SSLConfigError(f"kmeans_data values must be non-empty strings, got {spec!r}")
    return spec


def check_fit_frames(
    num_clusters: tuple[int, ...],
    durations: Sequence[float],
    frame_rate: float,
    name: str,
    error: type[ValueError] = SSLConfigError,
) -> None:
    """Refuse a K that the fit data cannot give k-means (more centroids than frames).

    Args:
        num_clusters: K per layer.
        durations: seconds per utterance of the fit data.
        frame_rate: encoder frames per second.
        name: the fit data's name, for the message.
        error: the exception class to raise (the calling tokenizer's config error).

    Raises:
        SSLConfigError: (or ``error``) the largest K exceeds an upper bound of the fit
            data's frames.
    """
    frames = sum(math.ceil(d * frame_rate) + 1 for d in durations)
    largest = max(num_clusters)
    if largest > frames:
        raise error(
            f"num_clusters {largest} is more than the at most {frames} frames of the k-means "
            f"data {name} ({sum(durations):.0f} s at {frame_rate:g} Hz); lower num_clusters or "
            "fit on more data (kmeans_data)"
        )

"""Tokenizer and task cards: small YAML files, validated strictly.

A card names what implements it and how it is set up::

    name: dummy
    description: Quantised log-mel bands (a scaffolding tokenizer).
    class: benchmark.tokenizers.dummy:MelBandTokenizer
    params: {n_bands: 8, levels: 32}
    weights: {hub: microsoft/wavlm-large, revision: <commit>}   # or {path: /local/dir}
    presets:
      mini: {params: {levels: 16}}
      full: {weights: {...}}

Unknown keys and wrong types are errors naming the file and the key. A card resolved for a
preset merges the preset's ``params`` over the base ``params`` (shallow) and replaces
``weights`` when the preset gives them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import CardError

PRESETS = ("mini", "full")
_TOP_KEYS = {
    "name": str,
    "description": str,
    "class": str,
    "params": dict,
    "weights": (dict, type(None)),
    "presets": dict,
    "display_name": str,
    "reference_name": str,
}
_REQUIRED = ("name", "description", "class")
_PRESET_KEYS = {"params": dict, "weights": (dict, type(None))}
_WEIGHT_FORMS = ({"hub", "revision"}, {"path"})
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
#: Names become folder names of records (with a ``~<hash>`` suffix for overrides).
MAX_NAME_LENGTH = 100
_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Card:
    """A validated card.

    Attributes:
        name: registry name (lower case, digits, ``.``, ``_``, ``-``).
        description: one line saying what it is.
        target: ``"module:attr"`` of the implementing class.
        params: constructor parameters.
        weights: ``{"hub", "revision"}``, ``{"path"}`` or None.
        presets: per-preset overrides ``{"mini": {"params": ..., "weights": ...}}``.
        path: the YAML file, or None for cards made in code (plugins).
        sha256: hash of the file's bytes (or of the canonical JSON for cards made in code).
    """

    name: str
    description: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, Any] | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    display_name: str | None = None
    reference_name: str | None = None
    path: Path | None = None
    sha256: str = ""

    def resolve(self, preset: str) -> ResolvedCard:
        """Merge the preset's overrides over the base parameters and weights."""
        if preset not in PRESETS:
            raise CardError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        override = self.presets.get(preset, {})
        params = {**self.params, **override.get("params", {})}
        weights = override.get("weights", self.weights)
        return ResolvedCard(card=self, preset=preset, params=params, weights=weights)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (used in fingerprints and provenance)."""
        return {
            "name": self.name,
            "class": self.target,
            "params": dict(self.params),
            "weights": dict(self.weights) if self.weights else None,
            "presets": {k: dict(v) for k, v in self.presets.items()},
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class ResolvedCard:
    """A card with one preset applied: what a component is built from."""

    card: Card
    preset: str
    params: Mapping[str, Any]
    weights: Mapping[str, Any] | None

    def with_overrides(self, overrides: Mapping[str, Any]) -> ResolvedCard:
        """The same card with some parameters replaced (``--tokenizer-param k=v``)."""
        if not overrides:
            return self
        return ResolvedCard(self.card, self.preset, {**self.params, **overrides}, self.weights)

    def fingerprint_payload(self) -> dict[str, Any]:
        """What of the card changes results: class, merged params, weights."""
        return {
            "class": self.card.target,
            "params": dict(self.params),
            "weights": dict(self.weights) if self.weights else None,
        }


def _check_type(where: str, key: str, value: Any, expected: Any) -> None:
    if not isinstance(value, expected):
        names = (
            " or ".join(t.__name__ if t is not type(None) else "null" for t in expected)
            if isinstance(expected, tuple)
            else expected.__name__
        )
        raise CardError(f"{where}: key {key!r} must be {names}, got {type(value).__name__}")


def _check_weights(where: str, weights: Any) -> None:
    if weights is None:
        return
    keys = set(weights)
    if keys not in _WEIGHT_FORMS:
        raise CardError(
            f"{where}: 'weights' must be {{hub, revision}} or {{path}}, got keys {sorted(keys)}"
        )
    for key, value in weights.items():
        if not isinstance(value, str) or not value:
            raise CardError(f"{where}: weights.{key} must be a non-empty string")


def card_from_mapping(
    data: Any, where: str, path: Path | None = None, sha256: str | None = None
) -> Card:
    """Validate a parsed card and build a :class:`Card`.

    Args:
        data: the parsed YAML (or a dict built by a plugin).
        where: how to name the card in errors (its file path).
        path: the file it came from, if any.
        sha256: hash of the file bytes; computed from canonical JSON when None.

    Raises:
        CardError: unknown or missing keys, wrong types, a bad name or target.
    """
    if not isinstance(data, dict):
        raise CardError(f"{where}: a card must be a YAML mapping, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise CardError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(_TOP_KEYS)}")
        _check_type(where, key, data[key], _TOP_KEYS[key])
    for key in _REQUIRED:
        if key not in data:
            raise CardError(f"{where}: missing required key {key!r}")
    if not _NAME_RE.match(data["name"]):
        raise CardError(
            f"{where}: name {data['name']!r} must be lower case letters, digits, '.', '_' or '-'"
        )
    if len(data["name"]) > MAX_NAME_LENGTH:
        raise CardError(
            f"{where}: name {data['name'][:40]!r}... is {len(data['name'])} characters; "
            f"names become folder names, so keep them to {MAX_NAME_LENGTH}"
        )
    if not _TARGET_RE.match(data["class"]):
        raise CardError(f"{where}: class {data['class']!r} must look like 'package.module:Class'")
    _check_weights(where, data.get("weights"))
    presets = data.get("presets", {})
    for preset, override in presets.items():
        if preset not in PRESETS:
            raise CardError(
                f"{where}: unknown preset {preset!r} under 'presets'; allowed: {', '.join(PRESETS)}"
            )
        _check_type(where, f"presets.{preset}", override, dict)
        for key in override:
            if key not in _PRESET_KEYS:
                raise CardError(
                    f"{where}: unknown key {key!r} under presets.{preset}; allowed: "
                    f"{', '.join(_PRESET_KEYS)}"
                )
            _check_type(where, f"presets.{preset}.{key}", override[key], _PRESET_KEYS[key])
        _check_weights(f"{where} presets.{preset}", override.get("weights"))
    if sha256 is None:
        sha256 = hashlib.sha256(
            json.dumps(data, sort_keys=True, default=str).encode("utf-8")
        ).hexdigest()
    return Card(
        name=data["name"],
        description=data["description"],
        target=data["class"],
        params=dict(data.get("params", {})),
        weights=data.get("weights"),
        presets={k: dict(v) for k, v in presets.items()},
        display_name=data.get("display_name"),
        reference_name=data.get("reference_name"),
        path=path,
        sha256=sha256,
    )


def load_card(path: Path) -> Card:
    """Read and validate one card file.

    Raises:
        CardError: the file is missing, not YAML, or not a valid card.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read card ({exc.strerror})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise CardError(
            f"{path}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    return card_from_mapping(data, str(path), path=path, sha256=hashlib.sha256(raw).hexdigest())

"""Study files: a grid of tokenizers x tokenizer params x tasks x task params x seeds.

A study is a YAML file (top-level ``studies/``), validated strictly, unknown keys being
errors that name the file and the key::

    name: kmeans-clusters              # [a-z0-9-]+, names the study's record
    description: K = 1000 vs 2000 x embedding initialisation (Mousavi et al. 2024)
    preset: full                       # default preset (``--preset`` overrides it)
    seeds: [0, 1, 2]                   # default [0]
    tokenizers:                        # name or card path, each with its own grid
      - tokenizer: wavlm-attn
        params: {dtype: fp32}          # fixed overrides of this tokenizer's card
        grid: {num_clusters: [1000, 2000]}
    tasks:                             # ``variants``: a list of parameter sets (x grid)
      - task: style
        variants: [{fusion: attention}, {fusion: single, fusion_layer: 0}]
      - task: asr
        grid: {embedding_init: [random, tokenizer]}
    presets:                           # per-preset replacements of seeds/tokenizers/tasks
      mini:
        seeds: [0]
        tokenizers: [{tokenizer: wavlm-attn, grid: {num_clusters: [64, 128]}}]

Every combination is one cell (an ordinary job, keyed and cached like a ``run``): the grid of
one tokenizer applies to that tokenizer only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.cards import PRESETS
from benchmark.errors import UsageError

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TOP = {"name", "description", "preset", "seeds", "tokenizers", "tasks", "vocoder", "presets"}
_PRESET_KEYS = {"seeds", "tokenizers", "tasks", "vocoder"}
#: A vocoder study (single-layer vs scalable vocoders) instead of tasks: its settings.
_VOCODER_KEYS = {"steps", "adversarial_steps", "corpus"}


class StudyError(UsageError):
    """A malformed study file (names the file, the key and the fix)."""


Params = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Axis:
    """One tokenizer (or task) of a study and the parameter sets it runs with."""

    ref: str
    variants: tuple[Params, ...]


@dataclass(frozen=True)
class Cell:
    """One (tokenizer, its params, task, its params) combination; runs every seed."""

    tokenizer: str
    tokenizer_params: Params
    task: str
    task_params: Params


@dataclass(frozen=True)
class Study:
    """A validated study, resolved for one preset."""

    name: str
    description: str
    preset: str
    seeds: tuple[int, ...]
    tokenizers: tuple[Axis, ...]
    tasks: tuple[Axis, ...]
    path: Path
    sha256: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    vocoder: dict[str, Any] | None = None

    def cells(self) -> list[Cell]:
        """Every combination, in file order (duplicates dropped)."""
        found = [
            Cell(tok.ref, tok_params, task.ref, task_params)
            for tok in self.tokenizers
            for tok_params in tok.variants
            for task in self.tasks
            for task_params in task.variants
        ]
        return _unique(found)

    def to_dict(self) -> dict[str, Any]:
        """What the study record stores about the study."""
        return {
            "name": self.name,
            "description": self.description,
            "preset": self.preset,
            "seeds": list(self.seeds),
            "file": str(self.path),
            "sha256": self.sha256,
            "tokenizers": [
                {"ref": a.ref, "variants": [dict(v) for v in a.variants]} for a in self.tokenizers
            ],
            "tasks": [
                {"ref": a.ref, "variants": [dict(v) for v in a.variants]} for a in self.tasks
            ],
            "vocoder": self.vocoder,
        }


def load_study(path: Path, preset: str | None = None) -> Study:
    """Read and validate a study file for ``preset`` (default: the file's, else ``mini``).

    Raises:
        StudyError: the file is missing, not YAML, or a key is unknown or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"study file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise StudyError(f"{path}: not valid YAML{where}; fix the file") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: a study is a mapping with name, tokenizers, tasks")
    _no_unknown(path, "", data, _TOP)
    for key in ("name", "description", "tokenizers"):
        if key not in data:
            raise StudyError(f"{path}: missing key {key!r}")
    if ("tasks" in data) == ("vocoder" in data):
        raise StudyError(f"{path}: a study has either 'tasks' (a grid of jobs) or 'vocoder'")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise StudyError(f"{path}: name {name!r} must match [a-z0-9-]+ (it names the record)")
    if not isinstance(data["description"], str) or not data["description"].strip():
        raise StudyError(f"{path}: description must be a non-empty string")
    preset = preset or data.get("preset") or "mini"
    if preset not in PRESETS:
        raise StudyError(f"{path}: preset {preset!r} is not one of {', '.join(PRESETS)}")
    resolved = dict(data)
    presets = data.get("presets") or {}
    if not isinstance(presets, dict):
        raise StudyError(f"{path}: presets must map a preset to its replacements")
    for key, block in presets.items():
        if key not in PRESETS:
            raise StudyError(f"{path}: presets.{key}: unknown preset; use {', '.join(PRESETS)}")
        if not isinstance(block, dict):
            raise StudyError(f"{path}: presets.{key} must be a mapping")
        _no_unknown(path, f"presets.{key}.", block, _PRESET_KEYS)
    resolved.update(presets.get(preset) or {})
    where = f"presets.{preset}." if preset in presets else ""
    return Study(
        name=name,
        description=data["description"].strip(),
        preset=preset,
        seeds=_seeds(path, where, resolved.get("seeds", [0])),
        tokenizers=_axes(path, where, resolved["tokenizers"], "tokenizers", "tokenizer"),
        tasks=_axes(path, where, resolved["tasks"], "tasks", "task") if "tasks" in data else (),
        vocoder=_vocoder(path, where, resolved["vocoder"]) if "vocoder" in data else None,
        path=path,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        raw=data,
    )


def _no_unknown(path: Path, prefix: str, data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise StudyError(
            f"{path}: unknown key {prefix}{unknown[0]}; known keys: {', '.join(sorted(known))}"
        )


def _vocoder(path: Path, where: str, block: Any) -> dict[str, Any]:
    block = block or {}
    if not isinstance(block, dict):
        raise StudyError(f"{path}: {where}vocoder must map settings (steps, corpus...)")
    _no_unknown(path, f"{where}vocoder.", block, _VOCODER_KEYS)
    for key in ("steps", "adversarial_steps"):
        value = block.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < (1 if key == "steps" else 0)):  # fmt: skip
            raise StudyError(f"{path}: {where}vocoder.{key} must be an integer >= "
                             f"{1 if key == 'steps' else 0}, got {value!r}")  # fmt: skip
    if block.get("corpus") is not None and not isinstance(block["corpus"], str):
        raise StudyError(f"{path}: {where}vocoder.corpus must be a corpus name")
    return dict(block)


def _seeds(path: Path, where: str, seeds: Any) -> tuple[int, ...]:
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise StudyError(f"{path}: {where}seeds must be a list of distinct integers >= 0")
    return tuple(seeds)


def _axes(path: Path, where: str, items: Any, key: str, ref_key: str) -> tuple[Axis, ...]:
    if not isinstance(items, list) or not items:
        raise StudyError(f"{path}: {where}{key} must be a non-empty list of {{{ref_key}: ...}}")
    axes = []
    for number, item in enumerate(items):
        at = f"{where}{key}[{number}]"
        if isinstance(item, str):
            item = {ref_key: item}
        if not isinstance(item, dict):
            raise StudyError(f"{path}: {at} must be a name or a mapping with {ref_key!r}")
        _no_unknown(path, f"{at}.", item, {ref_key, "params", "grid", "variants"})
        ref = item.get(ref_key)
        if not isinstance(ref, str) or not ref.strip():
            raise StudyError(f"{path}: {at}.{ref_key} must be a name or a card path")
        params = item.get("params") or {}
        grid = item.get("grid") or {}
        for part, value in (("params", params), ("grid", grid)):
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise StudyError(f"{path}: {at}.{part} must map parameter names to values")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise StudyError(
                    f"{path}: {at}.grid.{name} must be a non-empty list of values to try"
                )
            if name in params:
                raise StudyError(f"{path}: {at}: {name!r} is both in params and in grid")
        listed = item.get("variants") or [{}]
        if not isinstance(listed, list) or not all(
            isinstance(v, dict) and all(isinstance(k, str) for k in v) for v in listed
        ):
            raise StudyError(f"{path}: {at}.variants must be a list of parameter mappings")
        clash = sorted(set(grid) & {k for v in listed for k in v})
        if clash:
            raise StudyError(f"{path}: {at}: {clash[0]!r} is both in variants and in grid")
        names = sorted(grid)
        variants = tuple(
            tuple(sorted({**params, **variant, **dict(zip(names, combo, strict=True))}.items()))
            for variant in listed
            for combo in itertools.product(*(grid[n] for n in names))
        )
        axes.append(Axis(ref.strip(), tuple(_unique(variants))))
    return tuple(axes)


def _unique(items: Any) -> list[Any]:
    """``items`` without repeats, in order (values may be unhashable: lists, mappings)."""
    seen: set[str] = set()
    kept = []
    for item in items:
        key = json.dumps(item, sort_keys=True, default=repr)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept

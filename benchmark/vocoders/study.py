"""Vocoder commands: train one vocoder for a tokenizer, and the single-layer vs scalable study.

The study (Mousavi et al. 2024, the scalable-vocoder comparison) trains, with the same
preset and seed, one vocoder per codebook on that codebook alone and one scalable vocoder on
all codebooks with layer dropout; then every vocoder decodes the whole validation split with
each single codebook and with all codebooks, wherever it can (a single-layer vocoder decodes
only its own codebook). The table reports the mean mel distance (lower is better), with the
tokenizer's own decoder (when it has one) as a reference row; the JSON
file also holds confidence intervals, the training histories and the settings.

Vocoders live under ``<workdir>/vocoders/<tokenizer>/<run fingerprint>/``, so a rerun with
the same settings reuses finished vocoders and resumes interrupted ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import UsageError
from benchmark.pipeline.keys import fingerprint
from benchmark.pipeline.store import atomic_write_json
from benchmark.vocoders.data import (
    PairItem,
    VocoderPairs,
    default_workers,
    tokens_frame_check,
    vocoder_data_refs,
)
from benchmark.vocoders.evaluation import evaluate_decoding, mel_loss
from benchmark.vocoders.model import ScalableVocoder, VocoderError, load_vocoder
from benchmark.vocoders.presets import VocoderPreset, vocoder_config
from benchmark.vocoders.training import VocoderRun, cpu_threads, train_vocoder

log = logging.getLogger(__name__)

#: Files a training run writes into its folder (what ``--overwrite`` removes).
RUN_FILES = ("COMPLETE", "checkpoint.pt", "vocoder.pt", "history.json")
#: The study decodes at most this many validation utterances.
STUDY_MAX_UTTERANCES = 500
#: Splits shorter than this (seconds) are read into memory once.
PRELOAD_SECONDS = 3600.0


@dataclass
class VocoderData:
    """A tokenizer's training and validation pairs and what identifies them."""

    tokenizer_name: str
    tokenizer_fingerprint: str
    info: Any
    tokenizer: Any
    train: VocoderPairs
    valid: VocoderPairs
    fingerprint: str


def prepare_data(env, tokenizer: str, preset: VocoderPreset) -> VocoderData:
    """Build the tokenizer, encode the preset's corpus through the token cache, pair it.

    Args:
        env: a :class:`~benchmark.pipeline.env.StepEnv` (workdir, device, preset, data root).
        tokenizer: name or card path.
        preset: gives the corpus, the vocoder's samples per frame (checked against the
            tokenizer) and whether to preload audio.

    Raises:
        VocoderError: a continuous tokenizer, or one whose frame rate the vocoder cannot
            upsample to its sample rate.
    """
    from benchmark.pipeline.commands import tokenizer_tokens

    refs = vocoder_data_refs(preset.corpus)
    fitted, tokenizer_key, splits = tokenizer_tokens(env, tokenizer, refs)
    info = fitted.info
    pairs = vocoder_pairs(splits, info, preset)
    data_fp = fingerprint({k: t.manifest.fingerprint() for k, t in sorted(splits.items())})
    return VocoderData(
        info.name,
        tokenizer_key,
        info,
        fitted,
        pairs["train"],
        pairs["valid"],
        data_fp,
    )


def vocoder_pairs(
    splits: dict[str, Any], info: Any, preset: VocoderPreset
) -> dict[str, VocoderPairs]:
    """Token/audio pairs of each split (``{split: TokenSplit}``) for a vocoder of ``preset``.

    Raises:
        VocoderError: a continuous tokenizer, or one whose frame rate the vocoder cannot
            upsample to its sample rate.
    """
    hop_length = preset.hop_length
    if info.is_continuous:
        raise VocoderError(f"tokenizer {info.name!r} is a continuous reference; vocoders need ids")
    hop = info.sample_rate / info.frame_rate
    if abs(hop - hop_length) > 1e-6:
        raise VocoderError(
            f"tokenizer {info.name!r} has {hop:g} samples per frame ({info.sample_rate} Hz / "
            f"{info.frame_rate} Hz); the preset's vocoder upsamples by {hop_length}"
        )
    pairs = {}
    for split, tokens in splits.items():
        manifest = tokens.manifest
        items = [
            PairItem(utterance.id, array, manifest.audio_path(utterance))
            for utterance, array in tokens.items()
        ]
        tokens_frame_check(items, info.num_codebooks)
        pairs[split] = VocoderPairs(
            items,
            info.sample_rate,
            hop_length,
            preload=preset.preload_audio or manifest.total_duration <= PRELOAD_SECONDS,
            num_workers=default_workers(),
        )
    return pairs


def parse_layers(text: str | None, num_codebooks: int) -> tuple[int, ...]:
    """``"0,2"`` -> ``(0, 2)``; None -> every codebook. Raises UsageError naming the value."""
    if text is None:
        return tuple(range(num_codebooks))
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(
            f"--layers must be comma-separated codebook indices, got {text!r}"
        ) from None
    bad = [k for k in layers if not 0 <= k < num_codebooks]
    if not layers or bad or len(set(layers)) != len(layers):
        raise UsageError(
            f"--layers {text!r}: codebook indices must be distinct and in 0..{num_codebooks - 1}"
            + (f" (got {bad[0]})" if bad else "")
        )
    return tuple(sorted(layers))


def train_one(
    data: VocoderData,
    preset: VocoderPreset,
    layers: Sequence[int],
    layer_dropout: bool,
    workdir: Path,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    out_dir: Path | None = None,
    overwrite: bool = False,
) -> VocoderRun:
    """Train one vocoder on ``layers`` (resuming or reusing a run with the same settings)."""
    info = data.info
    config = vocoder_config(
        preset,
        info.codebook_sizes,
        tuple(layers),
        layer_dropout,
        info.sample_rate,
        float(info.frame_rate),
    )
    if out_dir is None:
        key = fingerprint(
            {
                "config": config.to_dict(),
                "preset": preset.to_dict(),
                "tokenizer": data.tokenizer_fingerprint,
                "data": data.fingerprint,
                "seed": seed,
            }
        )
        out_dir = Path(workdir) / "vocoders" / data.tokenizer_name / key[:16]
    if overwrite:
        for name in RUN_FILES:  # only what a run writes: --out may name a shared folder
            (Path(out_dir) / name).unlink(missing_ok=True)
    return train_vocoder(
        data.train,
        data.valid,
        config,
        preset,
        Path(out_dir),
        data.tokenizer_name,
        data.tokenizer_fingerprint,
        seed=seed,
        device=device,
        progress=progress,
        data_fingerprint=data.fingerprint,
    )


def study_specs(num_codebooks: int) -> list[tuple[str, tuple[int, ...], bool]]:
    """``(label, trained codebooks, layer dropout)`` of the study's vocoders: one per
    codebook on that codebook alone, then the scalable one on all with layer dropout."""
    specs = [(f"layer {i} only", (i,), False) for i in range(num_codebooks)]
    specs.append(("scalable (all layers, dropout)", tuple(range(num_codebooks)), True))
    return specs


def study_columns(num_codebooks: int) -> list[tuple[str, tuple[int, ...]]]:
    """``(column, decoded codebooks)``: each codebook alone, then all of them."""
    columns: list[tuple[str, tuple[int, ...]]] = [
        (f"layer {i}", (i,)) for i in range(num_codebooks)
    ]
    columns.append(("all layers", tuple(range(num_codebooks))))
    return columns


def study_row(
    label: str,
    layers: Sequence[int],
    dropout: bool,
    run: VocoderRun,
    valid: VocoderPairs,
    num_codebooks: int,
    tokenizer_fingerprint: str,
    preset: VocoderPreset,
    device: str,
) -> dict[str, Any]:
    """One trained vocoder's row: its mel distance decoding each column's codebooks of the
    validation split (``refused`` where it cannot decode them), its training curve."""
    columns = study_columns(num_codebooks)
    indices = list(range(min(len(valid), STUDY_MAX_UTTERANCES)))
    loss = mel_loss(valid.sample_rate)
    vocoder: ScalableVocoder = load_vocoder(
        run.vocoder_path, expect_fingerprint=tokenizer_fingerprint, device=device
    )
    cells: dict[str, Any] = {}
    for name, subset in columns:
        try:
            vocoder.check_codebooks(subset)
        except VocoderError as exc:
            cells[name] = {"status": "refused", "reason": str(exc)}
            continue
        with cpu_threads(preset.cpu_threads, device):
            metric = evaluate_decoding(vocoder, valid, indices, subset, 0, loss)
        cells[name] = metric["mel_distance"].to_dict()
    return {
        "vocoder": label,
        "trained_layers": list(layers),
        "layer_dropout": dropout,
        "run": str(run.out_dir),
        "train_seconds": round(run.seconds, 1),
        "history": [{"step": h["step"], "mel_distance": h["mel_distance"]} for h in run.history],
        "cells": cells,
    }


def study_table(
    data_name: str,
    tokenizer_fingerprint: str,
    preset: VocoderPreset,
    seed: int,
    valid: VocoderPairs,
    num_codebooks: int,
    rows: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """The study's record of one tokenizer and seed (``columns``, ``rows``, settings)."""
    return {
        "study": "single-layer vs scalable vocoder",
        "metric": "mel_distance (log-mel L1, lower is better)",
        "tokenizer": data_name,
        "tokenizer_fingerprint": tokenizer_fingerprint,
        "preset": preset.to_dict(),
        "seed": seed,
        "valid_utterances": min(len(valid), STUDY_MAX_UTTERANCES),
        "columns": [name for name, _ in study_columns(num_codebooks)],
        "rows": rows,
        "seconds": round(seconds, 1),
    }


def run_study(
    data: VocoderData,
    preset: VocoderPreset,
    workdir: Path,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Train the single-layer and scalable vocoders and decode the validation split.

    Returns:
        The study record: ``columns``, ``rows`` (each with ``cells`` of mel-distance
        metrics, None where the vocoder cannot decode that subset), settings and timings.
    """
    started = time.perf_counter()
    preset = study_preset(preset)
    rows = []
    for label, layers, dropout in study_specs(data.info.num_codebooks):
        run = train_one(data, preset, layers, dropout, workdir, seed, device, progress)
        rows.append(study_row(label, layers, dropout, run, data.valid, data.info.num_codebooks,
                              data.tokenizer_fingerprint, preset, device))  # fmt: skip
        log.info("study: %s done (%s)", label, run.out_dir)
    if data.info.can_decode:
        rows.append(reference_row(data.tokenizer, data.info, data.valid, preset, device))
    return study_table(data.tokenizer_name, data.tokenizer_fingerprint, preset, seed,
                       data.valid, data.info.num_codebooks, rows,
                       time.perf_counter() - started)  # fmt: skip


def study_preset(preset: VocoderPreset) -> VocoderPreset:
    """The study's vocoder preset: the table reports mel distances only, so no DNSMOS in the
    vocoders' validations (it costs seconds per utterance on a CPU)."""
    return preset.replace(dnsmos_utterances=0)


def reference_row(
    tokenizer: Any, info: Any, valid: VocoderPairs, preset: VocoderPreset, device: str
) -> dict[str, Any]:
    """The tokenizer's own ``decode`` on the same columns, for scale (no training)."""
    indices = list(range(min(len(valid), STUDY_MAX_UTTERANCES)))
    loss = mel_loss(valid.sample_rate)
    cells: dict[str, Any] = {}
    for name, subset in study_columns(info.num_codebooks):
        try:
            with cpu_threads(preset.cpu_threads, device):
                metric = evaluate_decoding(tokenizer, valid, indices, subset, 0, loss)
            cells[name] = metric["mel_distance"].to_dict()
        except Exception as exc:  # a reference only: record why it is missing
            cells[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    return {
        "vocoder": f"{info.name}.decode (reference)",
        "trained_layers": None,
        "layer_dropout": None,
        "cells": cells,
    }


def format_table(study: dict[str, Any]) -> list[str]:
    """The study as aligned text lines (``-`` where a vocoder cannot decode the subset)."""
    columns = study["columns"]
    first = max(len("vocoder"), *(len(row["vocoder"]) for row in study["rows"]))
    widths = [max(len(c), 6) for c in columns]
    lines = [
        "  ".join(
            ["vocoder".ljust(first), *(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        )
    ]
    for row in study["rows"]:
        cells = []
        for column, width in zip(columns, widths, strict=True):
            cell = row["cells"].get(column) or {}
            value = cell.get("value") if cell.get("status") == "ok" else None
            cells.append(("-" if value is None else f"{value:.3f}").rjust(width))
        lines.append("  ".join([row["vocoder"].ljust(first), *cells]))
    return lines


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically."""
    atomic_write_json(Path(path), data)


def check_device(device: str) -> str:
    """``auto`` -> cuda when visible, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

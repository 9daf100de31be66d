"""Pretraining the ``mini`` preset's tiny WavLM / HuBERT on the mini corpus (HuBERT's recipe).

A randomly initialised encoder carries no speech information, so in ``mini`` the discrete SSL
tokenizers use tiny encoders of the real architectures (24 layers, 50 frames/s, see
:mod:`benchmark.models.ssl_loading`) that the harness pretrains here, once per fingerprint:

1. **targets** (HuBERT's first iteration): k-means cluster ids of hand-made features of every
   20 ms frame of the training audio (:mod:`benchmark.models.ssl_pretrain_data`);
2. **masked prediction**: random spans of the front end's output are replaced by the model's
   learned mask embedding (transformers' ``mask_time_indices`` route: HuBERT's span masking,
   ``mask_prob`` of the frames start a span of ``mask_length``), and a linear head per target
   codebook on the last layer predicts every frame's cluster id. The loss is cross-entropy
   on masked frames plus ``unmasked_weight`` (default 2) times cross-entropy on unmasked
   frames (HuBERT's alpha-weighting, turned round: the unmasked term makes the model imitate
   the feature clusters, which short budgets need: with masked frames alone the accuracy
   stalls);
3. optionally WavLM's **utterance mixing** (``mix_prob``): a segment of another utterance of
   the batch is added at -5..5 dB, and the targets stay those of the main utterance;
4. optionally HuBERT's **second iteration** (``relabel_step``): from that step on, k-means ids
   of one of the model's own layers are (further) targets
   (:mod:`~benchmark.models.ssl_pretrain_relabel`).

AdamW with a linear warm-up and a cosine decay, a fixed number of steps on random crops of
``crop_frames`` frames. Every random draw comes from the seed (model init, crops, masks,
mixing), dropout is off, so the same seed, data and library versions give the same weights
bit for bit on one machine (the thread count is a setting: float sums depend on it). The
result is a ``save_pretrained`` folder (plus the preprocessor config and ``pretrain.json``:
loss curve, accuracies, targets, data, time), loaded back through
:func:`benchmark.models.ssl_loading.load_ssl_model` like real weights. It is labelled
"pretrained by the harness on mini, N steps", never as WavLM-large.

In a run, the ``pretrain`` step of the graph calls :func:`pretrain_tiny_ssl` (through the
tokenizer's ``pretrain`` hook, :mod:`benchmark.models.ssl_mini`) and caches the folder by its
key. The pieces: settings in :mod:`~benchmark.models.ssl_pretrain_config`, targets in
:mod:`~benchmark.models.ssl_pretrain_data`, crops and masks in
:mod:`~benchmark.models.ssl_pretrain_batches`, the second iteration's targets in
:mod:`~benchmark.models.ssl_pretrain_relabel`, the model, heads, loss and loop in
:mod:`~benchmark.models.ssl_pretrain_train`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.data.manifest import Manifest
from benchmark.models.kmeans import ALGORITHM_VERSION as KMEANS_ALGORITHM_VERSION
from benchmark.models.ssl_loading import tiny_ssl_spec
from benchmark.models.ssl_pretrain_batches import span_mask
from benchmark.models.ssl_pretrain_config import PretrainConfig, PretrainConfigError, pretrain_label
from benchmark.models.ssl_pretrain_data import cluster_targets, load_pretrain_corpus
from benchmark.models.ssl_pretrain_train import train_tiny_ssl

__all__ = [
    "PRETRAIN_VERSION",
    "SUMMARY",
    "PretrainConfig",
    "PretrainConfigError",
    "pretrain_fingerprint",
    "pretrain_label",
    "pretrain_tiny_ssl",
    "record_summary",
    "span_mask",
]

log = logging.getLogger(__name__)

#: Bump when the recipe's code changes its output without changing the config.
PRETRAIN_VERSION = 1
#: The summary file of a pretrained folder.
SUMMARY = "pretrain.json"


def pretrain_fingerprint(
    family: str,
    train_manifests: Sequence[Manifest],
    config: PretrainConfig,
    seed: int,
    heldout_speakers: Collection[str] = (),
) -> dict[str, Any]:
    """Everything the pretrained weights depend on, JSON-ready (for caches outside the graph).

    Covers the recipe version, the tiny architecture, the settings, each manifest's
    fingerprint (its utterances' identity), the held-out speakers, the seed and the versions
    of torch, torchaudio and transformers (and the k-means algorithm). The graph's
    ``pretrain`` step has its own key (recipe, code, audio bytes, library versions).
    """
    import torchaudio
    import transformers

    return {
        "version": PRETRAIN_VERSION,
        "architecture": tiny_ssl_spec(family, 0)["config"] | {"family": family},
        "config": config.to_dict(),
        "data": [m.fingerprint() for m in train_manifests],
        "heldout_speakers": sorted(heldout_speakers),
        "seed": seed,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "transformers": transformers.__version__,
        "kmeans_algorithm": KMEANS_ALGORITHM_VERSION,
    }


def _learned_from(config: PretrainConfig, data: list[dict[str, Any]], speakers: int) -> str:
    targets = " and ".join(f"{kind} (K = {k})" for kind, k in config.targets)
    where = "masked frames" + (" and, weighted", "")[config.unmasked_weight == 0]
    if config.unmasked_weight:
        where += f" {config.unmasked_weight:g}, unmasked frames"
    names = ", ".join(d["name"] for d in data)
    second = ""
    if config.relabel_step:
        second = (
            f"; from step {config.relabel_step} on (HuBERT's second iteration), "
            f"{'also ' if config.relabel_keep else 'instead, '}k-means ids "
            f"(K = {config.relabel_clusters}) of the model's own layer {config.relabel_layer}"
        )
    return (
        f"predicting k-means cluster ids of {targets} features of each 20 ms frame on {where}"
        f"{second}, from {names} ({speakers} training speakers; no valid or test speaker)"
    )


def pretrain_tiny_ssl(
    family: str,
    train_manifests: Sequence[Manifest],
    out_dir: Path,
    config: PretrainConfig,
    seed: int = 0,
    progress: bool = False,
    *,
    heldout_speakers: Collection[str],
    corpus: str = "mini",
) -> dict[str, Any]:
    """Pretrain a tiny ``family`` encoder and save it with ``save_pretrained`` in ``out_dir``.

    Always trains (caching is the caller's: the graph's ``pretrain`` step, or
    :func:`benchmark.models.ssl_mini.pretrained_tiny_ssl`); ``out_dir`` should be a fresh
    folder that the caller renames into place (a killed run never looks finished).

    Args:
        family: ``wavlm`` or ``hubert`` (``wav2vec2`` works too).
        train_manifests: the audio to learn from (training splits only).
        out_dir: the folder to fill (``config.json``, ``model.safetensors``,
            ``preprocessor_config.json``, ``pretrain.json``); created if missing.
        config: the recipe's settings.
        seed: seeds the initialisation, k-means, crops, masks and mixing.
        progress: show progress bars.
        heldout_speakers: speakers of every validation/test split; refused in the data.
        corpus: the corpus name in the label.

    Returns:
        The summary written to ``pretrain.json`` (``label``, ``steps``, ``seconds``,
        ``cpu_seconds``, ``loss``, ``curve``, ``targets``, ``data``, ``learned_from``).

    Raises:
        PretrainDataError: held-out speakers or valid/test splits in ``train_manifests``.
        PretrainConfigError: unusable settings.
    """
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        summary = _pretrain(family, train_manifests, config, seed, progress, heldout_speakers)
    finally:
        torch.set_num_threads(threads)
    summary = {"label": pretrain_label(corpus, config.steps), **summary}
    _save(summary.pop("_model"), out_dir, summary)
    log.info("%s in %.0f s (%.0f CPU s)", summary["label"], summary["seconds"],
             summary["cpu_seconds"])  # fmt: skip
    return summary


def _pretrain(
    family: str,
    train_manifests: Sequence[Manifest],
    config: PretrainConfig,
    seed: int,
    progress: bool,
    heldout_speakers: Collection[str],
) -> dict[str, Any]:
    """Targets, training and the summary (with the model under ``_model``)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    load = os.getloadavg()  # the machine's load when the timing started (1, 5, 15 min)
    kinds = sorted({kind for kind, _ in config.targets})
    data = load_pretrain_corpus(train_manifests, heldout_speakers, kinds, progress)
    ids, targets = [], []
    for index, (kind, k) in enumerate(config.targets):
        labels, summary = cluster_targets(
            data.features[kind], k, seed + index, config.kmeans_max_iter
        )
        ids.append(labels)
        targets.append({"kind": kind, **summary})
        log.info("pretraining targets %s K=%d: inertia %.4f", kind, k, summary["inertia"])
    prepared = time.perf_counter() - started
    model, history = train_tiny_ssl(family, data, ids, config, seed, progress)
    data_info = [
        {
            "name": _manifest_name(m),
            "fingerprint": m.fingerprint(),
            "utterances": len(m),
            "seconds": round(m.total_duration, 2),
        }
        for m in train_manifests
    ]
    return {
        "_model": model,
        "family": family,
        "steps": config.steps,
        "seed": seed,
        "learned_from": _learned_from(config, data_info, len(data.speakers)),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_preparing": round(prepared, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in load],
        "targets": targets,
        "data": data_info,
        "frames": data.num_frames,
        "speakers": list(data.speakers),
        "heldout_speakers": sorted(heldout_speakers),
        "config": config.to_dict(),
        **history,
    }


def record_summary(summary: Mapping[str, Any], every: int = 50) -> dict[str, Any]:
    """The part of a pretraining summary that goes into every result record.

    Args:
        summary: what :func:`pretrain_tiny_ssl` returned (or ``pretrain.json``).
        every: steps between the points of the loss curve kept.

    Returns:
        Label, family, steps, seed, times, threads, the load at the start, what the model
        learned from, the targets' k-means summaries, the mean loss of the first and last
        ``every`` steps and the loss every ``every`` steps (mean of the ``every`` steps up to
        there).
    """
    losses = list(summary.get("loss") or [])
    curve = [
        {"step": end - 1, "mean_loss": round(sum(losses[end - every : end]) / every, 4)}
        for end in range(every, len(losses) + 1, every)
    ]
    keep = ("label", "family", "steps", "seed", "seconds", "seconds_preparing", "cpu_seconds",
            "threads", "load_average_at_start", "learned_from", "targets", "second_iteration",
            "frames")  # fmt: skip
    out = {name: summary.get(name) for name in keep}
    head = losses[:every]
    tail = losses[-every:]
    out["first_loss"] = round(sum(head) / len(head), 4) if head else None
    out["final_loss"] = round(sum(tail) / len(tail), 4) if tail else None
    out["loss_curve"] = curve
    out["speakers"] = len(summary.get("speakers") or [])
    return out


def _manifest_name(manifest: Manifest) -> str:
    source = manifest.source
    return f"{source.parent.name}/{source.stem}" if source is not None else str(manifest.root)


def _save(model: nn.Module, out_dir: Path, summary: Mapping[str, Any]) -> None:
    """``save_pretrained`` files, the preprocessor config and ``pretrain.json`` in ``out_dir``."""
    from transformers import Wav2Vec2FeatureExtractor

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(out_dir)
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")

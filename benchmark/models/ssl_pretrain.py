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
   on masked frames plus ``unmasked_weight`` times cross-entropy on unmasked frames (HuBERT's
   alpha-weighting; the unmasked term makes the model imitate the feature clusters, which
   short budgets need: with masked frames alone the accuracy stalls);
3. optionally WavLM's **utterance mixing** (``mix_prob``): a segment of another utterance of
   the batch is added at -5..5 dB, and the targets stay those of the main utterance.

AdamW with a linear warm-up and a cosine decay, a fixed number of steps on random crops of
``crop_frames`` frames. Every random draw comes from the seed (model init, crops, masks,
mixing), dropout is off, so the same seed, data and library versions give the same weights
bit for bit on one machine. The result is a ``save_pretrained`` folder (plus the
preprocessor config and ``pretrain.json``: loss curve, accuracies, targets, data, time),
loaded back through :func:`benchmark.models.ssl_loading.load_ssl_model` like real weights.
It is labelled "pretrained by the harness on mini, N steps", never as WavLM-large.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benchmark.data.manifest import Manifest
from benchmark.errors import BenchmarkError
from benchmark.models.kmeans import ALGORITHM_VERSION as KMEANS_ALGORITHM_VERSION
from benchmark.models.ssl_loading import TINY_SPEC, tiny_ssl_spec
from benchmark.models.ssl_pretrain_data import (
    FEATURE_KINDS,
    FRAME_SAMPLES,
    HOP_SAMPLES,
    PretrainCorpus,
    cluster_targets,
    load_pretrain_corpus,
)

log = logging.getLogger(__name__)

#: Bump when the recipe's code changes its output without changing the config.
PRETRAIN_VERSION = 1
#: Marker of a finished folder; holds the fingerprint digest.
MARKER = "PRETRAIN_COMPLETE"
SUMMARY = "pretrain.json"
_DROPOUTS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")


class PretrainConfigError(BenchmarkError, ValueError):
    """An unusable pretraining setting (one line)."""


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of :func:`pretrain_tiny_ssl` (all of them enter the fingerprint).

    Attributes:
        steps: optimiser steps (the budget; fixed, so the result is deterministic).
        batch_size: crops per step.
        crop_frames: frames per crop (50 per second); shorter utterances are used whole.
        lr: peak learning rate of AdamW.
        warmup_steps: linear warm-up from 0 to ``lr``.
        final_lr_ratio: the cosine decay ends at ``lr * final_lr_ratio``.
        weight_decay: AdamW's decoupled weight decay.
        grad_clip: maximum gradient norm.
        mask_prob: fraction of frames that start a masked span (HuBERT: 0.08 * 10 / ...;
            transformers' ``mask_time_prob`` convention: spans = mask_prob * N / length).
        mask_length: frames per masked span.
        unmasked_weight: weight of the unmasked frames' loss (0 = masked frames only).
        targets: ``(feature kind, K)`` per target codebook, each with its own linear head.
        head_layers: transformer layers whose outputs the heads read (24 = the last layer,
            after the encoder's final layer norm; a lower layer gets a layer norm of its own);
            the loss is averaged over them.
        kmeans_max_iter: exact Lloyd passes of the target k-means.
        mix_prob: probability that a crop gets a segment of another utterance mixed in
            (WavLM's denoising); 0 turns it off.
        log_every: steps between accuracy measurements in the curve.
    """

    steps: int = 900
    batch_size: int = 8
    crop_frames: int = 100
    lr: float = 2e-3
    warmup_steps: int = 50
    final_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mask_prob: float = 0.65
    mask_length: int = 10
    unmasked_weight: float = 1.0
    targets: tuple[tuple[str, int], ...] = (("mfcc", 100),)
    head_layers: tuple[int, ...] = (24,)
    kmeans_max_iter: int = 30
    mix_prob: float = 0.0
    log_every: int = 10

    def __post_init__(self) -> None:
        ints = {"steps": 1, "batch_size": 1, "crop_frames": 10, "warmup_steps": 0}
        ints |= {"mask_length": 1, "kmeans_max_iter": 1, "log_every": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PretrainConfigError(f"pretrain {name} must be an int >= {low}, got {value!r}")
        ranges = {"lr": (0.0, 1.0), "final_lr_ratio": (0.0, 1.0), "weight_decay": (0.0, 1.0)}
        ranges |= {"mask_prob": (0.0, 1.0), "mix_prob": (0.0, 1.0), "unmasked_weight": (0.0, 10.0)}
        ranges |= {"grad_clip": (0.0, 1e6)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PretrainConfigError(f"pretrain {name} must be a number, got {value!r}")
            if not low <= value <= high or (name in ("lr", "grad_clip") and value == 0):
                raise PretrainConfigError(f"pretrain {name}={value!r} is outside {low}..{high}")
        if self.mask_prob == 0 and self.unmasked_weight == 0:
            raise PretrainConfigError("pretrain needs mask_prob > 0 or unmasked_weight > 0")
        targets = tuple(tuple(t) for t in self.targets)
        if not targets or any(
            len(t) != 2
            or t[0] not in FEATURE_KINDS
            or isinstance(t[1], bool)
            or not isinstance(t[1], int)
            or t[1] < 2
            for t in targets
        ):
            raise PretrainConfigError(
                f"pretrain targets must be [kind, K] pairs with kind in {list(FEATURE_KINDS)} "
                f"and K >= 2, got {self.targets!r}"
            )
        object.__setattr__(self, "targets", targets)
        depth = int(TINY_SPEC["num_hidden_layers"])
        heads = tuple(self.head_layers)
        if (
            not heads
            or len(set(heads)) != len(heads)
            or any(
                isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= depth for h in heads
            )
        ):
            raise PretrainConfigError(
                f"pretrain head_layers must be distinct layers in 1..{depth}, got {heads!r}"
            )
        object.__setattr__(self, "head_layers", heads)

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None) -> PretrainConfig:
        """The defaults with a card's overrides (unknown keys are an error)."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise PretrainConfigError(
                f"unknown pretrain settings {sorted(unknown)}; known: "
                f"{', '.join(f.name for f in fields(cls))}"
            )
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        out = asdict(self)
        out["targets"] = [list(t) for t in self.targets]
        out["head_layers"] = list(self.head_layers)
        return out


def pretrain_label(corpus: str, steps: int) -> str:
    """The label every record of a pretrained tiny model carries."""
    return f"pretrained by the harness on {corpus}, {steps} steps"


def pretrain_fingerprint(
    family: str,
    train_manifests: Sequence[Manifest],
    config: PretrainConfig,
    seed: int,
    heldout_speakers: Collection[str] = (),
) -> dict[str, Any]:
    """Everything the pretrained weights depend on, JSON-ready.

    Covers the recipe version, the tiny architecture, the settings, each manifest's
    fingerprint (its utterances' identity), the held-out speakers, the seed and the versions
    of torch, torchaudio and transformers (and the k-means algorithm).
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


# --------------------------------------------------------------------------- batches


def span_mask(
    lengths: Sequence[int], width: int, prob: float, span: int, generator: torch.Generator
) -> torch.Tensor:
    """HuBERT-style span mask ``[B, width]`` bool over each item's first ``lengths[b]`` frames.

    ``floor(prob * n / span + u)`` spans (``u`` uniform in [0, 1)) start at distinct random
    frames of ``0 .. n - span``; overlapping spans merge.
    """
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        length = min(span, n)
        starts_available = n - length + 1
        count = int(prob * n / length + float(torch.rand((), generator=generator)))
        count = min(count, starts_available)
        if count == 0:
            continue
        starts = torch.randperm(starts_available, generator=generator)[:count]
        index = (starts.unsqueeze(1) + torch.arange(length)).flatten()
        mask[b, index] = True
    return mask


@dataclass
class _Batch:
    wav: torch.Tensor  # [B, T] float32
    attention: torch.Tensor | None  # [B, T] long, None when no item is padded
    valid: torch.Tensor  # [B, N] bool
    masked: torch.Tensor  # [B, N] bool
    targets: list[torch.Tensor] = field(default_factory=list)  # [B, N] int64 each


class _Sampler:
    """Random crops of the corpus, one epoch permutation after another, from one generator."""

    def __init__(
        self, corpus: PretrainCorpus, ids: list[torch.Tensor], config: PretrainConfig, seed: int
    ):
        self.corpus, self.ids, self.config = corpus, ids, config
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []

    def _next_utterance(self) -> int:
        if not self.order:
            self.order = torch.randperm(
                self.corpus.num_utterances, generator=self.generator
            ).tolist()
        return self.order.pop()

    def _mix(self, wav: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """WavLM's utterance mixing: add a segment of another item at -5..5 dB."""
        g, out = self.generator, wav.clone()
        for b, n in enumerate(lengths):
            if len(lengths) < 2 or float(torch.rand((), generator=g)) >= self.config.mix_prob:
                continue
            other = (b + 1 + int(torch.randint(len(lengths) - 1, (), generator=g))) % len(lengths)
            seg = int(torch.randint(1, max(2, min(n, lengths[other]) // 2), (), generator=g))
            src = int(torch.randint(lengths[other] - seg + 1, (), generator=g))
            dst = int(torch.randint(n - seg + 1, (), generator=g))
            piece = wav[other, src : src + seg]
            ratio_db = float(torch.empty(()).uniform_(-5.0, 5.0, generator=g))
            main_power = wav[b, :n].pow(2).mean()
            scale = torch.sqrt(main_power / piece.pow(2).mean().clamp(min=1e-8))
            out[b, dst : dst + seg] += piece * scale * 10.0 ** (-ratio_db / 20.0)
        return out

    def batch(self) -> _Batch:
        c, cfg, g = self.corpus, self.config, self.generator
        picks = [self._next_utterance() for _ in range(cfg.batch_size)]
        spans = []
        for u in picks:
            n_u = int(c.frame_offsets[u + 1] - c.frame_offsets[u])
            n = min(n_u, cfg.crop_frames)
            start = int(torch.randint(n_u - n + 1, (), generator=g))
            spans.append((u, start, n))
        width = max(n for _, _, n in spans)
        samples = [(n - 1) * HOP_SAMPLES + FRAME_SAMPLES for _, _, n in spans]
        wav = torch.zeros(len(spans), max(samples))
        valid = torch.zeros(len(spans), width, dtype=torch.bool)
        targets = [torch.zeros(len(spans), width, dtype=torch.int64) for _ in self.ids]
        for b, (u, start, n) in enumerate(spans):
            s0 = int(c.sample_offsets[u]) + start * HOP_SAMPLES
            wav[b, : samples[b]] = c.audio[s0 : s0 + samples[b]].float()
            valid[b, :n] = True
            f0 = int(c.frame_offsets[u]) + start
            for k, ids in enumerate(self.ids):
                targets[k][b, :n] = ids[f0 : f0 + n]
        if cfg.mix_prob > 0:
            wav = self._mix(wav, samples)
        lengths = [n for _, _, n in spans]
        masked = span_mask(lengths, width, cfg.mask_prob, cfg.mask_length, g)
        attention = None
        if min(samples) < wav.shape[1]:
            positions = torch.arange(wav.shape[1]).unsqueeze(0)
            attention = (positions < torch.tensor(samples).unsqueeze(1)).long()
        return _Batch(wav, attention, valid, masked, targets)


# --------------------------------------------------------------------------- training


def _lr_factor(step: int, config: PretrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``final_lr_ratio`` (``step`` from 0)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.final_lr_ratio
    return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _build_model(family: str, config: PretrainConfig) -> nn.Module:
    from benchmark.models.ssl_loading import _classes

    config_cls, model_cls = _classes(family)
    spec = dict(TINY_SPEC)
    # masked_spec_embed exists only when mask_time_prob > 0; eval mode never masks
    spec.update(mask_time_prob=config.mask_prob or 0.05, mask_time_length=config.mask_length)
    spec.update({name: 0.0 for name in _DROPOUTS})
    return model_cls(config_cls(**spec))


class _Heads(nn.Module):
    """One linear classifier per (head layer, target codebook); lower layers get a layer norm."""

    def __init__(self, config: PretrainConfig, dim: int, depth: int) -> None:
        super().__init__()
        self.layers = config.head_layers
        self.norms = nn.ModuleList(
            nn.LayerNorm(dim) if layer < depth else nn.Identity() for layer in self.layers
        )
        self.linears = nn.ModuleList(
            nn.ModuleList(nn.Linear(dim, k) for _, k in config.targets) for _ in self.layers
        )

    def forward(self, states: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Logits ``[B, N, K_t]`` per head layer and target, from ``states[l]`` = layer l."""
        return [
            [linear(norm(states[layer])) for linear in linears]
            for layer, norm, linears in zip(self.layers, self.norms, self.linears, strict=True)
        ]


def _step_loss(
    model: nn.Module, heads: _Heads, batch: _Batch, config: PretrainConfig
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Loss of one batch and ``(masked, unmasked)`` accuracy per target (of the last head)."""
    depth = int(TINY_SPEC["num_hidden_layers"])
    lower = any(layer < depth for layer in heads.layers)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Support for mismatched key_padding")
        out = model(
            batch.wav,
            attention_mask=batch.attention,
            mask_time_indices=batch.masked,
            output_hidden_states=lower,
        )
    states: dict[int, torch.Tensor] = {depth: out.last_hidden_state}
    if lower:
        states |= {layer: out.hidden_states[layer] for layer in heads.layers if layer < depth}
    masked = batch.masked & batch.valid
    unmasked = ~batch.masked & batch.valid
    parts = []
    accuracy = []
    for logits_per_target in heads(states):
        accuracy = []
        for logits, target in zip(logits_per_target, batch.targets, strict=True):
            for weight, where in ((1.0, masked), (config.unmasked_weight, unmasked)):
                if weight > 0 and bool(where.any()):
                    parts.append(weight * F.cross_entropy(logits[where], target[where]))
            with torch.no_grad():
                hit = logits.argmax(-1) == target
                accuracy.append(
                    tuple(
                        float(hit[where].float().mean()) if bool(where.any()) else float("nan")
                        for where in (masked, unmasked)
                    )
                )
    count = len(heads.layers) * len(batch.targets)
    return torch.stack(parts).sum() / count, accuracy


def _train(
    family: str, corpus: PretrainCorpus, ids: list[torch.Tensor], config: PretrainConfig,
    seed: int, progress: bool,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(family, config).train()
        dim, depth = int(TINY_SPEC["hidden_size"]), int(TINY_SPEC["num_hidden_layers"])
        heads = _Heads(config, dim, depth)
    parameters = list(model.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(
        parameters, lr=config.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    sampler = _Sampler(corpus, ids, config, seed + 1)
    losses: list[float] = []
    curve: list[dict[str, Any]] = []
    bar = tqdm(range(config.steps), desc=f"pretrain tiny {family}", disable=not progress)
    for step in bar:
        batch = sampler.batch()
        loss, accuracy = _step_loss(model, heads, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(loss.item()):
            raise BenchmarkError(
                f"pretraining the tiny {family} diverged at step {step} (loss {loss.item()}); "
                "lower pretrain lr"
            )
        losses.append(round(loss.item(), 5))
        if step % config.log_every == 0 or step == config.steps - 1:
            curve.append(
                {
                    "step": step,
                    "loss": losses[-1],
                    "lr": optimizer.param_groups[0]["lr"],
                    "masked_accuracy": [round(a[0], 4) for a in accuracy],
                    "unmasked_accuracy": [round(a[1], 4) for a in accuracy],
                }
            )
            bar.set_postfix(loss=f"{losses[-1]:.3f}", masked_acc=f"{accuracy[0][0]:.3f}")
    return model.eval(), {"loss": losses, "curve": curve}


def _learned_from(config: PretrainConfig, data: list[dict[str, Any]], speakers: int) -> str:
    targets = " and ".join(f"{kind} (K = {k})" for kind, k in config.targets)
    where = "masked frames" + (" and, weighted", "")[config.unmasked_weight == 0]
    if config.unmasked_weight:
        where += f" {config.unmasked_weight:g}, unmasked frames"
    names = ", ".join(d["name"] for d in data)
    return (
        f"predicting k-means cluster ids of {targets} features of each 20 ms frame on {where}, "
        f"from {names} ({speakers} training speakers; no valid or test speaker)"
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

    Does nothing but read the summary when ``out_dir`` already holds a finished result with
    the same fingerprint. Otherwise builds in a temporary sibling folder renamed into place
    (a killed run never looks finished; a different finished result there is replaced).

    Args:
        family: ``wavlm`` or ``hubert`` (``wav2vec2`` works too).
        train_manifests: the audio to learn from (training splits only).
        out_dir: the folder to create (``config.json``, ``model.safetensors``,
            ``preprocessor_config.json``, ``pretrain.json``, ``PRETRAIN_COMPLETE``).
        config: the recipe's settings.
        seed: seeds the initialisation, k-means, crops, masks and mixing.
        progress: show progress bars.
        heldout_speakers: speakers of every validation/test split; refused in the data.
        corpus: the corpus name in the label.

    Returns:
        The summary written to ``pretrain.json`` (``label``, ``steps``, ``seconds``, ``loss``,
        ``curve``, ``targets``, ``data``, ``learned_from``, ``fingerprint``).

    Raises:
        PretrainDataError: held-out speakers or valid/test splits in ``train_manifests``.
        PretrainConfigError: unusable settings.
    """
    from benchmark.models.hf_weights import spec_digest

    out_dir = Path(out_dir)
    fingerprint = pretrain_fingerprint(family, train_manifests, config, seed, heldout_speakers)
    digest = spec_digest(fingerprint)
    marker = out_dir / MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return json.loads((out_dir / SUMMARY).read_text())
    started, cpu_started = time.perf_counter(), time.process_time()
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
    model, history = _train(family, data, ids, config, seed, progress)
    data_info = [
        {
            "name": _manifest_name(m),
            "fingerprint": m.fingerprint(),
            "utterances": len(m),
            "seconds": round(m.total_duration, 2),
        }
        for m in train_manifests
    ]
    summary = {
        "label": pretrain_label(corpus, config.steps),
        "family": family,
        "steps": config.steps,
        "learned_from": _learned_from(config, data_info, len(data.speakers)),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_preparing": round(prepared, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "threads": torch.get_num_threads(),
        "targets": targets,
        "data": data_info,
        "frames": data.num_frames,
        "speakers": list(data.speakers),
        "heldout_speakers": sorted(heldout_speakers),
        "config": config.to_dict(),
        "fingerprint": digest,
        **history,
    }
    _save(model, out_dir, summary, digest)
    log.info("%s in %.0f s: %s", summary["label"], summary["seconds"], out_dir)
    return summary


def _manifest_name(manifest: Manifest) -> str:
    source = manifest.source
    return f"{source.parent.name}/{source.stem}" if source is not None else str(manifest.root)


def _save(model: nn.Module, out_dir: Path, summary: Mapping[str, Any], digest: str) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        ).save_pretrained(tmp)
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
        (tmp / MARKER).write_text(digest + "\n")
        if out_dir.exists():
            log.warning("replacing %s (another pretraining result)", out_dir)
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""The training loop of the pretraining recipe: the tiny model, its heads, the loss, AdamW.

The model is transformers' ``WavLMModel`` / ``HubertModel`` built from
:data:`~benchmark.models.ssl_loading.TINY_SPEC` with dropout off; masking goes through its
``mask_time_indices`` route (the frames are replaced by its learned mask embedding); the
front end's first ``frozen_conv_layers`` convolution layers keep their initial weights. A linear
head per (head layer, target codebook) predicts each frame's cluster id; the loss is the
cross-entropy on masked frames plus ``unmasked_weight`` times that on unmasked frames,
averaged over heads. With ``relabel_step`` (HuBERT's second iteration) the model's own layer
is clustered at that step and a second set of heads, one per head layer, learns those ids
from then on. The heads are dropped after training: only the encoder is saved.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError
from benchmark.models.ssl_loading import TINY_SPEC
from benchmark.models.ssl_pretrain_batches import CropSampler, PretrainBatch
from benchmark.models.ssl_pretrain_config import PretrainConfig
from benchmark.models.ssl_pretrain_data import PretrainCorpus
from benchmark.models.ssl_pretrain_relabel import relabel_targets

_DROPOUTS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")


def _lr_factor(step: int, config: PretrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``final_lr_ratio`` (``step`` from 0)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.final_lr_ratio
    return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _build_model(family: str, config: PretrainConfig) -> nn.Module:
    """A randomly initialised tiny encoder that can mask (dropout off), its first
    ``config.frozen_conv_layers`` convolution layers frozen."""
    from benchmark.models.ssl_loading import _classes

    config_cls, model_cls = _classes(family)
    spec = dict(TINY_SPEC)
    # masked_spec_embed exists only when mask_time_prob > 0; eval mode never masks
    spec.update(mask_time_prob=config.mask_prob or 0.05, mask_time_length=config.mask_length)
    spec.update({name: 0.0 for name in _DROPOUTS})
    model = model_cls(config_cls(**spec))
    if config.frozen_conv_layers:
        front_end = model.feature_extractor
        # transformers makes the waveform require grad (for checkpointing) unless told not to:
        # that would run the frozen layers' backward pass all the same
        front_end._requires_grad = False
        for layer in front_end.conv_layers[: config.frozen_conv_layers]:
            layer.requires_grad_(False)
    return model


class _Heads(nn.Module):
    """One linear classifier per (head layer, target codebook); lower layers get a layer norm.

    Args:
        layers: the transformer layers read (``depth`` = the last one, already normed).
        clusters: K of each target codebook.
        dim: the encoder's width.
        depth: the encoder's number of layers.
    """

    def __init__(
        self, layers: Sequence[int], clusters: Sequence[int], dim: int, depth: int
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.norms = nn.ModuleList(
            nn.LayerNorm(dim) if layer < depth else nn.Identity() for layer in self.layers
        )
        self.linears = nn.ModuleList(
            nn.ModuleList(nn.Linear(dim, k) for k in clusters) for _ in self.layers
        )

    def forward(self, states: Mapping[int, torch.Tensor]) -> list[list[torch.Tensor]]:
        """Logits ``[B, N, K_t]`` per head layer and target, from ``states[l]`` = layer l."""
        return [
            [linear(norm(states[layer])) for linear in linears]
            for layer, norm, linears in zip(self.layers, self.norms, self.linears, strict=True)
        ]


def _step_loss(
    model: nn.Module,
    head_sets: Sequence[tuple[_Heads, Sequence[torch.Tensor]]],
    batch: PretrainBatch,
    config: PretrainConfig,
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Loss of one batch and ``(masked, unmasked)`` accuracy per target (of each set's last
    head layer).

    Args:
        head_sets: ``(heads, targets)`` pairs: each head set predicts its ``[B, N]`` targets;
            the loss is the mean over every (head layer, target) pair of every set.
    """
    depth = int(TINY_SPEC["num_hidden_layers"])
    wanted = {layer for heads, _ in head_sets for layer in heads.layers}
    lower = any(layer < depth for layer in wanted)
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
        states |= {layer: out.hidden_states[layer] for layer in wanted if layer < depth}
    masked = batch.masked & batch.valid
    unmasked = ~batch.masked & batch.valid
    parts = []
    accuracy: list[tuple[float, float]] = []
    count = 0
    for heads, targets in head_sets:
        count += len(heads.layers) * len(targets)
        set_accuracy: list[tuple[float, float]] = []
        for logits_per_target in heads(states):
            set_accuracy = []
            for logits, target in zip(logits_per_target, targets, strict=True):
                for weight, where in ((1.0, masked), (config.unmasked_weight, unmasked)):
                    if weight > 0 and bool(where.any()):
                        parts.append(weight * F.cross_entropy(logits[where], target[where]))
                with torch.no_grad():
                    hit = logits.argmax(-1) == target
                    set_accuracy.append(
                        tuple(
                            float(hit[where].float().mean()) if bool(where.any()) else float("nan")
                            for where in (masked, unmasked)
                        )
                    )
        accuracy += set_accuracy
    return torch.stack(parts).sum() / count, accuracy


def train_tiny_ssl(
    family: str, corpus: PretrainCorpus, ids: list[torch.Tensor], config: PretrainConfig,
    seed: int, progress: bool,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """Pretrain a tiny ``family`` encoder for ``config.steps`` steps on ``corpus``.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        corpus: the training audio (from ``load_pretrain_corpus``).
        ids: per target codebook, the cluster id ``[num_frames]`` int64 of every frame.
        config: the recipe's settings.
        seed: seeds the initialisation (``seed``) and the batches (``seed + 1``).
        progress: show a progress bar.

    Returns:
        The encoder in eval mode, and ``{"loss": [per step], "curve": [every log_every
        steps: step, loss, lr, masked and unmasked accuracy per target]}``, plus
        ``"second_iteration"`` (its targets' k-means summary and step) when
        ``config.relabel_step`` is set.

    Raises:
        BenchmarkError: the loss stopped being finite.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(family, config).train()
        dim, depth = int(TINY_SPEC["hidden_size"]), int(TINY_SPEC["num_hidden_layers"])
        heads = _Heads(config.head_layers, [k for _, k in config.targets], dim, depth)
        # the second iteration's heads exist from the start (one optimiser, one schedule);
        # without gradients until then, AdamW leaves them alone
        heads2 = (
            _Heads(config.head_layers, [config.relabel_clusters], dim, depth)
            if config.relabel_step
            else None
        )
    parameters = [p for p in model.parameters() if p.requires_grad] + list(heads.parameters())
    if heads2 is not None:
        parameters += list(heads2.parameters())
    # fused: one kernel over all ~480 parameter tensors; the per-tensor loop took 70 ms of a
    # 370 ms CPU step (measured, one thread), the fused update 11 ms
    optimizer = torch.optim.AdamW(
        parameters,
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        weight_decay=config.weight_decay,
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    sampler = CropSampler(corpus, ids, config, seed + 1)
    losses: list[float] = []
    curve: list[dict[str, Any]] = []
    relabelled: dict[str, Any] | None = None
    first = len(ids)
    bar = tqdm(range(config.steps), desc=f"pretrain tiny {family}", disable=not progress)
    for step in bar:
        if config.relabel_step and step == config.relabel_step:
            new_ids, relabelled = relabel_targets(
                model, corpus, config.relabel_layer, config.relabel_clusters,
                seed + len(ids), config.kmeans_max_iter, progress,
            )  # fmt: skip
            relabelled["step"] = step
            sampler.ids = [*ids, new_ids]
        batch = sampler.batch()
        head_sets: list[tuple[_Heads, Sequence[torch.Tensor]]] = []
        if relabelled is None or config.relabel_keep:
            head_sets.append((heads, batch.targets[:first]))
        if heads2 is not None and relabelled is not None:
            head_sets.append((heads2, batch.targets[first:]))
        loss, accuracy = _step_loss(model, head_sets, batch, config)
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
    history: dict[str, Any] = {"loss": losses, "curve": curve}
    if relabelled is not None:
        history["second_iteration"] = relabelled
    return model.eval(), history

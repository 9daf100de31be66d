"""Training the scalable vocoder (and its single-layer baselines), readable top to bottom.

One step: draw ``batch_size`` random segments of ``segment_frames`` token frames and their
aligned audio, blank random codebooks per segment (layer dropout, scalable vocoders only),
generate, then

1. in the adversarial phase (the last ``adversarial_steps`` steps; every step by default), update
   speechbrain's HiFi-GAN discriminator (multi-period + multi-scale) with its MSE loss
   (``DiscriminatorLoss(MSEDLoss)``) on the real and the generated segment;
2. update the generator with speechbrain's ``GeneratorLoss``: ``mel_weight`` x mel L1
   (``L1SpecLoss``) plus, in the adversarial phase, ``adversarial_weight`` x ``MSEGLoss`` and
   ``feature_weight`` x ``MelganFeatureLoss``.

Both use AdamW with an exponential learning-rate decay (every ``lr_decay_every`` steps).
Every ``validate_every`` steps (and at step 0 and at the end) the vocoder decodes validation
utterances with all its codebooks and records the mel distance, and DNSMOS on a few of them.
Every ``checkpoint_every`` steps ``checkpoint.pt`` is replaced atomically with everything a
resume needs (models, optimisers, schedulers, step, the sampling RNG, the history); a killed
run started again with the same settings continues from it and draws the same segments as
an uninterrupted run would. A finished run leaves ``vocoder.pt`` (see
:func:`benchmark.vocoders.model.load_vocoder`), ``history.json`` and ``COMPLETE``.

Presets (budgets, sizes, loss weights) are in :mod:`benchmark.vocoders.presets`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.pipeline.keys import fingerprint
from benchmark.pipeline.store import atomic_write_json, atomic_write_text
from benchmark.vocoders.data import VocoderPairs, draw_segments, layer_dropout
from benchmark.vocoders.evaluation import evaluate_decoding, mel_loss
from benchmark.vocoders.model import (
    ScalableVocoder,
    VocoderConfig,
    VocoderError,
    atomic_torch_save,
    load_vocoder,
    save_vocoder,
)
from benchmark.vocoders.presets import MIN_DISCRIMINATOR_SAMPLES, VocoderPreset

log = logging.getLogger(__name__)


@dataclass
class VocoderRun:
    """What a finished training run returns.

    Attributes:
        out_dir: the run folder.
        vocoder_path: ``out_dir / "vocoder.pt"``.
        history: validation records (``step``, ``mel_distance``, ``dnsmos``, losses, time).
        steps: steps trained in total.
        resumed_from: the step a resumed run started at (None when it started fresh).
        skipped: True when the folder already held this finished run.
        seconds: wall time of this call.
    """

    out_dir: Path
    vocoder_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    resumed_from: int | None = None
    skipped: bool = False
    seconds: float = 0.0


@contextlib.contextmanager
def cpu_threads(count: int | None, device: str) -> Iterator[None]:
    """Run the block with ``count`` torch threads on CPU (restored afterwards)."""
    if count is None or not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_vocoder(
    train: VocoderPairs,
    valid: VocoderPairs,
    config: VocoderConfig,
    preset: VocoderPreset,
    out_dir: Path,
    tokenizer_name: str,
    tokenizer_fingerprint: str,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    data_fingerprint: str | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> VocoderRun:
    """Train (or resume, or skip) one vocoder in ``out_dir``.

    Args:
        train: training pairs.
        valid: validation pairs (decoded whole).
        config: the architecture and the codebooks it learns.
        preset: budget and optimiser settings.
        out_dir: the run folder (checkpoint, final vocoder, history).
        tokenizer_name: recorded in the vocoder checkpoint.
        tokenizer_fingerprint: recorded in the vocoder checkpoint and the run fingerprint.
        seed: initialisation and sampling seed.
        device: ``cpu`` or ``cuda``.
        progress: show a progress bar with the losses.
        data_fingerprint: what identifies the data (manifest fingerprints); part of the run
            fingerprint, so a changed corpus never resumes an old run.
        on_checkpoint: called with the step after each checkpoint is written.

    Raises:
        VocoderError: ``out_dir`` holds a run with other settings.
    """
    with cpu_threads(preset.cpu_threads, device):
        return _train(
            train, valid, config, preset, Path(out_dir), tokenizer_name, tokenizer_fingerprint,
            seed, device, progress, data_fingerprint, on_checkpoint,
        )  # fmt: skip


def _train(
    train: VocoderPairs,
    valid: VocoderPairs,
    config: VocoderConfig,
    preset: VocoderPreset,
    out_dir: Path,
    tokenizer_name: str,
    tokenizer_fingerprint: str,
    seed: int,
    device: str,
    progress: bool,
    data_fingerprint: str | None,
    on_checkpoint: Callable[[int], None] | None,
) -> VocoderRun:
    started = time.perf_counter()
    run_fp = fingerprint(
        {
            "config": config.to_dict(),
            "preset": preset.to_dict(),
            "tokenizer": tokenizer_fingerprint,
            "data": data_fingerprint or [item.id for item in train.items],
            "seed": seed,
        }
    )
    final_path = out_dir / "vocoder.pt"
    marker = out_dir / "COMPLETE"
    if marker.is_file() and marker.read_text().strip() == run_fp and final_path.is_file():
        history = json.loads((out_dir / "history.json").read_text())
        log.info("vocoder %s: finished run found, skipped", out_dir)
        return VocoderRun(out_dir, final_path, history, preset.steps, None, True, 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"

    adversarial = preset.adversarial_start < preset.steps
    crop = preset.discriminator_frames or preset.segment_frames
    if (
        adversarial
        and min(crop, preset.segment_frames) * config.hop_length < MIN_DISCRIMINATOR_SAMPLES
    ):
        raise VocoderError(
            f"vocoder preset {preset.name!r}: the discriminator sees "
            f"{min(crop, preset.segment_frames) * config.hop_length} samples; speechbrain's "
            f"period discriminator needs at least {MIN_DISCRIMINATOR_SAMPLES} (raise "
            "discriminator_frames / segment_frames)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vocoder = ScalableVocoder(config).to(device)
        discriminator = _discriminator().to(device) if adversarial else None
    opt_g = _adamw(vocoder, preset)
    sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, preset.lr_gamma)
    opt_d = _adamw(discriminator, preset) if discriminator is not None else None
    sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, preset.lr_gamma) if opt_d else None
    rng = torch.Generator().manual_seed(seed + 1)
    gen_loss, disc_loss = _losses(preset, config.sample_rate)
    valid_loss = mel_loss(config.sample_rate)
    history: list[dict[str, Any]] = []
    step, resumed_from = 0, None

    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if state.get("run_fingerprint") != run_fp:
            raise VocoderError(
                f"{out_dir} holds a vocoder run with other settings (fingerprint "
                f"{str(state.get('run_fingerprint'))[:12]}, this run {run_fp[:12]}); "
                "use another output folder or --overwrite"
            )
        vocoder.load_state_dict(state["vocoder"])
        opt_g.load_state_dict(state["opt_g"])
        sched_g.load_state_dict(state["sched_g"])
        if discriminator is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
            sched_d.load_state_dict(state["sched_d"])
        rng.set_state(state["rng"])
        history = list(state["history"])
        step = resumed_from = int(state["step"])
        log.info("vocoder %s: resuming at step %d", out_dir, step)

    absent = vocoder.absent_ids.cpu()
    valid_indices = list(range(min(preset.valid_utterances, len(valid))))
    dropout_rng = rng if config.layer_dropout else None
    hop = config.hop_length

    def validate(running: dict[str, float]) -> None:
        scores = evaluate_decoding(
            vocoder, valid, valid_indices, None, preset.dnsmos_utterances, valid_loss
        )
        record = {
            "step": step,
            "mel_distance": scores["mel_distance"].value,
            "dnsmos": scores["dnsmos"].to_dict() if "dnsmos" in scores else None,
            "train": dict(running),
            "lr": opt_g.param_groups[0]["lr"],
        }
        history.append(record)
        dnsmos = scores.get("dnsmos")
        log.info(
            "vocoder %s step %d: valid mel distance %.4f, DNSMOS %s",
            config.kind,
            step,
            record["mel_distance"],
            f"{dnsmos.value:.2f}" if dnsmos is not None and dnsmos.value is not None else "n/a",
        )

    if step == 0 and not history:
        validate({})
    bar = tqdm(
        total=preset.steps,
        initial=step,
        desc=f"vocoder {config.kind}",
        disable=not progress,
        leave=False,
    )
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    while step < preset.steps:
        plan = draw_segments(train.frames, preset.batch_size, preset.segment_frames, rng)
        ids, wav = train.batch(plan, preset.segment_frames, absent)
        ids = layer_dropout(ids, absent, config.trained_layers, dropout_rng)
        vocoder.train()
        y_hat = vocoder(ids.to(device))
        y = wav.unsqueeze(1).to(device)
        losses: dict[str, torch.Tensor] = {}
        if discriminator is not None and step >= preset.adversarial_start:
            if crop < preset.segment_frames:
                start = int(torch.randint(preset.segment_frames - crop + 1, (1,), generator=rng))
                y_d = y[..., start * hop : (start + crop) * hop]
                y_hat_d = y_hat[..., start * hop : (start + crop) * hop]
            else:
                y_d, y_hat_d = y, y_hat
            # 1. discriminator: real -> 1, generated -> 0
            scores, _ = discriminator(torch.cat([y_hat_d.detach(), y_d]))
            half = y.shape[0]
            d = disc_loss([s[:half] for s in scores], [s[half:] for s in scores])
            opt_d.zero_grad(set_to_none=True)
            d["D_loss"].backward()
            opt_d.step()
            losses["D"] = d["D_loss"].detach()
            # 2. generator: mel L1 + adversarial + feature matching
            discriminator.requires_grad_(False)
            with torch.no_grad():
                _, feats_real = discriminator(y_d)
            scores_fake, feats_fake = discriminator(y_hat_d)
            g = gen_loss(_train_stage(), y_hat, y, scores_fake, feats_fake, feats_real)
            discriminator.requires_grad_(True)
            losses["adv"] = g["G_adv_loss"].detach()
        else:
            g = gen_loss(_train_stage(), y_hat, y)
        losses["mel"] = g["G_l1_spec_loss"].detach()
        if not torch.isfinite(g["G_loss"]):
            raise FloatingPointError(f"vocoder {config.kind}: loss became {g['G_loss'].item()}")
        opt_g.zero_grad(set_to_none=True)
        g["G_loss"].backward()
        opt_g.step()
        step += 1
        if step % preset.lr_decay_every == 0:
            sched_g.step()
            if sched_d is not None and step > preset.adversarial_start:
                sched_d.step()  # the discriminator's schedule starts when it trains
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1
        bar.update(1)
        bar.set_postfix({k: f"{float(v):.3f}" for k, v in losses.items()})
        if step % preset.validate_every == 0 or step == preset.steps:
            validate({k: v / counts[k] for k, v in sums.items()})
            sums, counts = {}, {}
        if step % preset.checkpoint_every == 0 or step == preset.steps:
            payload = {
                "run_fingerprint": run_fp,
                "step": step,
                "vocoder": vocoder.state_dict(),
                "opt_g": opt_g.state_dict(),
                "sched_g": sched_g.state_dict(),
                "rng": rng.get_state(),
                "history": history,
            }
            if discriminator is not None:
                payload |= {
                    "discriminator": discriminator.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "sched_d": sched_d.state_dict(),
                }
            atomic_torch_save(payload, checkpoint_path)
            if on_checkpoint is not None:
                on_checkpoint(step)
    bar.close()

    extra = {"steps": step, "preset": preset.name, "history": history, "seed": seed}
    save_vocoder(final_path, vocoder, tokenizer_name, tokenizer_fingerprint, extra)
    _write_json(out_dir / "history.json", history)
    atomic_write_text(marker, run_fp + "\n")
    return VocoderRun(
        out_dir, final_path, history, step, resumed_from, False, time.perf_counter() - started
    )


def load_trained(run: VocoderRun, device: str = "cpu") -> ScalableVocoder:
    """The vocoder a run produced."""
    return load_vocoder(run.vocoder_path, device=device)


def _discriminator() -> torch.nn.Module:
    from speechbrain.lobes.models.HifiGAN import HifiganDiscriminator

    return HifiganDiscriminator()


def _adamw(module: torch.nn.Module, preset: VocoderPreset) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        module.parameters(), lr=preset.lr, betas=preset.betas, weight_decay=preset.weight_decay
    )


def _losses(preset: VocoderPreset, sample_rate: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """speechbrain's generator and discriminator losses with the preset's weights."""
    from speechbrain.lobes.models.HifiGAN import (
        DiscriminatorLoss,
        GeneratorLoss,
        MelganFeatureLoss,
        MSEDLoss,
        MSEGLoss,
    )

    generator = GeneratorLoss(
        mseg_loss=MSEGLoss(),
        mseg_loss_weight=preset.adversarial_weight,
        feat_match_loss=MelganFeatureLoss(),
        feat_match_loss_weight=preset.feature_weight,
        l1_spec_loss=mel_loss(sample_rate),
        l1_spec_loss_weight=preset.mel_weight,
    )
    return generator, DiscriminatorLoss(msed_loss=MSEDLoss())


def _train_stage() -> Any:
    import speechbrain as sb

    return sb.Stage.TRAIN


def _write_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data)

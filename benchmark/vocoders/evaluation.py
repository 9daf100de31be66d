"""Scoring decoded audio: mel distance to the reference, and DNSMOS where it can run.

**Mel distance** is the L1 distance between log-mel spectrograms of the decoded and the
reference waveform, as speechbrain's :class:`~speechbrain.lobes.models.HifiGAN.L1SpecLoss`
computes it for HiFi-GAN training (80 bands, 1024-point FFT, hop 256, magnitude, natural log
with a 1e-5 floor), averaged over bands and frames; lower is better, 0 is identical.
The per-utterance mean comes with a bootstrap confidence interval.

**DNSMOS** (Reddy et al. 2022) predicts a listener's overall quality score (1-5) without a
reference. It runs the ONNX models that ship inside the ``speechmos`` package, offline, through
:mod:`benchmark.metrics.dnsmos` (the per-utterance DNSMOS metrics use the same code). If the
package or its models cannot run, the metric is recorded as unavailable with the reason,
never as a number.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from benchmark.api import MetricValue
from benchmark.metrics.bootstrap import DEFAULT_LEVEL, bootstrap_mean_ci
from benchmark.metrics.dnsmos import dnsmos_judge, dnsmos_scores

log = logging.getLogger(__name__)

#: Settings of the mel spectrogram behind the mel distance (the HiFi-GAN recipe's).
MEL_SETTINGS = {"n_mel_channels": 80, "n_fft": 1024, "win_length": 1024, "hop_length": 256}


def mel_loss(sample_rate: int) -> torch.nn.Module:
    """speechbrain's ``L1SpecLoss`` with :data:`MEL_SETTINGS` at ``sample_rate``."""
    from speechbrain.lobes.models.HifiGAN import L1SpecLoss

    return L1SpecLoss(
        sample_rate=sample_rate,
        n_stft=MEL_SETTINGS["n_fft"] // 2 + 1,
        mel_fmax=None,
        **MEL_SETTINGS,
    )


def mel_distance(decoded: torch.Tensor, reference: torch.Tensor, loss: torch.nn.Module) -> float:
    """Mel L1 distance between two ``[T]`` waveforms (cut to the shorter, padded to a window)."""
    length = min(decoded.shape[-1], reference.shape[-1])
    pad = max(0, MEL_SETTINGS["n_fft"] - length)
    a = torch.nn.functional.pad(decoded[..., :length].reshape(1, 1, -1), (0, pad))
    b = torch.nn.functional.pad(reference[..., :length].reshape(1, 1, -1), (0, pad))
    return float(loss(a.float(), b.to(a.device).float()))


def mel_distance_metric(values: Sequence[float]) -> MetricValue:
    """Mean mel distance with a bootstrap CI."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return MetricValue.unavailable("mel_distance", "lower", "no utterance was decoded")
    low, high = bootstrap_mean_ci(array) if array.size > 1 else (None, None)
    return MetricValue(
        name="mel_distance",
        direction="lower",
        value=float(array.mean()),
        ci_low=low,
        ci_high=high,
        ci_level=DEFAULT_LEVEL if low is not None else None,
        n=int(array.size),
        judge={"name": "log-mel L1 (speechbrain L1SpecLoss)", **MEL_SETTINGS},
    )


def dnsmos_metric(waves: Sequence[torch.Tensor], sample_rate: int) -> MetricValue:
    """Mean DNSMOS overall score of ``[T]`` waveforms, or unavailable with the reason."""
    if not waves:
        return MetricValue.unavailable("dnsmos", "higher", "no utterance to score")
    if sample_rate != 16000:
        return MetricValue.unavailable(
            "dnsmos", "higher", f"DNSMOS scores 16 kHz audio, the vocoder makes {sample_rate} Hz"
        )
    try:
        judge = {**dnsmos_judge(), "output": "ovrl"}
        scores = [dnsmos_scores(wave.detach().cpu().double().numpy())["ovrl"] for wave in waves]
    except Exception as exc:  # an optional judge: record why it did not run
        reason = f"DNSMOS could not run: {type(exc).__name__}: {' '.join(str(exc).split())}"
        log.warning("%s", reason)
        return MetricValue.unavailable("dnsmos", "higher", reason[:300])
    array = np.asarray(scores)
    if not np.isfinite(array).all():
        return MetricValue.unavailable("dnsmos", "higher", "DNSMOS returned a non-finite score")
    low, high = bootstrap_mean_ci(array) if array.size > 1 else (None, None)
    return MetricValue(
        name="dnsmos",
        direction="higher",
        value=float(array.mean()),
        ci_low=low,
        ci_high=high,
        ci_level=DEFAULT_LEVEL if low is not None else None,
        n=int(array.size),
        judge=judge,
    )


def evaluate_decoding(
    vocoder,
    pairs,
    indices: Sequence[int],
    codebooks: Sequence[int] | None = None,
    dnsmos_count: int = 0,
    loss: torch.nn.Module | None = None,
) -> dict[str, MetricValue]:
    """Decode utterances with a codebook subset and score them against their audio.

    Args:
        vocoder: a :class:`~benchmark.vocoders.model.ScalableVocoder`, or a tokenizer (its
            own ``decode`` and ``info.sample_rate``).
        pairs: :class:`~benchmark.vocoders.data.VocoderPairs` of the split.
        indices: which utterances to decode, one at a time (no padding effects).
        codebooks: the subset to decode with; None = every trained codebook.
        dnsmos_count: how many of the decoded utterances DNSMOS scores (0 = none; the metric
            is then absent from the result).
        loss: a :func:`mel_loss` module to reuse.

    Returns:
        ``{"mel_distance": ..., "dnsmos": ...}`` (``dnsmos`` only when asked for).
    """
    rate = vocoder.info.sample_rate if hasattr(vocoder, "info") else vocoder.config.sample_rate
    loss = loss if loss is not None else mel_loss(rate)
    distances, decoded = [], []
    for index in indices:
        tokens, reference = pairs.aligned(index)
        wav, lengths = vocoder.decode(
            tokens.unsqueeze(0), torch.tensor([tokens.shape[0]]), codebooks=codebooks
        )
        wave = wav[0, : int(lengths[0])].detach().cpu()
        distances.append(mel_distance(wave, reference, loss))
        if len(decoded) < dnsmos_count:
            decoded.append(wave)
    out = {"mel_distance": mel_distance_metric(distances)}
    if dnsmos_count > 0:
        out["dnsmos"] = dnsmos_metric(decoded, rate)
    return out

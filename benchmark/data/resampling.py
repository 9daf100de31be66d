"""Resampling zero-padded batches between the corpus rate and a tokenizer's rate.

The harness loads audio at each tokenizer's ``info.sample_rate`` (resampling files from the
corpus rate on the way in); :func:`to_rate` is the way back, for audio a tokenizer decodes at
its own rate (24 kHz for the codecs) that metrics and judges want at the corpus rate (16 kHz).
"""

from __future__ import annotations

import torch

from benchmark.data.audio import resample


def resampled_length(samples: int, from_rate: int, to_rate: int) -> int:
    """Samples after resampling ``samples`` from ``from_rate`` to ``to_rate`` Hz.

    That is ``ceil(samples * to_rate / from_rate)``, what :func:`benchmark.data.audio.resample`
    returns.
    """
    return -(-int(samples) * int(to_rate) // int(from_rate))


def to_rate(
    wav: torch.Tensor, lengths: torch.Tensor, from_rate: int, to_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample a zero-padded batch, item by item in effect.

    Samples past each item's length are zeroed first, so the band-limited interpolation of an
    item's last valid samples sees zeros after them whatever the padding held, exactly as it
    would for the item alone; outputs past each new length are zeroed too. One batched call
    of :func:`benchmark.data.audio.resample` does the work.

    Args:
        wav: ``[B, T]`` float waveforms at ``from_rate`` Hz.
        lengths: ``[B]`` int valid sample counts.
        from_rate: input rate in Hz.
        to_rate: output rate in Hz.

    Returns:
        ``wav [B, T']`` float at ``to_rate`` Hz, zero-padded, with ``T'`` the longest new
        length, and ``lengths [B]`` int64 = ``ceil(lengths * to_rate / from_rate)``. The
        inputs are never modified; equal rates return ``(wav, lengths)`` as given.

    Raises:
        ValueError: not a float ``[B, T]`` batch, lengths not ``[B]`` integers in
            ``[0, T]``, or a rate that is not a positive int.
    """
    if not torch.is_tensor(wav) or wav.ndim != 2 or not wav.is_floating_point():
        raise ValueError("to_rate expects a float tensor wav [B, T]")
    if (
        not torch.is_tensor(lengths)
        or lengths.shape != (wav.shape[0],)
        or lengths.is_floating_point()
        or lengths.dtype == torch.bool
    ):
        raise ValueError(f"to_rate expects integer lengths [B={wav.shape[0]}]")
    counts = [int(n) for n in lengths.tolist()]
    if any(not 0 <= n <= wav.shape[1] for n in counts):
        raise ValueError(f"to_rate: lengths {counts} must lie in [0, T={wav.shape[1]}]")
    for label, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"to_rate: {label} must be a positive int in Hz, got {rate!r}")
    if from_rate == to_rate:
        return wav, lengths
    new = [resampled_length(n, from_rate, to_rate) for n in counts]
    steps = torch.arange(wav.shape[1], device=wav.device)
    masked = wav * (steps[None, :] < lengths.to(wav.device)[:, None])
    out = resample(masked, from_rate, to_rate) if wav.shape[1] else masked
    total = max(new, default=0)
    out = out[:, :total]
    if out.shape[1] < total:  # pragma: no cover - resample returns ceil(T * to / from)
        out = torch.nn.functional.pad(out, (0, total - out.shape[1]))
    new_lengths = torch.tensor(new, dtype=torch.int64)
    keep = torch.arange(total, device=out.device)[None, :] < new_lengths.to(out.device)[:, None]
    return out * keep, new_lengths

"""Padding-exact batched decoding with speechbrain's HiFi-GAN generators, and short inputs.

speechbrain's ``HifiganGenerator`` (and ``UnitHifiganGenerator``, which pools token
embeddings and then runs it) pads every "same" convolution by *reflection* at both ends of
the sequence. Two consequences for a decoder that takes a padded batch:

- **Batches.** On a lone item the last frames see the reflection of the item's own end; in a
  padded batch they see the padding frames instead, so the last frames of an item decoded
  in a batch differ from the same item decoded alone (measured on the scalable vocoder's
  default ``full`` architecture with random weights: up to 3.5e-3 over the last 8 of 25
  frames, signal RMS 0.17). :func:`decode_padding_exact` therefore runs the generator once
  per distinct length, on the items of that length cut to it: every item is decoded exactly
  as it would be alone.
- **Short inputs.** Reflection needs the padding to be shorter than the sequence, so a
  generator refuses inputs under :func:`min_frames` frames (6 for the ``full`` architecture:
  its first residual blocks pad 25 samples at 5 samples per frame) with a raw
  ``RuntimeError``. The rule here: an item of ``0 < n < min_frames`` frames is extended to
  ``min_frames`` by repeating its last frame, decoded, and cut back to ``n * hop`` samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.errors import BenchmarkError


def _reflect_pad(module: nn.Module) -> int:
    """Samples a speechbrain ``Conv1d`` pads by reflection on each side (0 if none)."""
    if getattr(module, "padding", None) != "same" or getattr(module, "padding_mode", "") != (
        "reflect"
    ):
        return 0
    if int(getattr(module, "stride", 1)) != 1:
        return int(module.kernel_size) // 2
    return int(module.dilation) * (int(module.kernel_size) - 1) // 2


def _needed(stage: nn.Module, rate: int) -> int:
    """Fewest frames for which every reflect-padded conv of ``stage`` (at ``rate`` samples per
    frame) gets an input longer than its padding."""
    from speechbrain.nnet.CNN import Conv1d

    pads = [_reflect_pad(m) for m in stage.modules() if isinstance(m, Conv1d)]
    return max((pad // rate + 1 for pad in pads if pad), default=1)


def min_frames(generator: nn.Module) -> int:
    """Fewest token frames a speechbrain HiFi-GAN generator accepts (see module docstring).

    Args:
        generator: a ``speechbrain.lobes.models.HifiGAN.HifiganGenerator`` (or subclass).

    Raises:
        BenchmarkError: a module without the generator's ``conv_pre`` / ``ups`` /
            ``resblocks`` / ``conv_post`` layout.
    """
    parts = ("conv_pre", "ups", "resblocks", "conv_post", "num_kernels")
    if not all(hasattr(generator, name) for name in parts):
        raise BenchmarkError(
            f"{type(generator).__name__} is not a speechbrain HiFi-GAN generator "
            "(no conv_pre/ups/resblocks/conv_post)"
        )
    needed = _needed(generator.conv_pre, 1)
    rate = 1
    for i, up in enumerate(generator.ups):
        rate *= int(getattr(up, "conv", up).stride[0])
        blocks = generator.resblocks[i * generator.num_kernels : (i + 1) * generator.num_kernels]
        needed = max(needed, *(_needed(block, rate) for block in blocks))
    return max(needed, _needed(generator.conv_post, rate))


def decode_padding_exact(
    generate: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    frame_lengths: torch.Tensor,
    hop: int,
    shortest: int,
) -> torch.Tensor:
    """Decode each item as if it were alone: one generator call per distinct length.

    Args:
        generate: ``[b, n, K]`` ids -> ``[b, 1, >= n * hop]`` audio (the generator).
        ids: ``[B, N, K]`` int64 ids, valid up to each item's length.
        frame_lengths: ``[B]`` int64 valid frames (0 allowed: silence of length 0).
        hop: samples per frame.
        shortest: :func:`min_frames` of the generator; shorter items repeat their last frame
            up to it and are cut back.

    Returns:
        ``[B, max(frame_lengths) * hop]`` float, zero after each item's ``n * hop`` samples.
    """
    lengths = frame_lengths.to(ids.device, torch.int64)
    longest = int(lengths.max()) if len(lengths) else 0
    wav: torch.Tensor | None = None
    for n in sorted({int(x) for x in lengths.tolist()} - {0}):
        rows = (lengths == n).nonzero().squeeze(1)
        chunk = ids[rows, :n]
        if n < shortest:
            chunk = torch.cat([chunk, chunk[:, -1:].expand(-1, shortest - n, -1)], dim=1)
        audio = generate(chunk)[:, 0, : n * hop]
        if wav is None:
            wav = torch.zeros(len(lengths), longest * hop, device=audio.device, dtype=audio.dtype)
        wav[rows, : n * hop] = audio
    if wav is None:
        return torch.zeros(len(lengths), longest * hop, device=ids.device)
    return wav

"""Checks of what ``encode`` and ``decode`` return against the contract (shapes, dtypes, ranges)."""

from __future__ import annotations

import torch


class CheckFailure(Exception):
    """A broken property of a tokenizer's output; the message is the check's detail."""


def describe(value: object) -> str:
    """``tensor int64 [2, 3]`` or the type name, for details."""
    if isinstance(value, torch.Tensor):
        return f"tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    return type(value).__name__


def validate_encoded(
    out: object, batch: int, num_codebooks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check encode's return value against the contract; CPU copies or :class:`CheckFailure`."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailure(
            f"encode must return a tuple (tokens, token_lengths), got {describe(out)}"
        )
    tokens, token_lengths = out
    if not isinstance(tokens, torch.Tensor):
        raise CheckFailure(f"tokens must be a torch.Tensor, got {describe(tokens)}")
    if not isinstance(token_lengths, torch.Tensor):
        raise CheckFailure(f"token_lengths must be a torch.Tensor, got {describe(token_lengths)}")
    if tokens.dtype != torch.int64:
        raise CheckFailure(f"tokens must be int64, got {describe(tokens)}")
    if tokens.ndim != 3 or tokens.shape[0] != batch or tokens.shape[2] != num_codebooks:
        raise CheckFailure(
            f"tokens must be [B={batch}, N, K={num_codebooks}], got {describe(tokens)}"
        )
    if token_lengths.dtype != torch.int64 or token_lengths.shape != (batch,):
        raise CheckFailure(
            f"token_lengths must be int64 [B={batch}], got {describe(token_lengths)}"
        )
    tokens, token_lengths = tokens.detach().cpu(), token_lengths.detach().cpu()
    frames = tokens.shape[1]
    bad = [int(n) for n in token_lengths if not 0 <= int(n) <= frames]
    if bad:
        raise CheckFailure(f"token_lengths {token_lengths.tolist()} must lie in [0, N={frames}]")
    return tokens, token_lengths


def validate_decoded(out: object, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check decode's return value against the contract; CPU copies or :class:`CheckFailure`."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailure(f"decode must return a tuple (wav, lengths), got {describe(out)}")
    wav, lengths = out
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
        raise CheckFailure(f"decoded wav must be a float tensor, got {describe(wav)}")
    if wav.ndim != 2 or wav.shape[0] != batch:
        raise CheckFailure(f"decoded wav must be [B={batch}, T], got {describe(wav)}")
    if (
        not isinstance(lengths, torch.Tensor)
        or lengths.is_floating_point()
        or lengths.is_complex()
        or lengths.shape != (batch,)
    ):
        raise CheckFailure(
            f"decoded lengths must be an integer tensor [B={batch}], got {describe(lengths)}"
        )
    wav, lengths = wav.detach().cpu(), lengths.detach().cpu()
    if not bool(torch.isfinite(wav).all()):
        raise CheckFailure(
            f"decoded wav holds {int((~torch.isfinite(wav)).sum())} non-finite samples"
        )
    if any(not 0 <= int(n) <= wav.shape[1] for n in lengths):
        raise CheckFailure(f"decoded lengths {lengths.tolist()} must lie in [0, T={wav.shape[1]}]")
    return wav, lengths

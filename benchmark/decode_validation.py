"""Checks of ``decode``'s inputs, shared by every tokenizer and vocoder that decodes ids.

The contract (:meth:`benchmark.api.Tokenizer.decode`): ``tokens [B, N, K]`` integer ids,
``token_lengths [B]`` integer valid frame counts in ``[0, N]``, and ``codebooks`` None (all)
or a non-empty list of distinct codebook indices. :func:`check_decode_inputs` checks all of
it and raises the caller's error class (``ValueError`` or a subclass) with a one-line message
that starts with the caller's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def describe(value: object) -> str:
    """``tensor int64 [2, 3]`` or the type name, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    return type(value).__name__


def check_codebook_subset(
    owner: str,
    codebooks: Sequence[int] | None,
    num_codebooks: int,
    *,
    error: type[ValueError] = ValueError,
    what: str = "codebook",
) -> list[int]:
    """The codebooks to decode: all for None, else distinct indices in ``[0, K)``, at least one.

    Args:
        owner: name that starts the message.
        codebooks: the caller's ``codebooks``.
        num_codebooks: ``K``.
        error: exception class raised.
        what: what a codebook is called in the message (``band`` for mel-band tokenizers).

    Returns:
        The indices, in the caller's order.

    Raises:
        error: an empty list, a non-int, a repeated index or one outside ``[0, K)``.
    """
    k = num_codebooks
    if codebooks is None:
        return list(range(k))
    selected = list(codebooks)
    ints = all(not isinstance(c, bool) and isinstance(c, int) for c in selected)
    outside = [c for c in selected if ints and not 0 <= c < k]
    if not selected or not ints or outside or len(set(selected)) != len(selected):
        missing = f"; {what} {outside[0]} does not exist" if outside else ""
        raise error(
            f"{owner}: codebooks must be distinct {what} indices in [0, {k}), at least one, "
            f"got {codebooks!r}{missing}"
        )
    return selected


def _integer(tensor: torch.Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def check_decode_inputs(
    owner: str,
    tokens: torch.Tensor,
    token_lengths: torch.Tensor,
    codebook_sizes: Sequence[int],
    codebooks: Sequence[int] | None = None,
    *,
    error: type[ValueError] = ValueError,
    what: str = "codebook",
    select: Callable[[Sequence[int] | None], Sequence[int]] | None = None,
    decoded_only: bool = False,
) -> list[int]:
    """Check ``decode``'s inputs; return the codebooks to decode.

    In order: ``tokens`` an integer ``[B, N, K]`` tensor, ``token_lengths`` an integer
    ``[B]`` tensor in ``[0, N]``, ``codebooks`` (:func:`check_codebook_subset`, or
    ``select``), then every id in ``[0, C_k)``.

    Args:
        owner: name that starts each message (the tokenizer's, ``vocoder``, ...).
        tokens: ``[B, N, K]`` integer ids.
        token_lengths: ``[B]`` valid frame counts.
        codebook_sizes: ``C_k`` per codebook (``K`` of them).
        codebooks: None (all) or the codebook indices to decode.
        error: exception class raised.
        what: what a codebook is called in messages (``band`` for mel-band tokenizers).
        select: the caller's own codebook check (``codebooks`` -> indices, raising on a
            subset it cannot decode); default :func:`check_codebook_subset`.
        decoded_only: check ids only where they are decoded (valid frames of the selected
            codebooks); by default every frame of every codebook, padding included.

    Returns:
        The codebook indices to decode.

    Raises:
        error: a wrong type, shape or dtype, a length outside ``[0, N]``, a bad
            ``codebooks``, or an id outside its codebook (names the codebook and the id).
    """
    k = len(codebook_sizes)
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3 or tokens.shape[2] != k:
        raise error(
            f"{owner}: tokens must be an integer tensor [B, N, {k}], got {describe(tokens)}"
        )
    if not _integer(tokens):
        raise error(f"{owner}: tokens must hold integer ids, got {describe(tokens)}")
    if (
        not isinstance(token_lengths, torch.Tensor)
        or token_lengths.shape != (tokens.shape[0],)
        or not _integer(token_lengths)
    ):
        raise error(
            f"{owner}: token_lengths must be an integer tensor [B={tokens.shape[0]}], got "
            f"{describe(token_lengths)}"
        )
    if len(token_lengths) and (
        int(token_lengths.min()) < 0 or int(token_lengths.max()) > tokens.shape[1]
    ):
        raise error(
            f"{owner}: token_lengths must lie in [0, N={tokens.shape[1]}], got "
            f"{token_lengths.tolist()}"
        )
    if select is None:
        selected = check_codebook_subset(owner, codebooks, k, error=error, what=what)
    else:
        selected = list(select(codebooks))
    checked, valid = range(k), None
    if decoded_only:
        frames = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        checked, valid = selected, frames < token_lengths.to(tokens.device).unsqueeze(1)
    for c in checked:
        column = tokens[..., c] if valid is None else tokens[..., c][valid]
        if column.numel() == 0:
            continue
        low, high = int(column.min()), int(column.max())
        size = int(codebook_sizes[c])
        if low < 0 or high >= size:
            where = "on the decoded frames and codebooks" if decoded_only else "on every frame"
            raise error(
                f"{owner}: codebook {c} holds id {low if low < 0 else high}, outside its range "
                f"[0, {size}) (ids must lie in [0, {size}) {where})"
            )
    return selected

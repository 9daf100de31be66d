"""Conformance suite: does a tokenizer keep the :class:`benchmark.api.Tokenizer` contract?

:func:`check_tokenizer` runs a fixed list of small checks on a seeded synthetic batch (three
items of different lengths: chirps, harmonic tones and noise) and returns one
:class:`CheckResult` per check. Each check is a function of a shared :class:`_Probe`; a check
that raises is a failure carrying the exception text, and never stops the others.

Checks declare the checks they build on. When one of those did not pass, the check is
skipped and names it, so one broken property is reported once, where it breaks (an encode
that raises fails ``encode-shape`` and skips everything that needs tokens; a tokenizer that
is not deterministic fails ``determinism`` and skips ``padding-invariance``, whose
comparison would be meaningless).

Checks, in order: ``metadata``, ``encode-shape``, ``token-range``, ``frame-rate``,
``determinism``, ``padding-invariance``, ``no-mutation``, ``bitrate``, ``decode``,
``embeddings``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from benchmark.api import Tokenizer, TokenizerInfo
from benchmark.data.synthetic import synthetic_batch
from benchmark.output_checks import CheckFailure as _Fail
from benchmark.output_checks import describe as _describe
from benchmark.output_checks import validate_decoded as _validate_decoded
from benchmark.output_checks import validate_encoded as _validate_encoded

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "GATE_CHECKS",
    "SUITE_VERSION",
    "CheckResult",
    "check_tokenizer",
    "failed_checks",
    "format_results",
    "synthetic_batch",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: Bump when a check changes what it accepts (recorded with every conformance result).
SUITE_VERSION = 1
#: The fast checks ``run`` executes on one small batch before a tokenizer's first extraction.
GATE_CHECKS: tuple[str, ...] = (
    "metadata",
    "encode-shape",
    "token-range",
    "frame-rate",
    "determinism",
    "padding-invariance",
    "bitrate",
)
#: ``frame-rate``: allowed ``|n - T * frame_rate / sample_rate|`` is this many frames...
FRAME_SLACK = 2.0
#: ... plus this fraction of the expected count.
FRAME_RELATIVE_SLACK = 0.02
#: ``bitrate``: allowed relative gap between declared and measured bitrate, on top of one
#: frame per item for the rounding of each item's last partial frame.
BITRATE_TOLERANCE = 0.01
#: ``decode``: allowed length gap beyond one frame's worth of samples, relative.
DECODE_RELATIVE_SLACK = 0.01


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one conformance check.

    Attributes:
        name: the check's name (``metadata``, ``decode``, ...).
        passed: False only when the check failed; a skipped check did not fail.
        detail: one line: what was measured, or what is wrong and where.
        skipped: True when the check did not apply (a tokenizer that cannot decode) or
            needs a check that did not pass.
    """

    name: str
    passed: bool
    detail: str
    skipped: bool = False

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"


class _Skip(Exception):
    """Raised by a check that does not apply; its message is the result's detail."""


@dataclass
class _Probe:
    """What the checks share: the tokenizer, its metadata, the synthetic batch, encodings.

    Attributes:
        tokenizer: the tokenizer under test.
        seed: seed of the synthetic batch.
        tolerance: fraction of valid frames allowed to differ in ``padding-invariance``.
        info: the validated metadata (set by ``metadata``).
        wav: ``[B, T]`` float32 synthetic batch at ``info.sample_rate`` Hz, zero-padded.
        lengths: ``[B]`` int64 valid sample counts.
        tokens: ``[B, N, K]`` from the first encode of the batch (set by ``encode-shape``).
        token_lengths: ``[B]`` from the same encode.
    """

    tokenizer: Tokenizer
    seed: int
    tolerance: float
    info: TokenizerInfo | None = None
    wav: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    token_lengths: torch.Tensor | None = None
    outcomes: dict[str, CheckResult] = field(default_factory=dict)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode fresh copies and return validated CPU ``(tokens, token_lengths)``."""
        out = self.tokenizer.encode(wav.clone(), lengths.clone())
        return _validate_encoded(out, wav.shape[0], self.info.num_codebooks)

    def valid(self, tokens: torch.Tensor, token_lengths: torch.Tensor, b: int) -> torch.Tensor:
        """``[n_b, K]`` valid frames of item ``b``."""
        return tokens[b, : int(token_lengths[b])]


# ---------------------------------------------------------------------- synthetic audio


# ---------------------------------------------------------------------- the checks


def check_metadata(probe: _Probe) -> str:
    """``info`` is a consistent :class:`TokenizerInfo`; builds the synthetic batch."""
    info = getattr(probe.tokenizer, "info", None)
    if not isinstance(info, TokenizerInfo):
        raise _Fail(f"tokenizer.info must be a TokenizerInfo, got {_describe(info)}")
    problems = []
    if not isinstance(info.name, str) or not info.name:
        problems.append(f"name {info.name!r} must be a non-empty str")
    if isinstance(info.sample_rate, bool) or not isinstance(info.sample_rate, int):
        problems.append(f"sample_rate {info.sample_rate!r} must be an int")
    elif info.sample_rate <= 0:
        problems.append(f"sample_rate {info.sample_rate} must be positive")
    if not isinstance(info.frame_rate, int | float) or not (
        math.isfinite(info.frame_rate) and info.frame_rate > 0
    ):
        problems.append(f"frame_rate {info.frame_rate!r} must be a positive finite number")
    sizes = info.codebook_sizes
    if not isinstance(sizes, tuple) or not sizes:
        problems.append(f"codebook_sizes {sizes!r} must be a non-empty tuple")
    else:
        for k, size in enumerate(sizes):
            if isinstance(size, bool) or not isinstance(size, int) or size < 2:
                problems.append(f"codebook {k} size {size!r} must be an int >= 2")
    if info.layers is not None and (not isinstance(sizes, tuple) or len(info.layers) != len(sizes)):
        problems.append(f"{len(info.layers)} layers for {len(sizes)} codebooks")
    if not isinstance(info.can_decode, bool):
        problems.append(f"can_decode {info.can_decode!r} must be a bool")
    if problems:
        raise _Fail("; ".join(problems))
    probe.info = info
    probe.wav, probe.lengths = synthetic_batch(info.sample_rate, probe.seed)
    frame_rate = round(float(info.frame_rate), 3)
    return (
        f"{info.sample_rate} Hz, {frame_rate} frames/s, {info.num_codebooks} codebooks, "
        f"{info.bitrate:.1f} bit/s ({info.tier} tier)"
    )


def check_encode_shape(probe: _Probe) -> str:
    """encode returns ``(tokens [B, N, K] int64, token_lengths [B] int64)``, lengths <= N."""
    probe.tokens, probe.token_lengths = probe.encode(probe.wav, probe.lengths)
    return f"tokens {list(probe.tokens.shape)} int64, token_lengths {probe.token_lengths.tolist()}"


def check_token_range(probe: _Probe) -> str:
    """Every id on a valid frame lies in ``[0, codebook_sizes[k])``."""
    sizes = probe.info.codebook_sizes
    for b in range(probe.tokens.shape[0]):
        valid = probe.valid(probe.tokens, probe.token_lengths, b)
        for k, size in enumerate(sizes):
            column = valid[:, k]
            bad = (column < 0) | (column >= size)
            if bool(bad.any()):
                frame = int(bad.nonzero()[0, 0])
                raise _Fail(
                    f"item {b} codebook {k}: id {int(column[frame])} at frame {frame} outside "
                    f"[0, {size}) ({int(bad.sum())} of {len(column)} valid frames)"
                )
    return f"all valid ids inside their codebook sizes {_sizes_text(sizes)}"


def check_frame_rate(probe: _Probe) -> str:
    """Valid frame counts match ``duration * frame_rate``."""
    info = probe.info
    observed = []
    for b, (samples, frames) in enumerate(
        zip(probe.lengths.tolist(), probe.token_lengths.tolist(), strict=True)
    ):
        expected = samples * info.frame_rate / info.sample_rate
        if abs(frames - expected) > FRAME_SLACK + FRAME_RELATIVE_SLACK * expected:
            raise _Fail(
                f"item {b}: {frames} frames for {samples / info.sample_rate:.3f} s, expected "
                f"{expected:.1f} at {info.frame_rate:g} frames/s "
                f"(measured {frames * info.sample_rate / samples:.2f} frames/s)"
            )
        observed.append(f"{frames}/{expected:.1f}")
    return f"frames/expected per item: {', '.join(observed)}"


def check_determinism(probe: _Probe) -> str:
    """Encoding the same batch twice gives the same valid tokens."""
    tokens, token_lengths = probe.encode(probe.wav, probe.lengths)
    if not torch.equal(token_lengths, probe.token_lengths):
        raise _Fail(
            f"token_lengths differ between two encodes: {probe.token_lengths.tolist()} then "
            f"{token_lengths.tolist()}"
        )
    for b in range(tokens.shape[0]):
        first = probe.valid(probe.tokens, probe.token_lengths, b)
        second = probe.valid(tokens, token_lengths, b)
        differing = int((first != second).any(dim=1).sum())
        if differing:
            raise _Fail(
                f"item {b}: second encode differs on {differing} of {len(first)} valid frames"
            )
    return "two encodes of the batch agree on every valid frame"


def check_padding_invariance(probe: _Probe) -> str:
    """Each item's valid tokens are the same in the padded batch and encoded alone."""
    problems, total_frames, total_differing = [], 0, 0
    for b, samples in enumerate(probe.lengths.tolist()):
        alone, alone_lengths = probe.encode(
            probe.wav[b : b + 1, :samples], probe.lengths[b : b + 1]
        )
        n_batch, n_alone = int(probe.token_lengths[b]), int(alone_lengths[0])
        if n_batch != n_alone:
            problems.append(f"item {b} has {n_batch} frames in the batch, {n_alone} alone")
            continue
        batched = probe.valid(probe.tokens, probe.token_lengths, b)
        differing = int((batched != alone[0, :n_alone]).any(dim=1).sum())
        total_frames += n_batch
        total_differing += differing
        if differing > probe.tolerance * n_batch:
            problems.append(f"item {b} differs on {differing} of {n_batch} valid frames")
    if problems:
        raise _Fail("; ".join(problems))
    return (
        f"batched and single encodes agree ({total_differing} of {total_frames} valid frames "
        f"differ, tolerance {probe.tolerance:.1%})"
    )


def check_no_mutation(probe: _Probe) -> str:
    """encode and decode leave their input tensors as they were."""
    wav, lengths = probe.wav.clone(), probe.lengths.clone()
    out = probe.tokenizer.encode(wav, lengths)
    changed = _changed({"wav": (wav, probe.wav), "lengths": (lengths, probe.lengths)})
    if changed:
        raise _Fail(f"encode modified its input {changed}")
    if not probe.info.can_decode:
        return "encode leaves its inputs unchanged (decode not tested: cannot decode)"
    tokens, token_lengths = _validate_encoded(out, wav.shape[0], probe.info.num_codebooks)
    tokens_in, lengths_in = tokens.clone(), token_lengths.clone()
    try:
        probe.tokenizer.decode(tokens_in, lengths_in)
    except Exception as exc:  # reported by the decode check; here only mutation counts
        return f"encode leaves its inputs unchanged (decode raised {type(exc).__name__})"
    changed = _changed(
        {"tokens": (tokens_in, tokens), "token_lengths": (lengths_in, token_lengths)}
    )
    if changed:
        raise _Fail(f"decode modified its input {changed}")
    return "encode and decode leave their inputs unchanged"


def check_bitrate(probe: _Probe) -> str:
    """Declared bitrate matches the bitrate measured from the tokens."""
    info = probe.info
    seconds = float(probe.lengths.sum()) / info.sample_rate
    frames = int(probe.token_lengths.sum())
    bits_per_frame = sum(math.log2(c) for c in info.codebook_sizes)
    measured = frames / seconds * bits_per_frame
    gap = abs(measured - info.bitrate) / info.bitrate
    # Each item may round its last partial frame up or down: one frame per item is allowed
    # on top of the relative tolerance (it matters at low frame rates: Mimi's 12.5 Hz).
    allowed = BITRATE_TOLERANCE + len(probe.lengths) / (seconds * info.frame_rate)
    text = (
        f"declared {info.bitrate:.1f} bit/s, measured {measured:.1f} bit/s "
        f"({frames} frames in {seconds:.2f} s), gap {gap:.1%}"
    )
    if gap > allowed:
        raise _Fail(f"{text} > {allowed:.1%}")
    return text


def check_decode(probe: _Probe) -> str:
    """decode returns finite float audio of the length the frames stand for; ``[0]`` decodes."""
    info = probe.info
    if not info.can_decode:
        raise _Skip("cannot decode (info.can_decode is False)")
    batch = probe.tokens.shape[0]
    wav, lengths = _validate_decoded(
        probe.tokenizer.decode(probe.tokens.clone(), probe.token_lengths.clone()), batch
    )
    samples_per_frame = info.sample_rate / info.frame_rate
    for b, (frames, samples) in enumerate(
        zip(probe.token_lengths.tolist(), lengths.tolist(), strict=True)
    ):
        expected = frames * samples_per_frame
        if abs(samples - expected) > samples_per_frame + DECODE_RELATIVE_SLACK * expected + 1:
            raise _Fail(
                f"item {b}: decoded {samples} samples for {frames} frames, expected "
                f"{expected:.0f} +- {samples_per_frame:.0f}"
            )
    subset = "single codebook, all are used"
    if info.num_codebooks > 1:
        try:
            out = probe.tokenizer.decode(
                probe.tokens.clone(), probe.token_lengths.clone(), codebooks=[0]
            )
        except (ValueError, NotImplementedError) as exc:
            subset = f"subset [0] refused: {type(exc).__name__}: {exc}"
        else:
            _, sub_lengths = _validate_decoded(out, batch)
            if not torch.equal(sub_lengths, lengths):
                raise _Fail(
                    f"decode(codebooks=[0]) lengths {sub_lengths.tolist()} differ from "
                    f"decode's {lengths.tolist()}"
                )
            subset = "subset [0] decodes"
    return f"wav {list(wav.shape)}, lengths {lengths.tolist()}; {subset}"


def check_embeddings(probe: _Probe) -> str:
    """``embeddings()`` is None or a finite float ``[K, C, D]`` with ``C`` the codebook size."""
    table = probe.tokenizer.embeddings()
    if table is None:
        raise _Skip("embeddings() returns None")
    sizes = probe.info.codebook_sizes
    if not isinstance(table, torch.Tensor) or not table.is_floating_point():
        raise _Fail(f"embeddings() must return a float tensor or None, got {_describe(table)}")
    if table.ndim != 3 or table.shape[0] != len(sizes):
        raise _Fail(f"embeddings must be [K={len(sizes)}, C, D], got {_describe(table)}")
    if any(table.shape[1] != size for size in sizes):
        raise _Fail(
            f"embeddings have {table.shape[1]} rows per codebook, codebook sizes are "
            f"{_sizes_text(sizes)}"
        )
    if not bool(torch.isfinite(table).all()):
        raise _Fail("embeddings hold non-finite values")
    return f"embeddings {list(table.shape)}"


def _changed(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Names of the tensors whose value no longer equals their reference copy."""
    names = []
    for name, (after, before) in pairs.items():
        same = (
            after.shape == before.shape
            and after.dtype == before.dtype
            and torch.equal(after.detach().cpu(), before)
        )
        if not same:
            names.append(name)
    return ", ".join(names)


def _sizes_text(sizes: Sequence[int]) -> str:
    """``8 x 32`` when every codebook has the same size, else the list."""
    if len(set(sizes)) == 1:
        return f"{len(sizes)} x {sizes[0]}"
    return str(list(sizes))


@dataclass(frozen=True)
class _Check:
    name: str
    run: Callable[[_Probe], str]
    requires: tuple[str, ...] = ()


#: Every check in running order, with the checks it builds on.
CHECKS: tuple[_Check, ...] = (
    _Check("metadata", check_metadata),
    _Check("encode-shape", check_encode_shape, ("metadata",)),
    _Check("token-range", check_token_range, ("encode-shape",)),
    _Check("frame-rate", check_frame_rate, ("encode-shape",)),
    _Check("determinism", check_determinism, ("encode-shape",)),
    _Check("padding-invariance", check_padding_invariance, ("encode-shape", "determinism")),
    _Check("no-mutation", check_no_mutation, ("encode-shape",)),
    _Check("bitrate", check_bitrate, ("encode-shape", "frame-rate")),
    _Check("decode", check_decode, ("encode-shape", "token-range", "frame-rate")),
    _Check("embeddings", check_embeddings, ("metadata",)),
)

#: Names of the checks, in running order.
CHECK_NAMES: tuple[str, ...] = tuple(check.name for check in CHECKS)


def check_tokenizer(
    tokenizer: Tokenizer,
    seed: int = 0,
    *,
    tolerance: float = 0.0,
    only: Sequence[str] | None = None,
) -> list[CheckResult]:
    """Run every conformance check on a tokenizer.

    Args:
        tokenizer: the tokenizer under test (already built and, if it needs it, fitted).
        seed: seed of the synthetic batch.
        tolerance: fraction of an item's valid frames allowed to differ between the padded
            batch and the item encoded alone (``padding-invariance``), for tokenizers whose
            batched kernels are not bit-exact; 0 demands identical tokens.

    Returns:
        One :class:`CheckResult` per entry of :data:`CHECKS`, in that order.
    """
    if not (isinstance(tolerance, int | float) and 0.0 <= tolerance <= 1.0):
        raise ValueError(f"check_tokenizer: tolerance must lie in [0, 1], got {tolerance!r}")
    if only is not None:
        unknown = sorted(set(only) - set(CHECK_NAMES))
        if unknown:
            raise ValueError(f"check_tokenizer: unknown checks {unknown}; known: {CHECK_NAMES}")
    probe = _Probe(tokenizer=tokenizer, seed=seed, tolerance=tolerance)
    results = []
    for check in CHECKS:
        if only is not None and check.name not in only:
            continue
        missing = [
            name
            for name in check.requires
            if name in probe.outcomes and probe.outcomes[name].status != "PASS"
        ]
        start = time.perf_counter()
        if missing:
            result = CheckResult(
                check.name, True, f"needs {', '.join(missing)} to pass", skipped=True
            )
        else:
            try:
                result = CheckResult(check.name, True, check.run(probe))
            except _Skip as exc:
                result = CheckResult(check.name, True, str(exc), skipped=True)
            except _Fail as exc:
                result = CheckResult(check.name, False, str(exc))
            except Exception as exc:  # a check that raises fails, and the others still run
                logger.debug("check %s raised", check.name, exc_info=True)
                result = CheckResult(check.name, False, f"raised {type(exc).__name__}: {exc}")
        logger.debug(
            "%s %s (%.2f s): %s",
            result.status,
            check.name,
            time.perf_counter() - start,
            result.detail,
        )
        probe.outcomes[check.name] = result
        results.append(result)
    return results


def format_results(results: Sequence[CheckResult]) -> list[str]:
    """One line per check: ``PASS metadata: 16000 Hz, ...`` / ``FAIL decode: ...``."""
    return [f"{result.status} {result.name}: {result.detail}" for result in results]


def failed_checks(results: Sequence[CheckResult]) -> list[str]:
    """Names of the checks that failed (skips are not failures)."""
    return [result.name for result in results if not result.passed]

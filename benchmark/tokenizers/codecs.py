"""Neural audio codec tokenizers: EnCodec 24 kHz, DAC 24 kHz and Mimi, through transformers.

``CodecTokenizer`` wraps one residual-VQ codec and keeps its first ``num_codebooks``
codebooks. Each codebook ``k`` is one token stream of ``C`` ids at the codec's frame rate
(EnCodec and DAC: 1024 ids at 75 Hz, 10 bits per codebook per frame; Mimi: 2048 ids at
12.5 Hz, 11 bits), so EnCodec with 2 / 4 / 8 / 16 / 32 codebooks is the codec at
1.5 / 3 / 6 / 12 / 24 kbps.

Bitrate variants. Residual quantisation is sequential: the first ``k`` codes of an encode with
``K > k`` codebooks are exactly the codes of an encode with ``k``. A card with
``num_codebooks < max_codebooks`` therefore reports an
:meth:`~CodecTokenizer.extraction_variant`: the harness encodes once with ``max_codebooks``,
caches that, and hands every variant its leading codebooks.

Rates. ``info.sample_rate`` is the codec's own rate (24 kHz): the harness loads audio at that
rate (resampling from the corpus rate), and :meth:`~CodecTokenizer.decode` returns audio at it;
:func:`benchmark.data.resampling.to_rate` brings decoded audio back to the corpus rate.

Padding invariance. None of the three models honours a padding mask in its encoder (EnCodec's
and Mimi's convolutions pad the right edge by reflection or replication and only the
EnCodec wrapper zeroes the padded samples; DAC's convolutions are non-causal; Mimi's encoder
ignores ``padding_mask``), so a padded item's last frames would see the padding. ``encode``
and ``decode`` therefore run each item on its own valid samples / frames (batch of one): the
tokens of an item are the same computation whatever batch it comes in. Items of a batch are
encoded one after the other; on a GPU the codec is small enough that this costs little.

Frames. An item of ``T`` samples gives ``ceil(T / hop)`` frames (``hop`` = samples per frame:
320 for EnCodec and DAC, 1920 for Mimi); DAC's encoder needs a multiple of ``hop``, so its
input is zero-padded to one, as DAC's own preprocessing does. Decoding ``n`` frames returns
``n * hop`` samples.

Embeddings. :meth:`~CodecTokenizer.embeddings` returns, per codebook, the vectors each id adds
to the latent that the codec's decoder reads (the decoder's input is the sum over codebooks):
EnCodec's codebooks as they are (``D`` = 128), DAC's low-dimensional codebooks through their
output projections (``D`` = 1024), Mimi's through the output projection of their residual
quantiser (``D`` = 512).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.api import BuildContext, Tokenizer, TokenizerInfo
from benchmark.errors import BenchmarkError, ContractError
from benchmark.tokenizers.codec_loading import check_family, load_codec, tiny_codec_dir

log = logging.getLogger(__name__)

#: Bump when a change here changes tokens without changing the card or the weights.
CODEC_VERSION = 1


class CodecError(BenchmarkError, ValueError):
    """A codec parameter or input that cannot work (codebook count, token id, subset...)."""


# --------------------------------------------------------------------------- family adapters


class _Family:
    """How one codec family encodes, decodes and exposes its codebooks (batch of one)."""

    def max_codebooks(self, model: Any) -> int:
        """Codebooks the loaded model has."""
        raise NotImplementedError

    def codebook_size(self, model: Any) -> int:
        """Ids per codebook ``C``."""
        return int(model.config.codebook_size)

    def hop(self, model: Any) -> int:
        """Samples per token frame."""
        raise NotImplementedError

    def check(self, model: Any) -> None:
        """Refuse configurations this wrapper does not handle (one line)."""

    def encode(self, model: Any, audio: torch.Tensor, k: int) -> torch.Tensor:
        """``audio [1, 1, T]`` -> codes ``[k, ceil(T / hop)]``."""
        raise NotImplementedError

    def decode(self, model: Any, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[k, n]`` of the leading ``k`` codebooks -> audio ``[T']``."""
        raise NotImplementedError

    def vectors(self, model: Any, k: int) -> torch.Tensor:
        """``[k, C, D]`` latent contribution of every id of the first ``k`` codebooks."""
        raise NotImplementedError


class _Encodec(_Family):
    def max_codebooks(self, model: Any) -> int:
        return len(model.quantizer.layers)

    def hop(self, model: Any) -> int:
        return int(math.prod(model.config.upsampling_ratios))

    def check(self, model: Any) -> None:
        if model.config.normalize or model.config.chunk_length_s is not None:
            raise CodecError(
                "encodec: only the non-chunked, non-normalising EnCodec (the 24 kHz model) is "
                "supported; these weights normalise or chunk their input (the 48 kHz model?)"
            )

    def encode(self, model: Any, audio: torch.Tensor, k: int) -> torch.Tensor:
        # the smallest bandwidth with at least k codebooks; RVQ prefixes make [:k] exact
        quantizer = model.quantizer
        bandwidth = next(
            b
            for b in sorted(model.config.target_bandwidths)
            if quantizer.get_num_quantizers_for_bandwidth(b) >= k
        )
        codes = model.encode(audio, bandwidth=bandwidth, return_dict=True).audio_codes
        return codes[0, 0, :k]  # [chunks=1, B=1, K, N]

    def decode(self, model: Any, codes: torch.Tensor) -> torch.Tensor:
        out = model.decode(codes[None, None], [None], return_dict=True).audio_values
        return out[0, 0]

    def vectors(self, model: Any, k: int) -> torch.Tensor:
        return torch.stack([layer.codebook.embed for layer in model.quantizer.layers[:k]])


class _Dac(_Family):
    def max_codebooks(self, model: Any) -> int:
        return len(model.quantizer.quantizers)

    def hop(self, model: Any) -> int:
        return int(math.prod(model.config.downsampling_ratios))

    def encode(self, model: Any, audio: torch.Tensor, k: int) -> torch.Tensor:
        hop = self.hop(model)
        padded = torch.nn.functional.pad(audio, (0, (-audio.shape[-1]) % hop))
        return model.encode(padded, n_quantizers=k, return_dict=True).audio_codes[0, :k]

    def decode(self, model: Any, codes: torch.Tensor) -> torch.Tensor:
        return model.decode(audio_codes=codes[None], return_dict=True).audio_values[0]

    def vectors(self, model: Any, k: int) -> torch.Tensor:
        out = []
        for quantizer in model.quantizer.quantizers[:k]:
            codebook = quantizer.codebook.weight  # [C, d]
            out.append(quantizer.out_proj(codebook.T[None])[0].T)  # [C, D]
        return torch.stack(out)


class _Mimi(_Family):
    def max_codebooks(self, model: Any) -> int:
        return int(model.config.num_quantizers)

    def hop(self, model: Any) -> int:
        return int(model.config.frame_size)

    def encode(self, model: Any, audio: torch.Tensor, k: int) -> torch.Tensor:
        return model.encode(audio, num_quantizers=k, return_dict=True).audio_codes[0]

    def decode(self, model: Any, codes: torch.Tensor) -> torch.Tensor:
        return model.decode(codes[None], return_dict=True).audio_values[0, 0]

    def vectors(self, model: Any, k: int) -> torch.Tensor:
        quantizer = model.quantizer
        semantic = quantizer.num_semantic_quantizers
        out = []
        for index in range(k):
            rvq = (
                quantizer.semantic_residual_vector_quantizer
                if index < semantic
                else quantizer.acoustic_residual_vector_quantizer
            )
            layer = rvq.layers[index if index < semantic else index - semantic]
            vectors = layer.codebook.embed  # [C, d]
            if rvq.output_proj is not None:
                vectors = rvq.output_proj(vectors.T[None])[0].T  # [C, D]
            out.append(vectors)
        return torch.stack(out)


_ADAPTERS: dict[str, _Family] = {"encodec": _Encodec(), "dac": _Dac(), "mimi": _Mimi()}


# --------------------------------------------------------------------------- the tokenizer


def _count(family: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CodecError(f"{family}: {name} must be a positive int, got {value!r}")


class CodecTokenizer(Tokenizer):
    """A residual-VQ neural codec (EnCodec, DAC, Mimi) keeping its first ``num_codebooks``.

    Args:
        family: ``encodec``, ``dac`` or ``mimi``.
        num_codebooks: leading codebooks kept ``K`` (the bitrate); None keeps
            ``max_codebooks``, or all of the codec's.
        max_codebooks: codebooks of the one extraction that every variant of this codec
            shares; None means ``num_codebooks`` (no sharing).
        tiny_model: use a tiny random codec of the same architecture (the ``mini`` preset)
            instead of the card's weights; it is created once under ``workdir/models``.
        name: registry name recorded in :attr:`info`.
        context: the harness's build context (weights, device, workdir).

    Raises:
        CodecError: a codebook count that is not a positive int, exceeds the codec's
            maximum, or exceeds ``max_codebooks``; EnCodec weights of the 48 kHz kind.
        WeightsUnavailableError: the weights cannot be had (see
            :func:`~benchmark.tokenizers.codec_loading.load_codec`).
    """

    def __init__(
        self,
        family: str,
        num_codebooks: int | None = None,
        max_codebooks: int | None = None,
        tiny_model: bool = False,
        name: str | None = None,
        context: BuildContext | None = None,
    ) -> None:
        check_family(family)
        if not isinstance(tiny_model, bool):
            raise CodecError(f"{family}: tiny_model must be true or false, got {tiny_model!r}")
        for label, value in (("num_codebooks", num_codebooks), ("max_codebooks", max_codebooks)):
            if value is not None:
                _count(family, label, value)
        if num_codebooks and max_codebooks and num_codebooks > max_codebooks:
            raise CodecError(
                f"{family}: num_codebooks {num_codebooks} exceeds max_codebooks "
                f"{max_codebooks}; set max_codebooks >= num_codebooks"
            )
        context = context or BuildContext()
        self.family = family
        self.tiny_model = tiny_model
        self.adapter = _ADAPTERS[family]
        self.device = torch.device(context.device)
        if tiny_model:
            folder = tiny_codec_dir(family, Path(context.workdir) / "models")
            weights: Mapping[str, Any] | None = {"path": str(folder)}
        else:
            weights = context.weights
        self.model, self.weights_info = load_codec(weights, family, self.device)
        self.adapter.check(self.model)
        limit = self.adapter.max_codebooks(self.model)
        max_codebooks = max_codebooks or num_codebooks or limit
        num_codebooks = num_codebooks or max_codebooks
        for label, value in (("num_codebooks", num_codebooks), ("max_codebooks", max_codebooks)):
            if value > limit:
                raise CodecError(
                    f"{family}: {label} {value} exceeds the codec's maximum of {limit} codebooks"
                )
        self.num_codebooks = num_codebooks
        self.max_codebooks = max_codebooks
        self.hop = self.adapter.hop(self.model)
        sample_rate = int(self.model.config.sampling_rate)
        self.info = TokenizerInfo(
            name=name or f"{family}-{num_codebooks}cb",
            sample_rate=sample_rate,
            frame_rate=sample_rate / self.hop,
            codebook_sizes=(self.adapter.codebook_size(self.model),) * num_codebooks,
            can_decode=True,
        )
        self._embeddings: torch.Tensor | None = None

    # --- harness hooks ----------------------------------------------------------------------

    def extraction_variant(self) -> tuple[Mapping[str, Any], int] | None:
        """``(params of the max_codebooks tokenizer, num_codebooks)``: every bitrate variant,
        the full one included, shares the extraction at ``max_codebooks`` (the runner leaves
        names out of that extraction's fingerprint)."""
        full = {
            "family": self.family,
            "num_codebooks": self.max_codebooks,
            "max_codebooks": self.max_codebooks,
            "tiny_model": self.tiny_model,
        }
        return full, self.num_codebooks

    def state_fingerprint(self) -> Mapping[str, Any]:
        """The loaded weights' identity and this module's version."""
        return {"codec_version": CODEC_VERSION, "weights": self.weights_info.fingerprint()}

    # --- encode / decode --------------------------------------------------------------------

    def frames_for(self, samples: int) -> int:
        """Token frames of ``samples`` audio samples: ``ceil(samples / hop)``."""
        return -(-int(samples) // self.hop)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode each item on its own valid samples.

        Args:
            wav: ``[B, T]`` float waveforms at ``info.sample_rate`` Hz, zero-padded.
            lengths: ``[B]`` int valid sample counts.

        Returns:
            ``tokens [B, N, K]`` int64 on the CPU (0 on padded frames) and
            ``token_lengths [B]`` int64 = ``ceil(lengths / hop)``.
        """
        if not torch.is_tensor(wav) or wav.ndim != 2 or not wav.is_floating_point():
            raise CodecError(f"{self.info.name}: encode expects a float tensor wav [B, T]")
        counts = _lengths(lengths, wav.shape[0], wav.shape[1], "samples", self.info.name)
        frames = [self.frames_for(n) for n in counts]
        tokens = torch.zeros(len(counts), max(frames, default=0), self.num_codebooks)
        tokens = tokens.to(torch.int64)
        with torch.inference_mode():
            for b, (n, n_frames) in enumerate(zip(counts, frames, strict=True)):
                if n == 0:
                    continue
                audio = wav[b, :n].to(self.device, torch.float32).reshape(1, 1, n)
                codes = self.adapter.encode(self.model, audio, self.num_codebooks)
                if tuple(codes.shape) != (self.num_codebooks, n_frames):
                    raise ContractError(
                        f"{self.info.name}: the {self.family} model gave codes "
                        f"{list(codes.shape)} for {n} samples, expected "
                        f"[{self.num_codebooks}, {n_frames}]"
                    )
                tokens[b, :n_frames] = codes.T.to("cpu", torch.int64)
        return tokens, torch.tensor(frames, dtype=torch.int64)

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode each item's valid frames with the leading codebooks.

        Args:
            tokens: ``[B, N, K]`` int ids.
            token_lengths: ``[B]`` int valid frame counts.
            codebooks: ``[0, 1, ..., k - 1]`` to decode with the first ``k`` codebooks only
                (residual codecs cannot skip a level); None uses all ``K``.

        Returns:
            ``wav [B, T]`` float32 on the CPU at ``info.sample_rate`` Hz, zero-padded, and
            ``lengths [B]`` int64 = ``token_lengths * hop`` samples.

        Raises:
            CodecError: a bad shape, an id outside its codebook on a valid frame, or a
                ``codebooks`` subset that is not a leading prefix.
        """
        name, k_all = self.info.name, self.num_codebooks
        kept = self._prefix(codebooks)
        if not torch.is_tensor(tokens) or tokens.ndim != 3 or tokens.shape[2] != k_all:
            shape = list(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__
            raise CodecError(f"{name}: decode expects tokens [B, N, K={k_all}], got {shape}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise CodecError(f"{name}: tokens must be integer ids, got {tokens.dtype}")
        counts = _lengths(token_lengths, tokens.shape[0], tokens.shape[1], "frames", name)
        size = self.info.codebook_sizes[0]
        for b, n in enumerate(counts):
            valid = tokens[b, :n]
            bad = (valid < 0) | (valid >= size)
            if bool(bad.any()):
                frame, k = (int(i) for i in bad.nonzero()[0])
                raise CodecError(
                    f"{name}: token id {int(valid[frame, k])} in codebook {k} (item {b}, frame "
                    f"{frame}) is outside [0, {size})"
                )
        samples = [n * self.hop for n in counts]
        wav = torch.zeros(len(counts), max(samples, default=0), dtype=torch.float32)
        with torch.inference_mode():
            for b, n in enumerate(counts):
                if n == 0:
                    continue
                codes = tokens[b, :n, :kept].T.to(self.device, torch.int64).contiguous()
                audio = self.adapter.decode(self.model, codes).to("cpu", torch.float32)
                m = min(audio.shape[-1], samples[b])
                wav[b, :m] = audio[:m]
        return wav, torch.tensor(samples, dtype=torch.int64)

    def _prefix(self, codebooks: Sequence[int] | None) -> int:
        """How many leading codebooks a ``codebooks`` subset keeps; CodecError otherwise."""
        k_all = self.num_codebooks
        if codebooks is None:
            return k_all
        try:
            chosen = [int(c) for c in codebooks if not isinstance(c, bool) and int(c) == c]
            valid = len(chosen) == len(codebooks)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise CodecError(
                f"{self.info.name}: codebooks must be a sequence of ints, got {codebooks!r}"
            )
        if chosen != list(range(len(chosen))) or not 0 < len(chosen) <= k_all:
            raise CodecError(
                f"{self.info.name}: cannot decode codebooks {chosen}: a residual codec decodes "
                f"only a leading prefix [0, ..., k-1] with 1 <= k <= {k_all}"
            )
        return len(chosen)

    def embeddings(self) -> torch.Tensor:
        """``[K, C, D]`` float32 (CPU): the latent vector each id of each codebook adds."""
        if self._embeddings is None:
            with torch.inference_mode():
                table = self.adapter.vectors(self.model, self.num_codebooks)
            self._embeddings = table.detach().to("cpu", torch.float32).clone()
        return self._embeddings


def _lengths(lengths: object, batch: int, limit: int, unit: str, name: str) -> list[int]:
    """Validate ``[B]`` integer counts within ``[0, limit]``; return them as ints."""
    if (
        not torch.is_tensor(lengths)
        or lengths.shape != (batch,)
        or lengths.is_floating_point()
        or lengths.is_complex()
        or lengths.dtype == torch.bool
    ):
        shape = list(lengths.shape) if torch.is_tensor(lengths) else type(lengths).__name__
        raise CodecError(f"{name}: lengths must be an integer tensor [B={batch}], got {shape}")
    counts = [int(n) for n in lengths.tolist()]
    bad = [n for n in counts if not 0 <= n <= limit]
    if bad:
        raise CodecError(f"{name}: length {bad[0]} {unit} outside [0, {limit}]")
    return counts

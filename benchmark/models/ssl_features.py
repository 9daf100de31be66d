"""Hidden states of chosen transformer layers of an SSL encoder, in one truncated forward pass.

**Layer numbering.** Layer ``l`` (``1 <= l <= num_hidden_layers``) is the output of the
``l``-th transformer block, i.e. ``hidden_states[l]`` of a full forward pass with
``output_hidden_states=True`` in transformers 5 (index 0 is the input of the first block).
With pre-norm ("stable layer norm") encoders, transformers 4 returned the final layer-normed
output as the last hidden state; our layer ``num_hidden_layers`` is the raw block output.

**Truncation.** The forward runs only up to the highest requested layer: the encoder's
``layers`` ModuleList is swapped for a slice of it during the call (and restored after), and
forward hooks on the requested blocks capture their outputs. Each captured tensor is the
exact tensor the full model computes for that block (:func:`full_hidden_states` is the
reference the tests compare against).

**Input handling, in order, per item** (so an item's result does not depend on the batch):

1. waveform normalisation when the model expects it (``do_normalize``):
   ``F.layer_norm`` over the item's valid samples (eps 1e-5). For a single, unpadded
   utterance this is what speechbrain's wrappers apply, and tokens equal those of
   speechbrain's ``DiscreteSSL.encode`` (``tests/test_interop.py``). In a padded batch they
   are not DASB's: speechbrain normalises each padded row as a whole (padding zeros in the
   mean and variance), so its batched tokens differ from its own one-by-one tokens (5.7 %
   of 7120 tokens in 10 batches of 3.0/2.2/1.4/0.6 s, tiny WavLM, layers 3 and 7, K = 16),
   while ours do not depend on the batch. We keep ours: a token should not depend on its
   neighbours in a batch;
2. **short clips**: an item shorter than the conv front end's receptive field (400 samples =
   25 ms at 16 kHz for these models) is zero-padded up to it and yields exactly one frame;
   an empty item is an error;
3. zero-padding to the batch's longest item, with an attention mask over valid samples (none
   when no item is padded: the same result, cheaper), for front ends with per-frame layer
   norm (``feat_extract_norm="layer"``: WavLM-large, HuBERT-large, wav2vec2-large-lv60).
   Front ends with group norm (``"group"``: wav2vec2-base style) normalise each channel over
   time, padded zeros included, and were trained without attention masks: those models are
   run one item at a time, unpadded, without a mask.

**Padding invariance** is exact up to float rounding: batched kernels (convolutions,
attention over padded keys) sum in another order than on a lone item, so features differ by
about 1e-6 relative. Tokens only differ where a frame is that close to a tie between two
centroids (none in 17k frames of the mini ``asr`` valid split; see
``scripts/bench_ssl_encode.py --mini-corpus``).

Valid frames per item: ``model._get_feat_extract_output_lengths(max(L, receptive_field))``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.api import BuildContext
from benchmark.errors import BenchmarkError
from benchmark.models.ssl_loading import SSLModelInfo, load_ssl_model

DTYPES = ("fp32", "bf16")


@contextlib.contextmanager
def _truncated(model: nn.Module, depth: int) -> Iterator[None]:
    """Temporarily keep only the first ``depth`` transformer blocks of ``model.encoder``."""
    encoder = model.encoder
    full = encoder.layers
    encoder.layers = nn.ModuleList(list(full)[:depth])
    try:
        yield
    finally:
        encoder.layers = full


def _block_output(output: Any) -> torch.Tensor:
    """The hidden states a transformer block returns (WavLM blocks return a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def block_outputs(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[int],
    mask: torch.Tensor | None = None,
    bf16: bool = False,
) -> list[torch.Tensor]:
    """Outputs of transformer blocks ``layers`` in one forward truncated after the deepest.

    Args:
        model: a transformers ``WavLMModel`` / ``HubertModel`` / ``Wav2Vec2Model`` (its mode
            is the caller's: in training mode with ``mask_time_prob > 0`` transformers masks).
        x: ``[B, T]`` prepared input (see :meth:`SSLLayerExtractor.prepare`).
        layers: 1-based blocks (layer ``l`` = ``hidden_states[l]``, see the module docstring).
        mask: ``[B, T]`` attention mask or None.
        bf16: autocast the forward to bfloat16.

    Returns:
        ``[B, N, D]`` float32 per requested layer, in ``layers`` order (inference tensors).
    """
    captured: dict[int, torch.Tensor] = {}
    blocks = model.encoder.layers
    handles = []
    for layer in set(layers):

        def hook(_module: nn.Module, _args: Any, output: Any, layer: int = layer) -> None:
            captured[layer] = _block_output(output)

        handles.append(blocks[layer - 1].register_forward_hook(hook))
    try:
        with (
            torch.inference_mode(),
            _truncated(model, max(layers)),
            torch.autocast(x.device.type, torch.bfloat16, enabled=bf16),
            warnings.catch_warnings(),
        ):
            # WavLM's attention mixes a bool padding mask with a float position bias
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding")
            model(x, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[layer].float() for layer in layers]


class SSLLayerExtractor:
    """Runs an SSL encoder up to its deepest requested layer and returns those layers.

    Args:
        model: a transformers ``WavLMModel`` / ``HubertModel`` / ``Wav2Vec2Model`` in eval mode.
        info: what :func:`~benchmark.models.ssl_loading.load_ssl_model` returned with it.
        layers: 1-based transformer layers to return, each in ``1..num_hidden_layers``.
        dtype: ``fp32`` (default) or ``bf16`` (autocast of the forward; features are returned
            as float32).
        normalize: normalise each waveform (None: the model's ``do_normalize``).
        origin: for the mini preset's tiny encoders, which one was loaded
            (:class:`benchmark.models.ssl_mini.TinyOrigin`); None for card weights.

    Raises:
        ValueError: a layer outside the model's range, or an unknown dtype (one line each).
    """

    def __init__(
        self,
        model: nn.Module,
        info: SSLModelInfo,
        layers: Sequence[int],
        dtype: str = "fp32",
        normalize: bool | None = None,
        origin: Any = None,
    ) -> None:
        depth = info.num_hidden_layers
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= depth:
                raise ValueError(
                    f"layer {layer!r} is outside {info.encoder_id}'s range 1..{depth} "
                    f"({depth} transformer layers); pick layers in that range"
                )
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; choose one of {DTYPES}")
        self.model = model
        self.info = info
        self.layers = tuple(layers)
        self.depth = max(self.layers)
        self.dtype = dtype
        self.normalize = info.do_normalize if normalize is None else bool(normalize)
        self.per_item = info.feat_extract_norm != "layer"
        self.origin = origin

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames ``[B]`` (int64) of items of ``lengths`` samples (short clips: 1 frame)."""
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        padded = lengths.clamp(min=self.info.receptive_field)
        return self.model._get_feat_extract_output_lengths(padded).to(torch.int64)

    def prepare(
        self, wav: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, short-clip-padded copy of a batch, on the model's device.

        Args:
            wav: ``[B, T]`` float waveforms at 16 kHz, zero-padded (not modified).
            lengths: ``[B]`` valid sample counts, each in ``1..T``.

        Returns:
            ``x [B, T']`` float32 with ``T' = max(T_valid, receptive_field)`` and the
            effective lengths ``[B]`` (int64, CPU) that the attention mask covers.
        """
        if not isinstance(wav, torch.Tensor) or wav.ndim != 2 or not wav.is_floating_point():
            raise ValueError(f"wav must be a float tensor [B, T], got {_describe(wav)}")
        lengths = torch.as_tensor(lengths)
        if lengths.ndim != 1 or lengths.shape[0] != wav.shape[0] or lengths.is_floating_point():
            raise ValueError(
                f"lengths must be an integer tensor [B={wav.shape[0]}], got {_describe(lengths)}"
            )
        lengths = lengths.to("cpu", torch.int64)
        bad = [b for b, n in enumerate(lengths.tolist()) if not 1 <= n <= wav.shape[1]]
        if bad:
            b = bad[0]
            raise ValueError(
                f"item {b} has length {int(lengths[b])}, outside 1..T={wav.shape[1]} "
                "(empty clips cannot be encoded)"
            )
        effective = lengths.clamp(min=self.info.receptive_field)
        x = torch.zeros(wav.shape[0], int(effective.max()), device=self.device)
        for b, n in enumerate(lengths.tolist()):
            segment = wav[b, :n].to(self.device, torch.float32)
            if self.normalize:
                segment = F.layer_norm(segment, segment.shape)
            x[b, :n] = segment
        return x, effective

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        """``[B, N, D]`` float32 outputs of the requested blocks, in ``self.layers`` order."""
        return block_outputs(self.model, x, self.layers, mask, bf16=self.dtype == "bf16")

    def __call__(
        self, wav: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the requested layers.

        Args:
            wav: ``[B, T]`` float waveforms at 16 kHz, zero-padded (not modified).
            lengths: ``[B]`` int valid sample counts.

        Returns:
            ``features [L, B, N, D]`` float32 on the model's device (frames past an item's
            valid count hold padding values) and ``frame_lengths [B]`` int64 (CPU).
        """
        x, effective = self.prepare(wav, lengths)
        frames = self.num_frames(effective)
        if not self.per_item:
            mask = None  # no padding: the unmasked forward is the same and cheaper (WavLM)
            if bool((effective < x.shape[1]).any()):
                positions = torch.arange(x.shape[1], device=x.device)
                mask = (positions.unsqueeze(0) < effective.to(x.device).unsqueeze(1)).long()
            return torch.stack(self._forward(x, mask)), frames
        outputs = []
        for b, n in enumerate(effective.tolist()):
            outputs.append(torch.stack(self._forward(x[b : b + 1, :n], None)))
        n_max = int(frames.max())
        features = torch.zeros(
            len(self.layers), x.shape[0], n_max, outputs[0].shape[-1], device=x.device
        )
        for b, out in enumerate(outputs):
            features[:, b, : out.shape[2]] = out[:, 0]
        return features, frames


def full_hidden_states(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, ...]:
    """Every hidden state of an untruncated forward (the reference for the truncated one).

    Args:
        model: the encoder.
        x: ``[B, T]`` prepared input (see :meth:`SSLLayerExtractor.prepare`).
        mask: ``[B, T]`` attention mask or None.

    Returns:
        ``num_hidden_layers + 1`` tensors ``[B, N, D]``; index ``l`` is layer ``l``.
    """
    with torch.inference_mode():
        return tuple(model(x, attention_mask=mask, output_hidden_states=True).hidden_states)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    return type(value).__name__


class SSLConfigError(BenchmarkError, ValueError):
    """A discrete or continuous SSL card parameter that cannot be used (one line)."""


def open_ssl_extractor(
    family: str,
    layers: Sequence[int],
    tiny_model: bool | str,
    context: BuildContext,
    dtype: str = "fp32",
    normalize_wav: bool | None = None,
    pretrain: Mapping[str, Any] | None = None,
    *,
    pretrained_dir: Path | None = None,
) -> SSLLayerExtractor:
    """Load a card's SSL encoder (its weights, or a mini tiny model) for ``layers``.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        layers: 1-based transformer layers to extract.
        tiny_model: false for the card's weights; ``random`` (or true) for the tiny random
            encoder (built under ``context.workdir / "models"``), ``pretrained`` for the tiny
            encoder the harness pretrained into ``pretrained_dir``
            (:mod:`benchmark.models.ssl_mini`); both load through the same path route as
            real weights.
        context: device, workdir and the card's weights.
        dtype: ``fp32`` or ``bf16``.
        normalize_wav: None follows the model's preprocessor config.
        pretrain: overrides of the pretraining settings; only checked here (they are the
            pretrain step's business, see :class:`~benchmark.models.ssl_mini.TinyEncoder`).
        pretrained_dir: the pretrain step's folder (``tiny_model: pretrained`` only).

    Raises:
        SSLConfigError: conflicting parameters, CUDA asked for but absent, bad layers/dtype,
            ``tiny_model: pretrained`` without its folder.
        WeightsUnavailableError: weights that cannot be loaded.
    """
    from benchmark.models.ssl_loading import tiny_ssl_model_dir
    from benchmark.models.ssl_mini import RANDOM_LABEL, TinyModelError, TinyOrigin, tiny_model_kind

    device = str(context.device or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SSLConfigError(f"device {device!r} requested but CUDA is not available")
    try:
        kind = tiny_model_kind(tiny_model)
    except TinyModelError as exc:
        raise SSLConfigError(str(exc)) from None
    if kind is not None and context.weights:
        raise SSLConfigError(
            f"tiny_model: {tiny_model} and card weights are both set; drop one (the mini "
            "preset sets weights: null)"
        )
    if pretrain and kind != "pretrained":
        raise SSLConfigError("pretrain settings need tiny_model: pretrained")
    origin = None
    if kind == "pretrained":
        if pretrained_dir is None:
            raise SSLConfigError(
                "tiny_model: pretrained needs the folder of its pretrain step (the harness "
                "plans it; see benchmark.models.ssl_mini)"
            )
        weights: dict[str, Any] | None = {"path": str(pretrained_dir)}
    elif kind == "random":
        weights = {"path": str(tiny_ssl_model_dir(family, Path(context.workdir) / "models"))}
        origin = TinyOrigin("random", RANDOM_LABEL)
    else:
        weights = dict(context.weights) if context.weights else None
    model, info = load_ssl_model(weights, family, device)
    try:
        return SSLLayerExtractor(model, info, layers, dtype, normalize_wav, origin)
    except ValueError as exc:
        raise SSLConfigError(str(exc)) from None

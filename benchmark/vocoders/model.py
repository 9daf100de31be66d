"""The scalable vocoder: a unit HiFi-GAN that decodes any subset of a tokenizer's codebooks.

Tokens ``[B, N, K]`` (one codebook per quantised SSL layer) become audio in three steps:

1. **Embedding.** Each codebook ``k`` has its own table of ``C_k + 1`` rows
   (:class:`~benchmark.models.embeddings.MultiCodebookEmbedding`); row ``C_k`` is the
   *absent* id, which marks a codebook the vocoder must not use at that frame.
2. **Pooling over layers.** An MLP scores every present codebook's embedding, a softmax over
   the present codebooks of the frame turns scores into weights, and the frame's feature is
   the weighted sum (the attention pooling of speechbrain's ``UnitHifiganGenerator``, with
   absent codebooks masked out of the softmax, so decoding a subset means pooling over
   exactly that subset).
3. **Upsampling.** speechbrain's :class:`~speechbrain.lobes.models.HifiGAN.HifiganGenerator`
   (transposed convolutions and multi-receptive-field residual blocks) turns the pooled
   ``[B, D, N]`` frames into ``[B, 1, N * hop]`` samples, ``hop = prod(upsample_factors) =
   sample_rate / frame_rate`` (320 for 16 kHz audio and 50 Hz tokens).

speechbrain's own ``UnitHifiganGenerator`` pools with a plain softmax over all codebooks
(absent ones included, as its shared id 0), so it cannot ignore absent layers; its released
checkpoints are loaded by :mod:`benchmark.vocoders.speechbrain_vocoder` instead.

A vocoder knows the codebooks it was trained on (``trained_layers``: all of them for the
scalable vocoder, one for a single-layer baseline) and whether it was trained with layer
dropout; :meth:`ScalableVocoder.decode` refuses subsets it never saw. Checkpoints record the
tokenizer fingerprint and codebook sizes, and :func:`load_vocoder` refuses a checkpoint
trained for another tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.decode_validation import check_codebook_subset, check_decode_inputs
from benchmark.errors import BenchmarkError
from benchmark.models.embeddings import MultiCodebookEmbedding
from benchmark.pipeline.store import atomic_path
from benchmark.vocoders.hifigan_decode import decode_padding_exact, min_frames

CHECKPOINT_FORMAT = "benchmark-scalable-vocoder"
CHECKPOINT_VERSION = 1


class VocoderError(BenchmarkError, ValueError):
    """Bad vocoder input or configuration (a ``ValueError`` too); the message is one line."""


class VocoderMismatchError(VocoderError):
    """A vocoder checkpoint trained for another tokenizer (fingerprint or codebooks differ)."""


@dataclass(frozen=True)
class VocoderConfig:
    """Architecture of a scalable vocoder and the codebooks it decodes.

    Attributes:
        codebook_sizes: ``C_k`` of every codebook of the tokenizer (all ``K``, even those the
            vocoder does not use).
        trained_layers: indices of the codebooks the vocoder was trained on (all for the
            scalable vocoder, one for a single-layer vocoder).
        layer_dropout: whether training blanked random codebooks, so that any non-empty subset
            of ``trained_layers`` decodes; without it only ``trained_layers`` itself does.
        sample_rate: output rate in Hz.
        frame_rate: token rate in Hz; ``sample_rate / frame_rate`` must equal the product of
            ``upsample_factors``.
        embedding_dim: size ``D`` of the per-codebook embeddings and the pooled frame.
        attn_dim: hidden size of the attention-pooling MLP.
        upsample_initial_channel: channels of the first upsampling layer (halved at each).
        upsample_factors: stride of each transposed convolution.
        upsample_kernel_sizes: kernel of each transposed convolution; ``kernel - factor`` must
            be even so that each layer upsamples by exactly its factor.
        resblock_type: speechbrain's residual block kind, ``"1"`` or ``"2"``.
        resblock_kernel_sizes: kernel of each residual block of a stage.
        resblock_dilation_sizes: dilations of each residual block of a stage.
    """

    codebook_sizes: tuple[int, ...]
    trained_layers: tuple[int, ...]
    layer_dropout: bool = True
    sample_rate: int = 16000
    frame_rate: float = 50.0
    embedding_dim: int = 128
    attn_dim: int = 128
    upsample_initial_channel: int = 512
    upsample_factors: tuple[int, ...] = (5, 4, 4, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (11, 8, 8, 4, 4)
    resblock_type: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = field(
        default=((1, 3, 5), (1, 3, 5), (1, 3, 5))
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "codebook_sizes", tuple(int(c) for c in self.codebook_sizes))
        set_(self, "trained_layers", tuple(int(k) for k in self.trained_layers))
        set_(self, "upsample_factors", tuple(int(u) for u in self.upsample_factors))
        set_(self, "upsample_kernel_sizes", tuple(int(k) for k in self.upsample_kernel_sizes))
        set_(self, "resblock_kernel_sizes", tuple(int(k) for k in self.resblock_kernel_sizes))
        set_(
            self,
            "resblock_dilation_sizes",
            tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes),
        )
        sizes, layers = self.codebook_sizes, self.trained_layers
        if not sizes or any(c < 2 for c in sizes):
            raise VocoderError(f"vocoder: codebook_sizes must be ints >= 2, got {list(sizes)}")
        if (
            not layers
            or len(set(layers)) != len(layers)
            or any(not 0 <= k < len(sizes) for k in layers)
        ):
            raise VocoderError(
                f"vocoder: trained_layers must be distinct codebook indices in "
                f"[0, {len(sizes)}), at least one, got {list(layers)}"
            )
        set_(self, "trained_layers", tuple(sorted(layers)))
        if len(self.upsample_factors) != len(self.upsample_kernel_sizes):
            raise VocoderError(
                f"vocoder: {len(self.upsample_factors)} upsample_factors but "
                f"{len(self.upsample_kernel_sizes)} upsample_kernel_sizes"
            )
        for factor, kernel in zip(self.upsample_factors, self.upsample_kernel_sizes, strict=True):
            if factor < 1 or kernel < factor or (kernel - factor) % 2:
                raise VocoderError(
                    f"vocoder: upsample kernel {kernel} with factor {factor} does not upsample "
                    "exactly; use kernel >= factor with an even difference"
                )
        hop = self.sample_rate / self.frame_rate
        if abs(hop - self.hop_length) > 1e-6:
            raise VocoderError(
                f"vocoder: upsample_factors {list(self.upsample_factors)} give a hop of "
                f"{self.hop_length} samples, but {self.sample_rate} Hz audio at "
                f"{self.frame_rate} Hz frames needs {hop:g}"
            )
        if self.resblock_type not in ("1", "2"):
            raise VocoderError(
                f"vocoder: resblock_type must be '1' or '2', got {self.resblock_type!r}"
            )
        if self.upsample_initial_channel >> len(self.upsample_factors) < 1:
            raise VocoderError(
                f"vocoder: upsample_initial_channel {self.upsample_initial_channel} halves to "
                f"zero channels over {len(self.upsample_factors)} upsampling layers"
            )

    @property
    def num_codebooks(self) -> int:
        """``K``."""
        return len(self.codebook_sizes)

    @property
    def hop_length(self) -> int:
        """Samples per token frame: the product of the upsampling factors."""
        return math.prod(self.upsample_factors)

    @property
    def kind(self) -> str:
        """``scalable`` (all codebooks with dropout), ``layer i`` or ``layers i,j``."""
        if self.layer_dropout and len(self.trained_layers) == self.num_codebooks:
            return "scalable"
        names = ",".join(str(k) for k in self.trained_layers)
        return f"layer {names}" if len(self.trained_layers) == 1 else f"layers {names}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (lists for tuples)."""
        out = asdict(self)
        return {k: _listify(v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VocoderConfig:
        """Inverse of :meth:`to_dict`."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise VocoderError(f"vocoder config has unknown keys {sorted(unknown)}")
        return cls(**dict(data))


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    return value


class LayerAttentionPooling(nn.Module):
    """Attention pooling over codebooks per frame, ignoring absent codebooks.

    The scoring MLP has the shape of speechbrain's ``UnitHifiganGenerator.attn_pooling``
    (``Linear(D, A) -> ReLU -> Linear(A, 1, bias=False)``); the softmax runs over the present
    codebooks only. A frame with no present codebook pools to zeros.

    Args:
        dim: embedding size ``D``.
        attn_dim: hidden size ``A`` of the scoring MLP.
    """

    def __init__(self, dim: int, attn_dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, attn_dim), nn.ReLU(), nn.Linear(attn_dim, 1, bias=False)
        )

    def forward(
        self, embeddings: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool ``[B, N, K, D]`` embeddings over ``K``.

        Args:
            embeddings: ``[B, N, K, D]`` float.
            present: ``[B, N, K]`` bool, False where a codebook is absent.

        Returns:
            ``pooled [B, N, D]`` and the weights ``[B, N, K]`` (zero on absent codebooks, each
            frame's weights sum to 1 unless every codebook is absent).
        """
        scores = self.score(embeddings).squeeze(-1)
        scores = scores.masked_fill(~present, float("-inf"))
        any_present = present.any(dim=-1, keepdim=True)
        scores = torch.where(any_present, scores, torch.zeros_like(scores))
        weights = torch.softmax(scores, dim=-1) * present.to(scores.dtype)
        return (weights.unsqueeze(-1) * embeddings).sum(dim=-2), weights


class ScalableVocoder(nn.Module):
    """Tokens of any subset of codebooks -> 16 kHz audio (see the module docstring).

    Args:
        config: architecture and the codebooks it decodes.
    """

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        from speechbrain.lobes.models.HifiGAN import HifiganGenerator

        self.config = config
        self.embedding = MultiCodebookEmbedding(config.codebook_sizes, config.embedding_dim)
        self.pooling = LayerAttentionPooling(config.embedding_dim, config.attn_dim)
        self.generator = HifiganGenerator(
            in_channels=config.embedding_dim,
            out_channels=1,
            resblock_type=config.resblock_type,
            resblock_dilation_sizes=[list(d) for d in config.resblock_dilation_sizes],
            resblock_kernel_sizes=list(config.resblock_kernel_sizes),
            upsample_kernel_sizes=list(config.upsample_kernel_sizes),
            upsample_initial_channel=config.upsample_initial_channel,
            upsample_factors=list(config.upsample_factors),
        )
        self.register_buffer(
            "absent_ids", torch.tensor(config.codebook_sizes, dtype=torch.int64), persistent=False
        )
        self._min_frames: int | None = None

    @property
    def hop_length(self) -> int:
        """Samples per token frame."""
        return self.config.hop_length

    @property
    def trained_layers(self) -> tuple[int, ...]:
        """Codebook indices the vocoder was trained on."""
        return self.config.trained_layers

    @property
    def min_frames(self) -> int:
        """Fewest frames the generator takes (its reflection padding); shorter items are
        extended by :meth:`decode` (see :func:`~benchmark.vocoders.hifigan_decode.min_frames`)."""
        if self._min_frames is None:
            self._min_frames = min_frames(self.generator)
        return self._min_frames

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Generate audio from ids that may hold the absent id ``C_k``.

        Args:
            ids: ``[B, N, K]`` int64 with ``0 <= ids[..., k] <= C_k`` (``C_k`` = absent).

        Returns:
            ``[B, 1, N * hop]`` float waveform in ``[-1, 1]``.
        """
        embeddings = self.embedding(ids, absent_ok=True)  # [B, N, K, D]
        pooled, _ = self.pooling(embeddings, ids != self.absent_ids)
        return self.generator(pooled.transpose(1, 2))

    def layer_weights(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooling weights ``[B, N, K]`` the vocoder gives each codebook per frame."""
        embeddings = self.embedding(ids, absent_ok=True)
        return self.pooling(embeddings, ids != self.absent_ids)[1]

    # ------------------------------------------------------------------ decode

    def check_codebooks(self, codebooks: Sequence[int] | None) -> tuple[int, ...]:
        """The codebook subset to decode; raises :class:`VocoderError` if it cannot.

        None means every codebook the vocoder was trained on. A vocoder trained with layer
        dropout decodes any non-empty subset of ``trained_layers``; one trained without it
        decodes ``trained_layers`` only.
        """
        trained = self.config.trained_layers
        if codebooks is None:
            return trained
        k = self.config.num_codebooks
        selected = check_codebook_subset("vocoder", codebooks, k, error=VocoderError)
        untrained = [c for c in selected if c not in trained]
        if untrained:
            raise VocoderError(
                f"vocoder ({self.config.kind}) was trained on codebooks {list(trained)} and "
                f"cannot decode codebook {untrained[0]} (requested {sorted(selected)})"
            )
        if not self.config.layer_dropout and sorted(selected) != list(trained):
            raise VocoderError(
                f"vocoder ({self.config.kind}) was trained without layer dropout on codebooks "
                f"{list(trained)} and decodes only that set, not {sorted(selected)}"
            )
        return tuple(sorted(selected))

    def prepare_ids(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Validate decode inputs and return the model's ids (unselected/padded -> absent).

        Returns:
            ``[B, N, K]`` int64 on the vocoder's device (a new tensor; inputs are untouched).
        """
        k, sizes = self.config.num_codebooks, self.config.codebook_sizes
        selected = check_decode_inputs(
            "vocoder",
            tokens,
            token_lengths,
            sizes,
            codebooks,
            error=VocoderError,
            select=self.check_codebooks,
            decoded_only=True,
        )
        device = self.absent_ids.device
        ids = tokens.detach().to(device=device, dtype=torch.int64)
        lengths = token_lengths.detach().to(device, torch.int64)
        valid = torch.arange(ids.shape[1], device=device).unsqueeze(0) < lengths.unsqueeze(1)
        keep = torch.zeros(k, dtype=torch.bool, device=device)
        keep[list(selected)] = True
        use = valid.unsqueeze(-1) & keep
        return torch.where(use, ids, self.absent_ids)

    @torch.no_grad()
    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode tokens with a subset of codebooks (the Tokenizer ``decode`` contract).

        Args:
            tokens: ``[B, N, K]`` integer ids, ``0 <= id < C_k`` on valid frames of the
                selected codebooks (other codebooks are ignored).
            token_lengths: ``[B]`` valid frame counts.
            codebooks: codebook indices to decode with; None uses every trained codebook.

        Padding-exact: each item decodes exactly as it would alone (one generator call per
        distinct length, see :mod:`benchmark.vocoders.hifigan_decode`), and an item shorter than
        :attr:`min_frames` frames is extended by repeating its last frame, decoded, and cut
        back to its own length.

        Returns:
            ``wav [B, max(token_lengths) * hop]`` float32 at ``sample_rate`` Hz on the
            vocoder's device, zero after each item's length, and ``lengths [B] =
            token_lengths * hop`` int64 samples.

        Raises:
            VocoderError: bad shapes or dtypes, an id out of range (names the codebook and the
                value), or a subset the vocoder was not trained for (names it).
        """
        ids = self.prepare_ids(tokens, token_lengths, codebooks)
        frames = token_lengths.detach().to(ids.device, torch.int64)
        was_training = self.training
        self.eval()
        try:
            wav = decode_padding_exact(self, ids, frames, self.hop_length, self.min_frames)
        finally:
            self.train(was_training)
        return wav, frames * self.hop_length


# ---------------------------------------------------------------------- checkpoints


def save_vocoder(
    path: Path,
    vocoder: ScalableVocoder,
    tokenizer_name: str,
    tokenizer_fingerprint: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a vocoder checkpoint atomically (temp file + rename).

    Args:
        path: destination file (``.pt``).
        vocoder: the model (its weights are copied to CPU).
        tokenizer_name: registry name of the tokenizer whose tokens it decodes.
        tokenizer_fingerprint: fingerprint of that tokenizer's tokens (the harness's
            ``PreparedTokenizer.fingerprint``); :func:`load_vocoder` checks it.
        extra: JSON-like facts to keep (training steps, validation figures).
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": vocoder.config.to_dict(),
        "tokenizer": {
            "name": tokenizer_name,
            "fingerprint": tokenizer_fingerprint,
            "codebook_sizes": list(vocoder.config.codebook_sizes),
        },
        "state_dict": {k: v.detach().cpu() for k, v in vocoder.state_dict().items()},
        "extra": dict(extra or {}),
    }
    atomic_torch_save(payload, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then rename into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_vocoder_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint's envelope (not the weights' fit)."""
    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"vocoder checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign pickle
        reason = " ".join(str(exc).split())[:200]
        raise VocoderError(f"vocoder checkpoint {path} cannot be read ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise VocoderError(
            f"{path} is not a scalable-vocoder checkpoint (for speechbrain's released unit "
            "HiFi-GAN use benchmark.vocoders.speechbrain_vocoder.load_speechbrain_unit_hifigan)"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise VocoderError(
            f"vocoder checkpoint {path} has version {payload.get('version')!r}; this code "
            f"reads version {CHECKPOINT_VERSION}"
        )
    return payload


def load_vocoder(
    path: Path,
    expect_fingerprint: str | None = None,
    expect_codebook_sizes: Sequence[int] | None = None,
    device: str = "cpu",
) -> ScalableVocoder:
    """Load a vocoder saved by :func:`save_vocoder`, checking it fits the tokenizer.

    Args:
        path: the checkpoint file.
        expect_fingerprint: the fingerprint of the tokens to decode; None skips the check.
        expect_codebook_sizes: the tokenizer's ``C_k``; None skips the check.
        device: where the model goes.

    Returns:
        The vocoder in eval mode.

    Raises:
        VocoderMismatchError: trained for another tokenizer (names both).
        VocoderError: missing, unreadable or foreign file.
    """
    payload = read_vocoder_checkpoint(path)
    meta = payload["tokenizer"]
    if expect_fingerprint is not None and meta["fingerprint"] != expect_fingerprint:
        raise VocoderMismatchError(
            f"vocoder {path} was trained for tokenizer {meta['name']!r} (fingerprint "
            f"{meta['fingerprint'][:12]}), not for the tokenizer with fingerprint "
            f"{expect_fingerprint[:12]}; train one for it with `train-vocoder`"
        )
    if expect_codebook_sizes is not None and list(expect_codebook_sizes) != list(
        meta["codebook_sizes"]
    ):
        raise VocoderMismatchError(
            f"vocoder {path} was trained for tokenizer {meta['name']!r} with codebooks "
            f"{meta['codebook_sizes']}, not {list(expect_codebook_sizes)}"
        )
    vocoder = ScalableVocoder(VocoderConfig.from_dict(payload["config"]))
    vocoder.load_state_dict(payload["state_dict"])
    return vocoder.to(device).eval()

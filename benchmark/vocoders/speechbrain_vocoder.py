"""speechbrain's released discrete unit HiFi-GAN, loaded from a local folder, and vocoder specs.

speechbrain publishes unit HiFi-GAN vocoders for its k-means SSL tokens (the DASB setup:
K = 1000 per layer, layers 1, 3, 7, 12, 18, 23 of WavLM-large / HuBERT-large / wav2vec2-large,
trained on LibriTTS), e.g. ``speechbrain/hifigan-wavlm-k1000-LibriTTS`` and
``speechbrain/hifigan-wavlm-l1-3-7-12-18-23-k1000-LibriTTS``. A snapshot of such a repository
(``huggingface-cli download <repo> --local-dir DIR`` on a machine with network) holds:

- ``hyperparams.yaml``: a hyperpyyaml file whose ``generator`` entry builds
  ``speechbrain.lobes.models.HifiGAN.UnitHifiganGenerator`` (one shared embedding table of
  ``1 + L * K`` rows, attention pooling over the ``L`` layers, the HiFi-GAN stack);
- ``generator.ckpt``: that generator's ``state_dict`` (``torch.save``);
- ``kmeans/<data>_<encoder>_k<K>_L<layer>.pt``: one scikit-learn k-means per layer
  (``joblib``), which :mod:`benchmark.models.sb_quantizers` imports for the tokenizer.

speechbrain's ``DiscreteSSL.decode`` feeds the generator ``[B, N, L]`` ids where layer slot
``i`` holds ``1 + i * K + token`` and ``0`` marks a layer left out; the generator's attention
pooling gives that ``0`` embedding a weight like any other layer. :class:`SpeechBrainUnitVocoder`
reproduces exactly that mapping behind this harness's ``decode(tokens, token_lengths,
codebooks)``, so a tokenizer decodes with speechbrain's vocoder or with a
:class:`~benchmark.vocoders.model.ScalableVocoder` trained here through one call.

Pointing a card at it: a tokenizer that decodes takes a *vocoder spec* parameter and opens it
with :func:`open_vocoder`::

    params:
      vocoder: {speechbrain: /data/hifigan-wavlm-k1000-LibriTTS}   # the released one
      # or: vocoder: {path: work/vocoders/wavlm-attn/<run>/vocoder.pt}   # trained here

The tokenizer's codebooks must be SSL layers the speechbrain vocoder was trained on (its
``layers`` are matched by layer number) and its k-means must be speechbrain's (the same
``kmeans/`` folder), otherwise the ids mean something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.decode_validation import check_decode_inputs
from benchmark.vocoders.hifigan_decode import decode_padding_exact, min_frames
from benchmark.vocoders.model import ScalableVocoder, VocoderError, load_vocoder

_KMEANS = re.compile(r"_k(?P<k>[0-9]+)_L(?P<layer>[0-9]+)\.pt$")
HPARAMS_FILE = "hyperparams.yaml"
GENERATOR_FILE = "generator.ckpt"


class SpeechBrainUnitVocoder(nn.Module):
    """speechbrain's ``UnitHifiganGenerator`` behind the harness's ``decode`` contract.

    Args:
        generator: the speechbrain generator, weights loaded.
        vocoder_layers: the SSL layer of each of the generator's ``L`` slots, in slot order.
        num_clusters: ``K`` ids per layer.
        codebook_layers: the SSL layer of each of the tokenizer's codebooks.
        sample_rate: output rate in Hz.
    """

    def __init__(
        self,
        generator: nn.Module,
        vocoder_layers: Sequence[int],
        num_clusters: int,
        codebook_layers: Sequence[int],
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.vocoder_layers = tuple(int(x) for x in vocoder_layers)
        self.num_clusters = int(num_clusters)
        self.codebook_layers = tuple(int(x) for x in codebook_layers)
        self.sample_rate = int(sample_rate)
        missing = [x for x in self.codebook_layers if x not in self.vocoder_layers]
        if missing:
            raise VocoderError(
                f"speechbrain vocoder was trained on SSL layers {list(self.vocoder_layers)}, "
                f"not on layer {missing[0]} of the tokenizer (layers {list(self.codebook_layers)})"
            )
        self.slots = tuple(self.vocoder_layers.index(x) for x in self.codebook_layers)
        self.hop_length = math.prod(int(up.conv.stride[0]) for up in generator.ups)
        #: fewest frames the generator takes; shorter items are extended by :meth:`decode`
        self.min_frames = min_frames(generator)

    @property
    def trained_layers(self) -> tuple[int, ...]:
        """Codebook indices this vocoder decodes (every codebook of the tokenizer)."""
        return tuple(range(len(self.codebook_layers)))

    def speechbrain_ids(
        self, tokens: torch.Tensor, token_lengths: torch.Tensor, codebooks: Sequence[int] | None
    ) -> torch.Tensor:
        """``[B, N, K]`` tokens -> speechbrain's ``[B, N, L]`` ids (0 = layer left out)."""
        sizes = (self.num_clusters,) * len(self.codebook_layers)
        selected = check_decode_inputs(
            "speechbrain vocoder",
            tokens,
            token_lengths,
            sizes,
            codebooks,
            error=VocoderError,
            decoded_only=True,
        )
        device = next(self.generator.parameters()).device
        ids = tokens.detach().to(device, torch.int64)
        valid = torch.arange(ids.shape[1], device=device) < token_lengths.to(device).unsqueeze(1)
        out = torch.zeros(
            *ids.shape[:2], len(self.vocoder_layers), dtype=torch.int64, device=device
        )
        for c in selected:
            slot = self.slots[c]
            shifted = ids[..., c] + 1 + slot * self.num_clusters
            out[..., slot] = torch.where(valid, shifted, torch.zeros_like(shifted))
        return out

    @torch.no_grad()
    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode like :meth:`ScalableVocoder.decode` (``wav [B, T]``, ``lengths [B]``).

        Padding-exact as well (one generator call per distinct length), and items under
        :attr:`min_frames` frames repeat their last frame up to it and are cut back
        (see :mod:`benchmark.vocoders.hifigan_decode`).
        """
        ids = self.speechbrain_ids(tokens, token_lengths, codebooks)
        frames = token_lengths.detach().to(ids.device, torch.int64)
        self.generator.eval()
        wav = decode_padding_exact(
            self.generator.inference, ids, frames, self.hop_length, self.min_frames
        )
        return wav, frames * self.hop_length


def _vocoder_layers(hparams: Mapping[str, Any], folder: Path) -> tuple[int, ...] | None:
    for key in ("layer", "layers", "ssl_layers"):
        value = hparams.get(key)
        if isinstance(value, list | tuple) and value:
            return tuple(int(x) for x in value)
    found = sorted(
        {int(m["layer"]) for p in (folder / "kmeans").glob("*.pt") if (m := _KMEANS.search(p.name))}
    )
    return tuple(found) or None


def load_speechbrain_unit_hifigan(
    folder: Path,
    codebook_layers: Sequence[int] | None = None,
    vocoder_layers: Sequence[int] | None = None,
    device: str = "cpu",
) -> SpeechBrainUnitVocoder:
    """Build speechbrain's unit HiFi-GAN from a local snapshot folder (see module docstring).

    Args:
        folder: holds ``hyperparams.yaml`` and ``generator.ckpt``.
        codebook_layers: the SSL layer of each codebook of the tokenizer that will decode
            with it; None = every vocoder layer, in order.
        vocoder_layers: the SSL layer of each generator slot; None reads ``layer`` from the
            hyperparameters, else the ``kmeans/*_L<layer>.pt`` file names.
        device: where the generator goes.

    Raises:
        VocoderError: a missing file, a generator that is not a ``UnitHifiganGenerator``,
            weights that do not fit it, or layers it cannot decode (one line, naming it).
    """
    folder = Path(folder).expanduser()
    for name in (HPARAMS_FILE, GENERATOR_FILE):
        if not (folder / name).is_file():
            raise VocoderError(
                f"{folder / name} not found: point at a snapshot of a speechbrain unit HiFi-GAN "
                "repository (e.g. speechbrain/hifigan-wavlm-k1000-LibriTTS)"
            )
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.lobes.models.HifiGAN import UnitHifiganGenerator

    with (folder / HPARAMS_FILE).open(encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle)
    generator = hparams.get("generator")
    if not isinstance(generator, UnitHifiganGenerator):
        raise VocoderError(
            f"{folder / HPARAMS_FILE}: 'generator' is {type(generator).__name__}, not "
            "speechbrain's UnitHifiganGenerator"
        )
    if generator.multi_speaker or generator.duration_predictor:
        raise VocoderError(
            f"{folder}: multi-speaker or duration-predicting unit HiFi-GANs need inputs the "
            "harness does not provide"
        )
    state = torch.load(folder / GENERATOR_FILE, map_location="cpu", weights_only=True)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        summary = " ".join(str(exc).split())[:240]
        raise VocoderError(
            f"{folder / GENERATOR_FILE} does not fit the generator: {summary}"
        ) from None
    layers = (
        tuple(vocoder_layers) if vocoder_layers is not None else _vocoder_layers(hparams, folder)
    )
    if not layers:
        raise VocoderError(
            f"{folder}: cannot tell which SSL layers the vocoder decodes (no 'layer' in "
            f"{HPARAMS_FILE}, no kmeans/*_L<layer>.pt); pass vocoder_layers"
        )
    vocab = int(generator.unit_embedding.num_embeddings)
    if (vocab - 1) % len(layers):
        raise VocoderError(
            f"{folder}: an embedding table of {vocab} rows does not split into 1 + "
            f"{len(layers)} layers x K ids"
        )
    return SpeechBrainUnitVocoder(
        generator.to(device).eval(),
        layers,
        (vocab - 1) // len(layers),
        layers if codebook_layers is None else codebook_layers,
        int(hparams.get("sample_rate", 16000)),
    )


def write_speechbrain_unit_hifigan(
    folder: Path, generator_params: Mapping[str, Any], layers: Sequence[int], seed: int = 0
) -> Path:
    """Save a randomly initialised ``UnitHifiganGenerator`` in the released folder format.

    For offline tests and the mini preset: the folder loads through
    :func:`load_speechbrain_unit_hifigan` exactly like a downloaded snapshot.

    Args:
        folder: destination (created).
        generator_params: ``UnitHifiganGenerator`` keyword arguments (lists, ints, strings).
        layers: SSL layer of each slot (written as ``layer``).
        seed: initialisation seed.
    """
    import yaml
    from speechbrain.lobes.models.HifiGAN import UnitHifiganGenerator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = UnitHifiganGenerator(**dict(generator_params))
    torch.save(generator.state_dict(), folder / GENERATOR_FILE)
    body = yaml.safe_dump({"generator": dict(generator_params)}, sort_keys=False)
    body = body.replace(
        "generator:\n", "generator: !new:speechbrain.lobes.models.HifiGAN.UnitHifiganGenerator\n", 1
    )
    text = (
        f"sample_rate: 16000\nlayer: {list(layers)}\n{body}"
        "modules:\n  generator: !ref <generator>\n"
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "  loadables:\n    generator: !ref <generator>\n"
    )
    (folder / HPARAMS_FILE).write_text(text, encoding="utf-8")
    return folder


def open_vocoder(
    spec: Mapping[str, Any],
    codebook_layers: Sequence[int] | None = None,
    expect_fingerprint: str | None = None,
    expect_codebook_sizes: Sequence[int] | None = None,
    device: str = "cpu",
) -> ScalableVocoder | SpeechBrainUnitVocoder:
    """Open the vocoder a card names: ``{"path": vocoder.pt}`` or ``{"speechbrain": folder}``.

    Raises:
        VocoderError: an unknown spec, or what the loader raises (one line).
    """
    if (
        not isinstance(spec, Mapping)
        or len(spec) != 1
        or next(iter(spec))
        not in (
            "path",
            "speechbrain",
        )
    ):
        raise VocoderError(
            f"vocoder spec must be {{path: vocoder.pt}} or {{speechbrain: FOLDER}}, got {spec!r}"
        )
    if "path" in spec:
        return load_vocoder(Path(spec["path"]), expect_fingerprint, expect_codebook_sizes, device)
    vocoder = load_speechbrain_unit_hifigan(
        Path(spec["speechbrain"]), codebook_layers, device=device
    )
    if expect_codebook_sizes is not None and any(
        c != vocoder.num_clusters for c in expect_codebook_sizes
    ):
        raise VocoderError(
            f"speechbrain vocoder {spec['speechbrain']} decodes K = {vocoder.num_clusters} ids "
            f"per layer, the tokenizer has codebooks {list(expect_codebook_sizes)}"
        )
    return vocoder

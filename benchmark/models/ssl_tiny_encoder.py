"""A tokenizer's SSL encoder through its life cycle: open now, or once it is pretrained.

Card weights and the random tiny encoder open when the tokenizer is built. A ``tiny_model:
pretrained`` encoder cannot: building the tokenizer trains nothing, so it holds a
:class:`~benchmark.models.ssl_mini.PretrainRequest` (its ``pretrain_spec()``), reports the
tiny architecture's geometry (rate, hop, width) and its recipe as the weights' identity, and
opens when the harness hands it the pretrain step's folder (``load_pretrained``). Using it
before that raises :class:`~benchmark.models.ssl_mini.PretrainNotRunError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext
from benchmark.data.manifest import Manifest
from benchmark.models.ssl_mini import (
    PretrainNotRunError,
    TinyModelError,
    TinyOrigin,
    pretrain_request,
    tiny_model_kind,
)


class TinyEncoder:
    """A tokenizer's SSL encoder: opened at once (card weights, random tiny encoder), or, for
    ``tiny_model: pretrained``, when the harness hands over its pretrained folder.

    Args:
        family: ``wavlm``, ``hubert`` or ``wav2vec2``.
        layers: 1-based transformer layers to extract.
        tiny_model: the card's ``tiny_model`` (false, true, ``random``, ``pretrained``).
        context: device, workdir, card weights, progress switch.
        dtype: ``fp32`` or ``bf16``.
        normalize_wav: None follows the model's preprocessor config.
        pretrain: pretraining overrides (``tiny_model: pretrained`` only).

    Raises:
        SSLConfigError: conflicting or bad parameters; WeightsUnavailableError: weights that
            cannot be loaded.
    """

    def __init__(
        self, family: str, layers: Sequence[int], tiny_model: bool | str, context: BuildContext,
        dtype: str = "fp32", normalize_wav: bool | None = None,
        pretrain: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        from benchmark.models.ssl_features import SSLConfigError, open_ssl_extractor

        self._args = (family, tuple(layers), tiny_model, context, dtype, normalize_wav)
        self.progress = context.progress
        try:
            kind = tiny_model_kind(tiny_model)
            if kind == "pretrained" and context.weights:
                raise TinyModelError(
                    "tiny_model: pretrained and card weights are both set; drop one (the mini "
                    "preset sets weights: null)"
                )
            self.request = pretrain_request(family, pretrain) if kind == "pretrained" else None
        except (TinyModelError, ValueError) as exc:
            raise SSLConfigError(str(exc)) from None
        self._extractor = None
        self._origin = self.request.origin() if self.request is not None else None
        if self.request is None:
            self._extractor = open_ssl_extractor(*self._args, pretrain)
            self._origin = self._extractor.origin

    @property
    def origin(self) -> TinyOrigin | None:
        """The tiny encoder's origin (None for card weights)."""
        return self._origin

    @property
    def loaded(self) -> bool:
        """Whether the encoder is open (false until a pretrained folder is loaded)."""
        return self._extractor is not None

    @property
    def extractor(self) -> Any:
        """The :class:`~benchmark.models.ssl_features.SSLLayerExtractor`.

        Raises:
            PretrainNotRunError: ``tiny_model: pretrained`` and no folder loaded yet.
        """
        if self._extractor is None:
            raise PretrainNotRunError(
                "this tokenizer's tiny encoder is pretrained by the harness and not loaded yet: "
                "`python -m benchmark run` runs its pretrain step first; outside the harness, "
                "call load_pretrained(benchmark.models.ssl_mini.pretrained_tiny_ssl(...)[0])"
            )
        return self._extractor

    def geometry(self) -> dict[str, Any]:
        """``sample_rate``, ``hop``, ``receptive_field``, ``hidden_size``, ``normalize``:
        read from the open encoder, or from the tiny architecture before it is loaded."""
        if self._extractor is not None:
            info = self._extractor.info
            return {"sample_rate": info.sample_rate, "hop": info.hop,
                    "receptive_field": info.receptive_field, "hidden_size": info.hidden_size,
                    "normalize": self._extractor.normalize}  # fmt: skip
        from benchmark.models.ssl_loading import TINY_SPEC, _receptive_field

        kernels, strides = tuple(TINY_SPEC["conv_kernel"]), tuple(TINY_SPEC["conv_stride"])
        receptive, hop = _receptive_field(kernels, strides)
        normalize = True if self._args[5] is None else bool(self._args[5])  # saved: do_normalize
        return {"sample_rate": 16000, "hop": hop, "receptive_field": receptive,
                "hidden_size": int(TINY_SPEC["hidden_size"]), "normalize": normalize}  # fmt: skip

    def weights_fingerprint(self) -> dict[str, Any]:
        """The weights' identity: the recipe for a pretrained tiny encoder (its folder is the
        deterministic output of the pretrain step, whose key enters the tokenizer's), else
        the loaded weights' fingerprint."""
        if self.request is not None:
            return {"tiny_pretrained": self.request.recipe()}
        return self.extractor.info.fingerprint()

    def pretrain_spec(self) -> dict[str, Any] | None:
        """The pretraining request (:meth:`PretrainRequest.to_spec`), or None."""
        return self.request.to_spec() if self.request is not None else None

    def pretrain(self, manifests: Mapping[str, Manifest], out_dir: Path) -> dict[str, Any]:
        """Run the request into ``out_dir`` (the harness's ``pretrain`` step).

        Raises:
            TinyModelError: the encoder is not ``tiny_model: pretrained``.
        """
        if self.request is None:
            raise TinyModelError("only tiny_model: pretrained has anything to pretrain")
        return self.request.run(manifests, Path(out_dir), self.progress)

    def load(self, folder: Path) -> None:
        """Open the pretrained encoder in ``folder`` through the ``{path}`` loading route.

        Raises:
            TinyModelError: not ``tiny_model: pretrained``, or a folder of other settings.
            WeightsUnavailableError: the folder cannot be loaded.
        """
        from benchmark.models.ssl_features import open_ssl_extractor

        if self.request is None:
            raise TinyModelError("only tiny_model: pretrained loads a pretrained folder")
        origin = self.request.origin(Path(folder))
        extractor = open_ssl_extractor(*self._args, None, pretrained_dir=Path(folder))
        planned = self.geometry()
        self._extractor = extractor
        found = self.geometry()
        if found != planned:
            self._extractor = None
            raise TinyModelError(
                f"{folder} holds an encoder of another shape ({found} instead of {planned}); "
                "rerun its pretrain step"
            )
        self._origin = origin

"""The ``mini`` preset's tiny SSL encoders: random, or pretrained by the harness on mini.

A card's ``tiny_model`` parameter picks one (``weights: null`` in the mini preset):

- ``random`` (or ``true``): :func:`benchmark.models.ssl_loading.tiny_ssl_model_dir`, a randomly
  initialised encoder of the real architecture, kept for comparison;
- ``pretrained``: the same architecture pretrained by
  :func:`benchmark.models.ssl_pretrain.pretrain_tiny_ssl` on the mini ``asr`` and ``ood``
  ``train`` splits (train speakers only; the speakers of every speaker-disjoint ``valid`` and
  ``test`` split are passed as held out and refused), created once per fingerprint under
  ``workdir/models/pretrained-<family>-<hash>``.

Both are folders written by ``save_pretrained`` and loaded through the ``{path}`` route of
:func:`~benchmark.models.ssl_loading.load_ssl_model`, like real weights. :class:`TinyOrigin`
says which one was used; its label goes into the tokenizer's info and fingerprint, so every
record names it ("pretrained by the harness on mini, N steps", never WavLM-large).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext
from benchmark.errors import BenchmarkError

#: Mini splits the encoders are pretrained on (never valid or test).
PRETRAIN_SPLITS: tuple[tuple[str, str], ...] = (("asr", "train"), ("ood", "train"))
#: Speaker-disjoint mini subsets whose valid/test speakers are held out of pretraining.
HELDOUT_SUBSETS: tuple[str, ...] = ("asr", "style", "enhance")
RANDOM_LABEL = "randomly initialised by the harness (untrained)"
KINDS = ("random", "pretrained")


class TinyModelError(BenchmarkError, ValueError):
    """An unusable ``tiny_model`` / ``pretrain`` card parameter (one line)."""


@dataclass(frozen=True)
class TinyOrigin:
    """Which tiny encoder a tokenizer loaded.

    Attributes:
        kind: ``random`` or ``pretrained``.
        label: what records call the weights.
        fingerprint: digest of the pretraining fingerprint (None for random).
        summary: the pretraining summary (loss curve, data, time; empty for random).
    """

    kind: str
    label: str
    fingerprint: str | None = None
    summary: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """What enters the tokenizer's fingerprint (no wall times: they vary)."""
        return {"kind": self.kind, "label": self.label, "pretrain_fingerprint": self.fingerprint}


def tiny_model_kind(value: Any) -> str | None:
    """``random``, ``pretrained`` or None (real weights) from a card's ``tiny_model``."""
    if value is None or value is False:
        return None
    if value is True:
        return "random"
    if value in KINDS:
        return str(value)
    raise TinyModelError(
        f"tiny_model must be false, true (= random), 'random' or 'pretrained', got {value!r}"
    )


def heldout_speakers(context: BuildContext) -> set[str]:
    """Speakers of the valid and test splits of the speaker-disjoint mini subsets."""
    from benchmark.data.corpora import corpus_manifest

    return {
        u.speaker
        for subset in HELDOUT_SUBSETS
        for split in ("valid", "test")
        for u in corpus_manifest("mini", subset, split, context)
        if u.speaker is not None
    }


def pretrained_tiny_ssl(
    family: str, context: BuildContext, pretrain: Mapping[str, Any] | None = None
) -> tuple[Path, TinyOrigin]:
    """The pretrained tiny encoder of ``family`` for this workdir, made once per fingerprint.

    Args:
        family: ``wavlm`` or ``hubert``.
        context: workdir, corpus scale and progress switch.
        pretrain: overrides of :class:`~benchmark.models.ssl_pretrain.PretrainConfig`
            fields, plus ``seed`` (default 0).

    Returns:
        The ``save_pretrained`` folder and its :class:`TinyOrigin`.
    """
    from benchmark.data.corpora import corpus_manifest
    from benchmark.models.hf_weights import spec_digest
    from benchmark.models.ssl_pretrain import (
        PretrainConfig,
        pretrain_fingerprint,
        pretrain_tiny_ssl,
    )

    overrides = dict(pretrain or {})
    seed = overrides.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TinyModelError(f"pretrain seed must be an int >= 0, got {seed!r}")
    config = PretrainConfig.from_mapping(overrides)
    manifests = [corpus_manifest("mini", s, split, context) for s, split in PRETRAIN_SPLITS]
    heldout = heldout_speakers(context)
    digest = spec_digest(pretrain_fingerprint(family, manifests, config, seed, heldout))
    folder = Path(context.workdir) / "models" / f"pretrained-{family}-{digest}"
    summary = pretrain_tiny_ssl(
        family,
        manifests,
        folder,
        config,
        seed,
        context.progress,
        heldout_speakers=heldout,
        corpus="mini",
    )
    return folder, TinyOrigin("pretrained", summary["label"], summary["fingerprint"], summary)


def tiny_ssl_weights(
    family: str, kind: str, context: BuildContext, pretrain: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], TinyOrigin]:
    """``{"path": folder}`` weights of the tiny encoder of ``kind`` and its origin."""
    from benchmark.models.ssl_loading import tiny_ssl_model_dir

    if kind == "pretrained":
        folder, origin = pretrained_tiny_ssl(family, context, pretrain)
    elif kind == "random":
        if pretrain:
            raise TinyModelError("pretrain settings need tiny_model: pretrained")
        folder = tiny_ssl_model_dir(family, Path(context.workdir) / "models")
        origin = TinyOrigin("random", RANDOM_LABEL)
    else:
        raise TinyModelError(f"unknown tiny model kind {kind!r}; choose one of {KINDS}")
    return {"path": str(folder)}, origin

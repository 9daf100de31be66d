"""The ``mini`` preset's tiny SSL encoders: random, or pretrained by the harness on mini.

A card's ``tiny_model`` parameter picks one (``weights: null`` in the mini preset):

- ``random`` (or ``true``): :func:`benchmark.models.ssl_loading.tiny_ssl_model_dir`, a randomly
  initialised encoder of the real architecture, kept for comparison; opened at once;
- ``pretrained``: the same architecture pretrained by
  :func:`benchmark.models.ssl_pretrain.pretrain_tiny_ssl` on the mini ``asr`` and ``ood``
  ``train`` splits (train speakers only; the speakers of every speaker-disjoint ``valid`` and
  ``test`` split are passed as held out and refused). Building the tokenizer trains nothing:
  it declares a :class:`PretrainRequest` (its ``pretrain_spec()``), the harness plans a
  ``pretrain`` step (cached by its key: recipe, code, audio bytes, library versions), runs it
  through the tokenizer's ``pretrain()`` and hands its folder to ``load_pretrained()``.

Both are folders written by ``save_pretrained`` and loaded through the ``{path}`` route of
:func:`~benchmark.models.ssl_loading.load_ssl_model`, like real weights. :class:`TinyOrigin`
says which tiny encoder it is, and its label goes into the tokenizer's info and fingerprint,
so every record
names it ("pretrained by the harness on mini, N steps", never WavLM-large).
:class:`~benchmark.models.ssl_tiny_encoder.TinyEncoder` holds a tokenizer's encoder through
this life cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext
from benchmark.data.manifest import Manifest
from benchmark.errors import BenchmarkError

#: Mini splits the encoders are pretrained on (never valid or test).
PRETRAIN_SPLITS: tuple[tuple[str, str], ...] = (("asr", "train"), ("ood", "train"))
#: Speaker-disjoint mini subsets whose valid/test speakers are held out of pretraining.
HELDOUT_SUBSETS: tuple[str, ...] = ("asr", "style", "enhance")
#: The module whose code (and what it imports: the recipe) the ``pretrain`` step's key covers.
PRETRAIN_CODE = "benchmark.models.ssl_mini"
RANDOM_LABEL = "randomly initialised by the harness (untrained)"
KINDS = ("random", "pretrained")


class TinyModelError(BenchmarkError, ValueError):
    """An unusable ``tiny_model`` / ``pretrain`` card parameter, or folder (one line)."""


class PretrainNotRunError(BenchmarkError):
    """A tokenizer with ``tiny_model: pretrained`` was used before its encoder was loaded."""


@dataclass(frozen=True)
class TinyOrigin:
    """Which tiny encoder a tokenizer uses.

    Attributes:
        kind: ``random`` or ``pretrained``.
        label: what records call the weights.
        recipe: the pretraining request's recipe (family, settings, seed, corpus); None for
            random.
        summary: the pretraining summary once loaded (loss curve, data, time), else None.
    """

    kind: str
    label: str
    recipe: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """What enters the tokenizer's fingerprint (the same before and after loading)."""
        return {"kind": self.kind, "label": self.label, "recipe": self.recipe}


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


@dataclass(frozen=True)
class PretrainRequest:
    """What a ``tiny_model: pretrained`` tokenizer asks the harness to pretrain.

    Attributes:
        family: ``wavlm`` or ``hubert``.
        config: the recipe's settings.
        seed: seeds initialisation, targets, crops and masks.
        corpus: the corpus pretrained on (``mini``).
    """

    family: str
    config: Any  # PretrainConfig (imported lazily: torch-heavy)
    seed: int = 0
    corpus: str = "mini"

    @property
    def label(self) -> str:
        """``pretrained by the harness on mini, N steps``."""
        from benchmark.models.ssl_pretrain_config import pretrain_label

        return pretrain_label(self.corpus, self.config.steps)

    def recipe(self) -> dict[str, Any]:
        """JSON-ready family, settings, seed and corpus."""
        return {"family": self.family, "config": self.config.to_dict(), "seed": self.seed,
                "corpus": self.corpus}  # fmt: skip

    def data(self) -> dict[str, dict[str, str]]:
        """``{name: DataRef spec}``: ``train:<subset>/<split>`` is learnt from, the speakers
        of ``heldout:<subset>/<split>`` are refused."""
        refs = {f"train:{s}/{split}": (s, split) for s, split in PRETRAIN_SPLITS}
        refs |= {
            f"heldout:{s}/{split}": (s, split)
            for s in HELDOUT_SUBSETS
            for split in ("valid", "test")
        }
        return {name: {"corpus": self.corpus, "subset": s, "split": split}
                for name, (s, split) in refs.items()}  # fmt: skip

    def to_spec(self) -> dict[str, Any]:
        """The tokenizer's ``pretrain_spec()``: ``recipe``, ``data``, ``code`` and ``label``."""
        return {"recipe": self.recipe(), "data": self.data(), "code": PRETRAIN_CODE,
                "label": self.label}  # fmt: skip

    def run(
        self, manifests: Mapping[str, Manifest], out_dir: Path, progress: bool = False
    ) -> dict[str, Any]:
        """Pretrain into ``out_dir`` on the manifests of :meth:`data` (by name).

        Returns:
            The record summary (:func:`~benchmark.models.ssl_pretrain.record_summary`).

        Raises:
            TinyModelError: a manifest of :meth:`data` is missing.
            PretrainDataError: held-out speakers or splits in the training data.
        """
        from benchmark.models.ssl_pretrain import pretrain_tiny_ssl, record_summary

        missing = sorted(set(self.data()) - set(manifests))
        if missing:
            raise TinyModelError(f"pretraining needs the manifests {missing}")
        train = [manifests[name] for name in self.data() if name.startswith("train:")]
        heldout = {
            u.speaker
            for name in self.data()
            if name.startswith("heldout:")
            for u in manifests[name]
            if u.speaker is not None
        }
        summary = pretrain_tiny_ssl(
            self.family, train, out_dir, self.config, self.seed, progress,
            heldout_speakers=heldout, corpus=self.corpus,
        )  # fmt: skip
        return record_summary(summary)

    def origin(self, folder: Path | None = None) -> TinyOrigin:
        """The origin of this request's encoder; with ``folder``, checked against its summary.

        Raises:
            TinyModelError: ``folder`` holds no pretraining summary, or one of another
                family, settings or seed.
        """
        if folder is None:
            return TinyOrigin("pretrained", self.label, self.recipe())
        from benchmark.models.ssl_pretrain import SUMMARY

        path = Path(folder) / SUMMARY
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TinyModelError(
                f"{path} is missing or unreadable ({exc}); rerun the pretrain step "
                "(delete the folder and `python -m benchmark run` again)"
            ) from None
        found = {"family": summary.get("family"), "config": summary.get("config"),
                 "seed": summary.get("seed")}  # fmt: skip
        wanted = {k: self.recipe()[k] for k in found}
        if found != wanted:
            old, new = dict(found.pop("config") or {}), wanted.pop("config")
            diff = {k: (found[k], wanted[k]) for k in found if found[k] != wanted[k]}
            diff |= {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}
            what = ", ".join(f"{k} {a!r} instead of {b!r}" for k, (a, b) in sorted(diff.items()))
            raise TinyModelError(
                f"{folder} was pretrained with other settings ({what}); rerun its pretrain step"
            )
        return TinyOrigin("pretrained", self.label, self.recipe(), summary)


def pretrain_request(family: str, overrides: Mapping[str, Any] | None) -> PretrainRequest:
    """The request of a card's ``pretrain`` overrides (PretrainConfig fields and ``seed``).

    Raises:
        TinyModelError: a bad seed; PretrainConfigError: a bad setting.
    """
    from benchmark.models.ssl_pretrain_config import PretrainConfig

    overrides = dict(overrides or {})
    seed = overrides.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TinyModelError(f"pretrain seed must be an int >= 0, got {seed!r}")
    return PretrainRequest(family, PretrainConfig.from_mapping(overrides), seed)


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
    """Outside the harness's graph: the pretrained tiny encoder, made once per fingerprint.

    Created under ``workdir/models/pretrained-<family>-<hash>`` (the hash covers the recipe,
    the manifests, the held-out speakers and the library versions). Hand the folder to a
    tokenizer's ``load_pretrained``. A run of the harness uses its ``pretrain`` step instead.

    Args:
        family: ``wavlm`` or ``hubert``.
        context: workdir, corpus scale and progress switch.
        pretrain: overrides of :class:`~benchmark.models.ssl_pretrain.PretrainConfig`
            fields, plus ``seed`` (default 0).

    Returns:
        The ``save_pretrained`` folder and its :class:`TinyOrigin`.
    """
    from benchmark.data.corpora import resolve_data
    from benchmark.metadata import DataRef
    from benchmark.models.hf_weights import tiny_model_dir
    from benchmark.models.ssl_pretrain import pretrain_fingerprint

    request = pretrain_request(family, pretrain)
    manifests = {
        name: resolve_data(DataRef.from_spec(ref), context) for name, ref in request.data().items()
    }
    train = [m for name, m in manifests.items() if name.startswith("train:")]
    heldout = {u.speaker for n, m in manifests.items() if n.startswith("heldout:") for u in m}
    fingerprint = pretrain_fingerprint(
        family, train, request.config, request.seed, {s for s in heldout if s is not None}
    )

    def save(folder: Path) -> None:
        request.run(manifests, folder, context.progress)

    folder = tiny_model_dir(Path(context.workdir) / "models", f"pretrained-{family}",
                            fingerprint, save)  # fmt: skip
    return folder, request.origin(folder)

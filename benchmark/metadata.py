"""Metadata types of the contract: tokenizer and task metadata, data references, metric values.

Re-exported by :mod:`benchmark.api` (import them from there); kept apart so that the
interfaces module stays small. Nothing heavy is imported.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmark.errors import ContractError

Direction = Literal["higher", "lower"]

#: DASB's bitrate tiers in bits per second (DASB, arXiv 2406.14294): low <= 1.5 kbps,
#: medium <= 6 kbps, high above.
BITRATE_TIERS: tuple[tuple[str, float], ...] = (("low", 1500.0), ("medium", 6000.0))


def bitrate_tier(bits_per_second: float) -> str:
    """Return DASB's tier name (``low`` / ``medium`` / ``high``) for a bitrate in bit/s."""
    for name, upper in BITRATE_TIERS:
        if bits_per_second <= upper + 1e-9:
            return name
    return "high"


@dataclass(frozen=True)
class TokenizerInfo:
    """Metadata of a tokenizer; the harness computes the bitrate from it, never reads it typed.

    Attributes:
        name: registry name.
        sample_rate: rate of the audio ``encode`` takes and ``decode`` returns, in Hz.
        frame_rate: token frames per second of audio, in Hz.
        codebook_sizes: the number of distinct ids ``C_k`` of each codebook ``k``.
        can_decode: whether ``decode`` turns tokens back into audio.
        layers: for SSL tokenizers, the model layer each codebook quantises.
        feature_dim: set only for *continuous references* (no quantisation, e.g. log-mel or
            SSL hidden states, DASB's continuous baseline row): ``encode`` then returns float
            features ``[B, N, K, D]`` with ``K = len(layers)`` and ``D = feature_dim``,
            ``codebook_sizes`` is empty and there is no bitrate. Such a reference runs
            through the same task heads but is not a tokenizer for ``check-tokenizer``.
        model_label: what the weights behind the tokens are when that is not what the name
            says (e.g. "pretrained by the harness on mini, 900 steps" for the mini preset's
            tiny encoders); recorded with the info, omitted from :meth:`to_dict` when None.
    """

    name: str
    sample_rate: int
    frame_rate: float
    codebook_sizes: tuple[int, ...] = ()
    can_decode: bool = False
    layers: tuple[int, ...] | None = None
    feature_dim: int | None = None
    model_label: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ContractError("TokenizerInfo.name is empty: give the tokenizer a name")
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ContractError(
                f"tokenizer {self.name!r}: sample_rate must be a positive int (Hz), "
                f"got {self.sample_rate!r}"
            )
        if not (isinstance(self.frame_rate, int | float) and self.frame_rate > 0):
            raise ContractError(
                f"tokenizer {self.name!r}: frame_rate must be a positive number (Hz), "
                f"got {self.frame_rate!r}"
            )
        if self.feature_dim is not None:
            if self.codebook_sizes or not self.layers or self.feature_dim < 1:
                raise ContractError(
                    f"continuous reference {self.name!r}: give layers and a positive "
                    f"feature_dim, and no codebook_sizes"
                )
            return
        if not self.codebook_sizes or any(
            not isinstance(c, int) or c < 2 for c in self.codebook_sizes
        ):
            raise ContractError(
                f"tokenizer {self.name!r}: codebook_sizes must be a non-empty tuple of ints >= 2,"
                f" got {self.codebook_sizes!r}"
            )
        if self.layers is not None and len(self.layers) != len(self.codebook_sizes):
            raise ContractError(
                f"tokenizer {self.name!r}: {len(self.layers)} layers but "
                f"{len(self.codebook_sizes)} codebooks; give one layer per codebook"
            )

    @property
    def is_continuous(self) -> bool:
        """True for continuous references (float features, no codebooks)."""
        return self.feature_dim is not None

    @property
    def num_codebooks(self) -> int:
        """Number of codebooks ``K`` (layers of a continuous reference)."""
        if self.is_continuous:
            return len(self.layers or ())
        return len(self.codebook_sizes)

    @property
    def bitrate(self) -> float | None:
        """Bits per second: ``frame_rate * sum_k log2(C_k)``; None when continuous."""
        if self.is_continuous:
            return None
        return float(self.frame_rate) * sum(math.log2(c) for c in self.codebook_sizes)

    @property
    def tier(self) -> str:
        """DASB bitrate tier computed from :attr:`bitrate` (``continuous`` for references)."""
        bitrate = self.bitrate
        return "continuous" if bitrate is None else bitrate_tier(bitrate)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, with the computed bitrate and tier (and the model label if set)."""
        out = {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "num_codebooks": self.num_codebooks,
            "codebook_sizes": list(self.codebook_sizes),
            "can_decode": self.can_decode,
            "layers": list(self.layers) if self.layers is not None else None,
            "feature_dim": self.feature_dim,
            "bitrate_bps": self.bitrate,
            "tier": self.tier,
        }
        if self.model_label is not None:
            out["model_label"] = self.model_label
        return out


@dataclass(frozen=True)
class DataRef:
    """A split of a registered corpus, by name: what a task or a k-means fit reads.

    The harness resolves it through the corpus registry (:mod:`benchmark.data.corpora`),
    preparing the corpus first when it needs to (the mini corpus is synthesised once).

    Attributes:
        corpus: recipe name (``mini``, ``librispeech``, ``manifest``, ...).
        subset: the part of the corpus (``asr``, ``speaker``; a folder for ``manifest``).
        split: ``train``, ``valid``, ``test`` or a corpus's own split name.
    """

    corpus: str
    subset: str
    split: str = "train"

    @property
    def name(self) -> str:
        """``corpus/subset/split``."""
        return f"{self.corpus}/{self.subset}/{self.split}"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], default_corpus: str = "mini") -> DataRef:
        """From a card's ``{"corpus", "subset", "split"}`` mapping.

        Raises:
            ContractError: ``subset`` is missing or a value is not a string.
        """
        if "subset" not in spec:
            raise ContractError(f"data spec {dict(spec)!r} needs a 'subset'")
        ref = cls(
            str(spec.get("corpus", default_corpus)), spec["subset"], spec.get("split", "train")
        )
        if not all(isinstance(v, str) and v for v in (ref.corpus, ref.subset, ref.split)):
            raise ContractError(f"data spec {dict(spec)!r}: corpus, subset, split are strings")
        return ref


@dataclass(frozen=True)
class TaskInfo:
    """Metadata of a downstream task.

    Attributes:
        name: registry name.
        kind: family (``asr``, ``classification``, ``enhancement``, ``tts``).
        main_metric: the metric the leaderboard ranks on.
        corpus: the corpus recipe the task reads (``mini``, ``librispeech``, ...).
        needs_decode: whether the task decodes tokens back to audio (generative tasks).
    """

    name: str
    kind: str
    main_metric: str
    corpus: str
    needs_decode: bool = False


@dataclass(frozen=True)
class UtteranceScores:
    """Per-utterance parts of a metric: ``value = scale * sum(num) / sum(den)``.

    A mean metric has ``den = 1`` per utterance; a corpus ratio (WER: edits / reference
    words) keeps both, so a paired bootstrap over utterances recomputes exactly the reported
    statistic. Stored in records for significance tests between tokenizers.
    """

    ids: list[str]
    num: list[float]
    den: list[float]
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.num) == len(self.den):
            raise ContractError(
                f"UtteranceScores: {len(self.ids)} ids, {len(self.num)} numerators and "
                f"{len(self.den)} denominators; give one of each per utterance"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UtteranceScores:
        """Read the stored form."""
        return cls(list(data["ids"]), list(data["num"]), list(data["den"]), data.get("scale", 1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"ids": list(self.ids), "num": list(self.num), "den": list(self.den),
                "scale": self.scale}  # fmt: skip


@dataclass(frozen=True)
class MetricValue:
    """One computed metric, with its direction, confidence interval and judge.

    ``status`` is ``ok`` when ``value`` holds a number, else ``unavailable`` with a
    ``reason``: a metric that could not be computed never becomes a default number.
    """

    name: str
    direction: Direction
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    n: int | None = None
    judge: Mapping[str, Any] | None = None
    status: Literal["ok", "unavailable", "failed"] = "ok"
    reason: str | None = None
    split: str | None = None
    per_utterance: UtteranceScores | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ContractError(
                f"metric {self.name!r}: direction must be 'higher' or 'lower', "
                f"got {self.direction!r}"
            )
        if self.status == "ok" and (self.value is None or not math.isfinite(self.value)):
            raise ContractError(
                f"metric {self.name!r}: status ok needs a finite value, got {self.value!r}; "
                "record it with MetricValue.unavailable(...) instead"
            )

    @classmethod
    def unavailable(cls, name: str, direction: Direction, reason: str) -> MetricValue:
        """A metric that could not be computed, with the reason."""
        return cls(name=name, direction=direction, value=None, status="unavailable", reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "value": self.value,
            "direction": self.direction,
            "ci": (
                None
                if self.ci_low is None
                else {"low": self.ci_low, "high": self.ci_high, "level": self.ci_level}
            ),
            "n": self.n,
            "judge": dict(self.judge) if self.judge else None,
            "status": self.status,
            "reason": self.reason,
            "split": self.split,
        }

    def on_split(self, split: str) -> MetricValue:
        """The same value, labelled with the split it was computed on."""
        return dataclasses.replace(self, split=split)

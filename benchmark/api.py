"""The interfaces every tokenizer, task and metric implements, and their metadata types.

This module is the contract plugins code against. It imports torch only for type checking,
so it can be imported by ``--help`` and by the registries without loading heavy libraries.

Shapes use ``B`` for batch, ``T`` for audio samples, ``N`` for token frames and ``K`` for
codebooks (one per quantised layer for SSL tokenizers).
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchmark.errors import ContractError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

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
class BuildContext:
    """What the harness hands a tokenizer or task when it builds one.

    Attributes:
        preset: ``mini`` or ``full``.
        device: torch device string (``cpu`` or ``cuda``).
        workdir: root of the harness's caches; a component keeps its own state under
            ``workdir / <kind> / <its fingerprint>``.
        weights: the card's weights entry (``{"hub": ..., "revision": ...}`` or
            ``{"path": ...}``), or None.
        data_root: where full-preset corpora live, or None.
        seed: the run's seed.
        corpus_scale: shrinks the synthetic mini corpus (1.0 = the full mini corpus); for
            smoke tests.
        progress: whether long steps show progress bars.
    """

    preset: str = "mini"
    device: str = "cpu"
    workdir: Path = Path("work")
    weights: Mapping[str, Any] | None = None
    data_root: Path | None = None
    seed: int = 0
    corpus_scale: float = 1.0
    progress: bool = True


@dataclass
class FitData:
    """Audio a tokenizer may learn from (k-means training) before it encodes anything.

    Attributes:
        name: which corpus split this is (recorded in the fingerprint).
        batches: a callable returning an iterator of ``(wav[B, T] float32, lengths[B] int64)``
            at the tokenizer's sample rate.
        num_utterances: how many utterances the iterator yields in total.
    """

    name: str
    batches: Any
    num_utterances: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches())


class Tokenizer(abc.ABC):
    """An audio tokenizer: waveform in, integer tokens out, and back where it can.

    Subclasses set :attr:`info` in ``__init__`` and implement :meth:`encode`; decodable ones
    set ``can_decode=True`` and implement :meth:`decode`. Constructed as ``cls(**params)``
    with the card's parameters; if ``__init__`` takes a ``context`` keyword, the harness passes
    a :class:`BuildContext`.
    """

    info: TokenizerInfo

    #: Set True when the tokenizer must learn something (e.g. k-means) before encoding.
    needs_fit: bool = False

    @abc.abstractmethod
    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise a padded batch of audio.

        Args:
            wav: ``[B, T]`` float waveforms at ``info.sample_rate`` Hz, zero-padded.
            lengths: ``[B]`` int64 valid sample counts.

        Returns:
            ``tokens [B, N, K]`` int64 ids with ``0 <= id < codebook_sizes[k]`` on valid
            frames, and ``token_lengths [B]`` int64 valid frame counts. Padded frames may
            hold any valid id. Must not mutate its inputs. A continuous reference returns
            float features ``[B, N, K, D]`` instead of ids.
        """

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn tokens back into audio.

        Args:
            tokens: ``[B, N, K]`` int64 ids.
            token_lengths: ``[B]`` int64 valid frame counts.
            codebooks: indices of the codebooks to use (a scalable vocoder decodes any subset);
                None uses all.

        Returns:
            ``wav [B, T]`` float at ``info.sample_rate`` Hz and ``lengths [B]`` int64 samples.
        """
        raise NotImplementedError(f"tokenizer {self.info.name!r} cannot decode")

    def embeddings(self) -> torch.Tensor | None:
        """Codebook vectors ``[K, C, D]`` (k-means centroids or codec codebooks), or None.

        Only defined when every codebook has the same size and dimension.
        """
        return None

    def fit(self, data: FitData, out_dir: Path) -> None:
        """Learn what the tokenizer needs (e.g. k-means) and save it under ``out_dir``.

        Called once per fit fingerprint; the harness then calls :meth:`load_fitted`.
        """
        raise NotImplementedError(f"tokenizer {self.info.name!r} has nothing to fit")

    def load_fitted(self, out_dir: Path) -> None:
        """Load what :meth:`fit` saved under ``out_dir``."""
        raise NotImplementedError(f"tokenizer {self.info.name!r} has nothing to load")

    def fit_data_spec(self) -> Mapping[str, Any] | None:
        """Which corpus split to fit on, e.g. ``{"corpus": "mini", "split": "train"}``."""
        return None

    def extraction_variant(self) -> tuple[Mapping[str, Any], int] | None:
        """For variants that keep the first codebooks of one larger extraction (codec bitrates).

        Returns ``(params of the full tokenizer, number of leading codebooks kept)``; the
        harness then encodes once with the full tokenizer, caches that, and hands this variant
        the first codebooks, so every bitrate of a codec shares one extraction. None (the
        default) encodes with this tokenizer itself.
        """
        return None

    def state_fingerprint(self) -> Mapping[str, Any]:
        """Anything beyond the card that changes the tokens (resolved weight revision...)."""
        return {}


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
    status: Literal["ok", "unavailable"] = "ok"
    reason: str | None = None

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
        }


class Metric(abc.ABC):
    """A metric over per-utterance predictions and references."""

    name: str
    direction: Direction

    @abc.abstractmethod
    def compute(self, predictions: Sequence[Any], references: Sequence[Any]) -> MetricValue:
        """Score predictions against references, with a confidence interval where possible."""


@dataclass
class TaskOutput:
    """What a task returns: its metrics plus extras for the record (layer weights, curves)."""

    metrics: dict[str, MetricValue]
    extras: dict[str, Any] = field(default_factory=dict)


class Task(abc.ABC):
    """A downstream task: trains a head on cached tokens and scores it.

    Constructed as ``cls(**params)`` from its card (with ``context`` if accepted). The runner
    asks :meth:`splits` for the manifests to encode, encodes them once through the token
    cache, and calls :meth:`run` with the cached tokens.
    """

    info: TaskInfo

    @abc.abstractmethod
    def splits(self, context: BuildContext) -> Mapping[str, Any]:
        """Prepare the task's data and return ``{split name: Manifest}``."""

    @abc.abstractmethod
    def run(self, run: Any) -> TaskOutput:
        """Train and evaluate on the cached tokens of a :class:`benchmark.runner.TaskRun`."""


def construct(
    cls: type, params: Mapping[str, Any], context: BuildContext, name: str | None = None
) -> Any:
    """Instantiate a card's class with its parameters.

    ``context`` is passed when ``__init__`` accepts it, and the card's ``name`` when
    ``__init__`` has a ``name`` parameter that the card's params do not set.

    Raises:
        ContractError: when the parameters do not fit the constructor (names the class).
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        signature = None
    kwargs = dict(params)
    if signature is not None and "context" in signature.parameters:
        kwargs["context"] = context
    if signature is not None and "name" in signature.parameters and name and "name" not in kwargs:
        kwargs["name"] = name
    try:
        if signature is not None:
            signature.bind(**kwargs)
    except TypeError as exc:
        accepted = [p for p in signature.parameters if p not in ("self", "context")]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = [] if takes_any else sorted(set(kwargs) - set(signature.parameters))
        problem = f"does not accept parameters {unknown}" if unknown else f"cannot be built: {exc}"
        raise ContractError(
            f"{cls.__module__}.{cls.__qualname__} {problem}; its parameters are {accepted}: "
            "fix the card's params"
        ) from None
    return cls(**kwargs)

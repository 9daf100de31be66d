"""The interfaces every tokenizer, task and metric implements, and their metadata types.

This module is the contract plugins code against. It imports torch only for type checking,
so it can be imported by ``--help`` and by the registries without loading heavy libraries.

Shapes use ``B`` for batch, ``T`` for audio samples, ``N`` for token frames and ``K`` for
codebooks (one per quantised layer for SSL tokenizers).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import ContractError
from benchmark.metadata import (
    BITRATE_TIERS,
    DataRef,
    Direction,
    MetricValue,
    TaskInfo,
    TokenizerInfo,
    UtteranceScores,
    bitrate_tier,
)

__all__ = [
    "BITRATE_TIERS",
    "BuildContext",
    "DataRef",
    "Direction",
    "FitData",
    "GeneratedUtterance",
    "GenerationOutput",
    "GenerativeTask",
    "Metric",
    "MetricValue",
    "ReferenceAudio",
    "Task",
    "TaskInfo",
    "TaskOutput",
    "TaskRun",
    "Tokenizer",
    "TokenizerInfo",
    "UtteranceScores",
    "bitrate_tier",
    "check_contract",
    "construct",
]

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from benchmark.cache import TokenSplit
    from benchmark.data.manifest import Manifest


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

    def pretrain_spec(self) -> Mapping[str, Any] | None:
        """A model the harness must pretrain before this tokenizer can fit or encode, or None.

        Returns ``{"recipe": JSON settings, "data": {name: {"corpus", "subset", "split"}},
        "code": module, "label": text}``. The harness plans a ``pretrain`` step keyed by the
        recipe, the code of ``code`` (a module name, default this class's), the data's audio
        bytes and the library versions; it calls :meth:`pretrain` with the data's manifests,
        then hands every later step the folder through :meth:`load_pretrained` (before
        :meth:`load_fitted`). Building the tokenizer must not train anything.
        """
        return None

    def pretrain(self, data: Mapping[str, Manifest], out_dir: Path) -> Mapping[str, Any] | None:
        """Pretrain into ``out_dir`` on ``data`` (``pretrain_spec()["data"]``'s manifests by
        name); the returned JSON summary goes into every record."""
        raise NotImplementedError(f"tokenizer {self.info.name!r} has nothing to pretrain")

    def load_pretrained(self, folder: Path) -> None:
        """Load what :meth:`pretrain` saved in ``folder``."""
        raise NotImplementedError(f"tokenizer {self.info.name!r} has nothing pretrained")

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


class Metric(abc.ABC):
    """A metric over per-utterance predictions and references."""

    name: str
    direction: Direction

    @abc.abstractmethod
    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        ids: Sequence[str] | None = None,
    ) -> MetricValue:
        """Score predictions against references, with a confidence interval where possible.

        With ``ids`` (one per item), the value carries its :class:`UtteranceScores`.
        """


@dataclass
class TaskOutput:
    """What a task returns.

    Attributes:
        metrics: name -> value (each labelled with its split).
        extras: for the record (layer weights, training curves, transcripts).
        baselines: trivial baselines on the same test set, ``{baseline name: {metric:
            value}}`` (chance and majority class; an empty transcript; the noisy input), so
            a reader can tell a result from noise.
    """

    metrics: dict[str, MetricValue]
    extras: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, dict[str, MetricValue]] = field(default_factory=dict)


class Task(abc.ABC):
    """A downstream task: trains a head on cached tokens and scores it.

    Constructed as ``cls(**params)`` from its card (with ``context`` if accepted). The runner
    asks :meth:`splits` for the manifests to encode, encodes them once through the token
    cache, and calls :meth:`run` with the cached tokens.
    """

    info: TaskInfo

    #: Bump when a change to the task changes its results without changing its card.
    VERSION: int = 1
    #: Rough weight of this task's job among a run's steps, for the order in which the
    #: parallel executor starts ready steps (costliest chain first); None: a job's default
    #: (``benchmark.pipeline.pool.KIND_COST``). Never changes a result or a key.
    SCHEDULE_COST: float | None = None

    @abc.abstractmethod
    def splits(self, context: BuildContext) -> Mapping[str, DataRef | Manifest]:
        """The data the task needs: ``{split name: DataRef}`` (or a ready ``Manifest``).

        A :class:`DataRef` names a split of a registered corpus, which the harness prepares
        and fingerprints; a plugin task with data of its own may return a
        :class:`~benchmark.data.manifest.Manifest` instead. Must not prepare corpora itself.
        """

    @abc.abstractmethod
    def run(self, run: TaskRun) -> TaskOutput:
        """Train and evaluate on the cached tokens of ``run`` (a :class:`TaskRun`)."""


@dataclass
class GeneratedUtterance:
    """One utterance a generative task produced, as tokens, with what judges compare it to.

    Attributes:
        id: utterance id (unique in the output).
        tokens: ``[N, K]`` int64 ids of the tokenizer's codebooks, decoded by the harness
            (the tokenizer's own decoder, or the scalable vocoder trained on its tokens).
        reference_audio: the clean reference audio file (the clean twin for enhancement, the
            original for resynthesis, the real recording for TTS), or None.
        reference_text: the text spoken, or None.
        speaker_audio: an audio file of the target speaker (for speaker similarity), or None.
    """

    id: str
    tokens: Any
    reference_audio: Path | None = None
    reference_text: str | None = None
    speaker_audio: Path | None = None


@dataclass(frozen=True)
class ReferenceAudio:
    """One file of a reference row (audio that exists before any tokenizer runs: the clean
    recording, the noisy input), with what the judges compare it to: the same reference
    audio, text and speaker audio as the task's :class:`GeneratedUtterance` of the same id.

    Attributes:
        id: utterance id.
        audio: the file judged.
        reference_audio, reference_text, speaker_audio: as in :class:`GeneratedUtterance`.
    """

    id: str
    audio: Path
    reference_audio: Path | None = None
    reference_text: str | None = None
    speaker_audio: Path | None = None


@dataclass
class GenerationOutput:
    """What a :class:`GenerativeTask` returns: tokens to decode, and what to score beside them.

    Attributes:
        utterances: the generated test utterances.
        baseline_audio: trivial baselines and references that already exist as audio, scored
            by the same judges on the same utterances: ``{name: {utterance id: file}}`` (the
            noisy input of enhancement; the real recordings of TTS, "ground truth").
        baseline_tokens: rows decoded by the same decoder: ``{name: {utterance id: tokens
            [N, K]}}`` (the resynthesis of the clean targets, enhancement's ceiling).
        extras: for the record (training curves, model size, token accuracy).
    """

    utterances: list[GeneratedUtterance]
    baseline_audio: dict[str, dict[str, Path]] = field(default_factory=dict)
    baseline_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class GenerativeTask(Task):
    """A task whose output is audio: :meth:`run` returns tokens, the harness decodes them.

    Generation and scoring are separate steps of the graph: the harness decodes the tokens
    of :meth:`run` into audio files under the workdir (one ``generate`` step), then scores
    the files with the metrics the card names in its ``metrics`` parameter, through the
    metric registry and the preset's judges (a ``job`` step that can be rerun with other
    judges without regenerating). ``info.main_metric`` is one of those metrics.
    """

    #: Metric registry names scored on the decoded audio (set by the card's ``metrics``).
    metrics: tuple[str, ...] = ()
    #: Card parameters that only change the scoring: left out of the generate step's key,
    #: so changing them rescores without regenerating.
    SCORING_PARAMS: tuple[str, ...] = ("metrics", "main_metric", "judge_weights")

    @abc.abstractmethod
    def run(self, run: TaskRun) -> GenerationOutput:
        """Train (if the task has a model) and generate tokens for the test utterances."""

    def reference_rows(self, manifests: Mapping[str, Any]) -> dict[str, list[ReferenceAudio]]:
        """The rows of :attr:`GenerationOutput.baseline_audio` that :meth:`run` will report,
        known from the manifests alone (no tokens): ``{row name: [ReferenceAudio]}``.

        The harness judges them once per corpus, in a ``reference-scores`` step that needs
        no tokenizer (so it runs beside the first tokenizer's pretraining and extraction),
        into the score cache the record's scoring reads. An item that differs from what
        :meth:`run` reports (other bytes, other references) is judged again by the job: a
        mismatch costs time, never a wrong score. Default: no rows.

        Args:
            manifests: ``{split key of splits(): Manifest}``.
        """
        return {}


@dataclass
class TaskRun:
    """What a task's :meth:`Task.run` receives (built by the harness's job step).

    Attributes:
        tokenizer_info: metadata of the tokenizer whose tokens these are.
        splits: ``{split name: TokenSplit}``, memory-mapped cached tokens with their manifest.
        context: build context of the task (preset, device, workdir, seed).
        seed: the job's seed.
        device: torch device string.
        out_dir: a folder the task may write to (checkpoints), private to this job.
        progress: whether to show progress bars.
        codebook_vectors: loads the tokenizer's codebook vectors ``[K, C, D]`` (or None).
    """

    tokenizer_info: TokenizerInfo
    splits: Mapping[str, TokenSplit]
    context: BuildContext
    seed: int
    device: str
    out_dir: Path
    progress: bool = True
    codebook_vectors: Callable[[], torch.Tensor | None] | None = None

    def embeddings(self) -> torch.Tensor | None:
        """The tokenizer's codebook vectors ``[K, C, D]``, or None when it has none."""
        return self.codebook_vectors() if self.codebook_vectors is not None else None


def check_contract(kind: str, name: str, obj: Any, where: str) -> None:
    """Raise ContractError unless ``obj`` is a concrete subclass of the kind's interface.

    Args:
        kind: ``tokenizer``, ``task`` or ``metric``.
        name: the registered name (for the message).
        obj: what was registered.
        where: where it came from (for the message).
    """
    base = {"tokenizer": Tokenizer, "task": Task, "metric": Metric}[kind]
    label = f"{kind} {name!r} ({where})"
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise ContractError(
            f"{label}: {obj!r} is not a subclass of benchmark.api.{base.__name__}; "
            "register a class that implements the interface"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise ContractError(f"{label}: {obj.__qualname__} does not implement {missing}")


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

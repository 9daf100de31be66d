"""Per-utterance audio metrics: the interface, their aggregation, and failure handling.

Generative tasks write audio files; judges score each file (per utterance) and the scores
are aggregated afterwards, as lm-evaluation-harness keeps a per-item ``compute`` apart from
``aggregate``. An :class:`AudioMetric` declares what it ``needs`` of each
:class:`AudioItem`, names its judge (:meth:`AudioMetric.judge`, which raises
:class:`~benchmark.errors.JudgeUnavailableError` when the judge's weights are missing) and
scores items (:meth:`AudioMetric.score`).

The rules every metric follows:

- a metric whose judge is missing is *unavailable* with the reason
  (:meth:`MetricValue.unavailable <benchmark.api.MetricValue.unavailable>`);
- a metric that raises is *failed* with its error (:func:`metric_failure`), never a number;
- an utterance a judge cannot score (audio shorter than the judge's minimum, a reference
  with no speech in it, ...) is *skipped*: its score is ``None``, and the aggregate counts
  it in ``skipped`` with the reason. A skipped utterance is never scored as zero.

:func:`evaluate_metric` applies the three rules around one metric and a list of items.
"""

from __future__ import annotations

import abc
import logging
import math
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmark.api import Direction, Metric, MetricValue
from benchmark.errors import ContractError, DataError, JudgeUnavailableError
from benchmark.metrics.bootstrap import DEFAULT_LEVEL, bootstrap_mean_ci

log = logging.getLogger(__name__)

#: What a metric may need of an item: the generated audio, the clean reference audio (its
#: target: the clean twin for enhancement, the original for resynthesis), the reference
#: text, and audio of the reference speaker (for speaker similarity).
NEEDS: tuple[str, ...] = ("audio", "reference_audio", "reference_text", "speaker_audio")


@dataclass(frozen=True)
class AudioItem:
    """One utterance to score.

    Attributes:
        id: utterance id.
        audio: the generated audio file (any rate: judges resample).
        reference_audio: the clean reference audio file, or None.
        reference_text: the reference transcript, or None.
        speaker_audio: an audio file of the reference speaker, or None.
    """

    id: str
    audio: Path
    reference_audio: Path | None = None
    reference_text: str | None = None
    speaker_audio: Path | None = None


@dataclass(frozen=True)
class Skip:
    """What a judge returns instead of a score for an utterance it cannot score."""

    reason: str


def audio_seconds(path: Path) -> float:
    """Duration of an audio file in seconds, from its header.

    Raises:
        DataError: the file is missing or its header cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file does not exist")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types
        raise DataError(
            f"{path}: cannot read audio header ({' '.join(str(exc).split())})"
        ) from None
    return info.frames / info.samplerate if info.samplerate > 0 else 0.0


class AudioMetric(Metric):
    """A metric scored per utterance by a judge, from audio files.

    Subclasses set :attr:`name`, :attr:`direction` and :attr:`needs`, implement
    :meth:`judge` and :meth:`_score`, and may set :attr:`min_seconds` /
    :attr:`max_seconds`: items whose generated (or reference) audio falls outside that
    range are skipped with the reason before the judge sees them.
    """

    name: str
    direction: Direction
    #: Which fields of :class:`AudioItem` the metric reads (a subset of :data:`NEEDS`).
    needs: tuple[str, ...] = ("audio",)
    #: Shortest audio (generated and reference) the judge scores, in seconds.
    min_seconds: float = 0.0
    #: Longest audio the judge scores, in seconds (None = no limit).
    max_seconds: float | None = None

    @abc.abstractmethod
    def judge(self) -> dict[str, Any]:
        """The judge's identity, loading it if needed.

        Returns:
            A JSON-ready dict: hub model id and pinned revision, or package and version with
            a sha256 of bundled model files, or a harness-trained judge and its fingerprint.

        Raises:
            JudgeUnavailableError: the judge's weights or package are missing (one line).
        """

    @abc.abstractmethod
    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        """Score items that passed the duration checks: one finite float or :class:`Skip`."""

    # ------------------------------------------------------------------ shared machinery

    def check_items(self, items: Sequence[AudioItem]) -> None:
        """Raise ContractError unless every item has the fields :attr:`needs` names."""
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ContractError(f"metric {self.name!r} needs unknown inputs {sorted(unknown)}")
        for item in items:
            missing = [need for need in self.needs if getattr(item, need) in (None, "")]
            if missing:
                raise ContractError(
                    f"metric {self.name!r} needs {', '.join(missing)} but item {item.id!r} has "
                    "none; give the task's items these fields"
                )

    def _duration_skip(self, item: AudioItem) -> Skip | None:
        for need in ("audio", "reference_audio", "speaker_audio"):
            path = getattr(item, need)
            if need not in self.needs or path is None:
                continue
            seconds = audio_seconds(path)
            what = "generated audio" if need == "audio" else need.replace("_", " ")
            if seconds < self.min_seconds:
                return Skip(f"{what} shorter than {self.min_seconds:g} s")
            if self.max_seconds is not None and seconds > self.max_seconds:
                return Skip(f"{what} longer than {self.max_seconds:g} s")
        return None

    def score_with_reasons(
        self, items: Sequence[AudioItem]
    ) -> tuple[list[float | None], list[str | None]]:
        """Per-utterance scores (None = skipped) and the skip reasons, in item order.

        Raises:
            ContractError: an item lacks a needed field, or the judge returned something other
                than one finite float or :class:`Skip` per item.
            DataError: an audio file is missing or unreadable.
        """
        self.check_items(items)
        pre = [self._duration_skip(item) for item in items]
        todo = [item for item, skip in zip(items, pre, strict=True) if skip is None]
        judged = list(self._score(todo)) if todo else []
        if len(judged) != len(todo):
            raise ContractError(
                f"metric {self.name!r} returned {len(judged)} scores for {len(todo)} items"
            )
        queue = iter(judged)
        results: list[float | Skip] = [skip if skip is not None else next(queue) for skip in pre]
        scores: list[float | None] = []
        reasons: list[str | None] = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Skip):
                scores.append(None)
                reasons.append(result.reason)
                continue
            value = float(result)
            if not math.isfinite(value):
                raise ContractError(f"metric {self.name!r} gave {value} for item {item.id!r}")
            scores.append(value)
            reasons.append(None)
        return scores, reasons

    def score(self, items: Sequence[AudioItem]) -> list[float | None]:
        """Per-utterance scores in item order; None where the item was skipped."""
        return self.score_with_reasons(items)[0]

    def compute(self, predictions: Sequence[Any], references: Sequence[Any] = ()) -> MetricValue:
        """The :class:`~benchmark.api.Metric` contract: ``predictions`` are AudioItems.

        Raises whatever the judge raises; :func:`evaluate_metric` is the path that records
        failures and unavailability instead.
        """
        if references:
            raise ContractError(
                f"metric {self.name!r} reads references from its AudioItems; pass none"
            )
        judge = self.judge()
        scores, reasons = self.score_with_reasons(list(predictions))
        return aggregate(self.name, self.direction, scores, judge, reasons)


@dataclass(frozen=True)
class AudioMetricValue(MetricValue):
    """A :class:`~benchmark.api.MetricValue` that also counts the utterances skipped.

    ``n`` is the number of utterances scored; ``skipped`` those the judge could not score,
    by reason in ``skipped_reasons``.
    """

    skipped: int = 0
    skipped_reasons: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (MetricValue's, plus the skipped counts)."""
        return {
            **super().to_dict(),
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
        }


def aggregate(
    name: str,
    direction: Direction,
    per_utterance_scores: Sequence[float | None],
    judge: Mapping[str, Any] | None,
    reasons: Sequence[str | None] | None = None,
) -> AudioMetricValue:
    """Mean of the scored utterances with a 95 % percentile bootstrap CI.

    Args:
        name: metric name.
        direction: ``higher`` or ``lower``.
        per_utterance_scores: one score per utterance, None where it was skipped.
        judge: the judge's identity dict.
        reasons: skip reasons aligned with the scores (None entries where scored); without
            them every skipped utterance counts under ``"skipped"``.

    Returns:
        ``ok`` with ``n`` scored and ``skipped`` counts; ``unavailable`` when no utterance
        was scored (the reason lists why). The CI is omitted for a single utterance.
    """
    if reasons is not None and len(reasons) != len(per_utterance_scores):
        raise ValueError("aggregate: reasons must align with the scores")
    counts: Counter[str] = Counter()
    values = []
    for index, score in enumerate(per_utterance_scores):
        if score is None:
            reason = reasons[index] if reasons is not None else None
            counts[reason or "skipped"] += 1
        else:
            values.append(float(score))
    skipped = sum(counts.values())
    judge = dict(judge) if judge else None
    if not values:
        why = "; ".join(f"{count} x {reason}" for reason, count in counts.most_common())
        reason = f"no utterance could be scored ({why})" if why else "no utterance to score"
        return AudioMetricValue(
            name=name,
            direction=direction,
            value=None,
            n=0,
            judge=judge,
            status="unavailable",
            reason=reason,
            skipped=skipped,
            skipped_reasons=dict(counts),
        )
    array = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_mean_ci(array) if array.size > 1 else (None, None)
    return AudioMetricValue(
        name=name,
        direction=direction,
        value=float(array.mean()),
        ci_low=low,
        ci_high=high,
        ci_level=DEFAULT_LEVEL if low is not None else None,
        n=int(array.size),
        judge=judge,
        skipped=skipped,
        skipped_reasons=dict(counts),
    )


def metric_failure(
    metric: AudioMetric, exc: BaseException, judge: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The record of a metric that raised: status ``failed``, its error, no value.

    The keys are those of :meth:`MetricValue.to_dict <benchmark.api.MetricValue.to_dict>`
    plus ``name`` and ``error`` (``type``, one-line ``message``, ``traceback``).
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    return {
        "name": metric.name,
        "value": None,
        "direction": metric.direction,
        "ci": None,
        "n": None,
        "judge": dict(judge) if judge else None,
        "status": "failed",
        "reason": f"{type(exc).__name__}: {message}"[:500],
        "error": {
            "type": type(exc).__name__,
            "message": message,
            "traceback": "".join(traceback.format_exception(exc))[-4000:],
        },
    }


def evaluate_metric(
    metric: AudioMetric,
    items: Sequence[AudioItem],
    scorer: Callable[[Sequence[AudioItem]], tuple[list[float | None], list[str | None]]]
    | None = None,
) -> tuple[MetricValue | dict[str, Any], list[float | None]]:
    """Score ``items`` with ``metric``, recording unavailability and failure, never raising.

    Args:
        metric: the metric.
        items: the utterances.
        scorer: what computes the per-item scores and skip reasons (default
            ``metric.score_with_reasons``; a
            :class:`~benchmark.pipeline.score_cache.ScoreCache` scorer reuses earlier ones).

    Returns:
        ``(result, per-utterance scores)``. ``result`` is an :class:`AudioMetricValue`
        (``ok``, or ``unavailable`` when nothing could be scored), a
        :meth:`MetricValue.unavailable <benchmark.api.MetricValue.unavailable>` when the
        judge is missing (:class:`~benchmark.errors.JudgeUnavailableError`), or the
        :func:`metric_failure` dict when the metric raised anything else. The scores are one
        per item (None where skipped); all None when the metric is unavailable or failed.
    """
    items = list(items)
    none: list[float | None] = [None] * len(items)
    judge: dict[str, Any] | None = None
    try:
        judge = metric.judge()
        scores, reasons = (scorer or metric.score_with_reasons)(items)
    except JudgeUnavailableError as exc:
        reason = " ".join(str(exc).split())
        log.warning("metric %s unavailable: %s", metric.name, reason)
        return MetricValue.unavailable(metric.name, metric.direction, reason), none
    except Exception as exc:  # a metric that raises is recorded as failed, the run goes on
        log.error("metric %s failed: %s: %s", metric.name, type(exc).__name__, exc)
        return metric_failure(metric, exc, judge), none
    return aggregate(metric.name, metric.direction, scores, judge, reasons), scores

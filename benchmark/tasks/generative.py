"""What the built-in generative tasks share: their metric list, main metric and references.

A generative task (:class:`benchmark.api.GenerativeTask`) returns tokens; the harness decodes
and scores them (:mod:`benchmark.pipeline.generative_steps`). Its card names the metrics
(``metrics``, metric registry names), the one the leaderboard ranks on (``main_metric``) and,
optionally, judge weights per metric (``judge_weights``: ``{metric: {path: ...}}``, for a
UTMOS checkpoint on disk, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.api import GeneratedUtterance, GenerativeTask, ReferenceAudio, TaskInfo
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

#: The audio metrics every built-in generative task scores by default (DASB's set plus
#: PESQ / STOI where a clean reference exists).
DEFAULT_METRICS: tuple[str, ...] = (
    "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "dwer", "dcer",
    "speaker_similarity", "utmos",
)  # fmt: skip
INTRUSIVE_METRICS: tuple[str, ...] = ("pesq", "stoi")


class BuiltinGenerativeTask(GenerativeTask):
    """Checks and stores the card's metric settings.

    Args:
        name: task name (from the card).
        kind: task family (``enhancement``, ``resynthesis``, ``tts``).
        corpus: corpus recipe.
        metrics: metric registry names scored on the decoded audio.
        main_metric: one of ``metrics``.
        judge_weights: ``{metric: weights}`` handed to a metric's judge (``{path: ...}`` or
            ``{hub, revision}``), or None for each judge's default.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        corpus: str,
        metrics: Sequence[str],
        main_metric: str,
        judge_weights: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        metrics = tuple(metrics)
        if not metrics or any(not isinstance(m, str) for m in metrics):
            raise ValueError(f"metrics must be a non-empty list of metric names, got {metrics!r}")
        if main_metric not in metrics:
            raise ValueError(f"main_metric {main_metric!r} is not in metrics {list(metrics)}")
        unknown = set(judge_weights or {}) - set(metrics)
        if unknown:
            raise ValueError(f"judge_weights names metrics not scored: {sorted(unknown)}")
        self.metrics = metrics
        self.judge_weights = {k: dict(v) for k, v in (judge_weights or {}).items()}
        self.info = TaskInfo(
            name=name, kind=kind, main_metric=main_metric, corpus=corpus, needs_decode=True
        )


def own_references(manifest: Manifest) -> dict[str, ReferenceAudio]:
    """``{id: ReferenceAudio}`` of each clean utterance judged against itself: its own file
    as audio, reference and speaker audio (DASB scores speaker similarity against the clean
    reference of the same utterance), its text; in manifest order."""
    if not len(manifest):
        raise DataError(f"{manifest.source}: no test utterances to generate")
    out = {}
    for utterance in manifest:
        path = Path(manifest.audio_path(utterance)).resolve()
        out[utterance.id] = ReferenceAudio(utterance.id, path, path, utterance.text, path)
    return out


def utterance_for(reference: ReferenceAudio, tokens: Any) -> GeneratedUtterance:
    """The generated utterance judged against what ``reference`` is judged against."""
    return GeneratedUtterance(
        reference.id, tokens, reference_audio=reference.reference_audio,
        reference_text=reference.reference_text, speaker_audio=reference.speaker_audio,
    )  # fmt: skip


def clean_references(split: TokenSplit) -> dict[str, GeneratedUtterance]:
    """``{id: GeneratedUtterance}`` of :func:`own_references`, the tokens being the split's
    cached tokens ``[N, K]`` (copies)."""
    references = own_references(split.manifest)
    return {
        utt_id: utterance_for(references[utt_id], np.array(tokens))
        for utt_id, tokens in ((u.id, t) for u, t in split.items())
    }

"""What the built-in generative tasks share: their metric list, main metric and references.

A generative task (:class:`benchmark.api.GenerativeTask`) returns tokens; the harness decodes
and scores them (:mod:`benchmark.pipeline.generative_steps`). Its card names the metrics
(``metrics``, metric registry names), the one the leaderboard ranks on (``main_metric``) and,
optionally, judge weights per metric (``judge_weights``: ``{metric: {path: ...}}``, for a
UTMOS checkpoint on disk, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.api import GeneratedUtterance, GenerativeTask, TaskInfo
from benchmark.cache import TokenSplit
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


def clean_references(split: TokenSplit) -> dict[str, GeneratedUtterance]:
    """``{id: GeneratedUtterance}`` with each utterance's own file as reference and speaker
    audio (DASB scores speaker similarity against the clean reference of the same
    utterance); the tokens are the split's cached tokens ``[N, K]`` (copies)."""
    manifest = split.manifest
    if not len(manifest):
        raise DataError(f"{manifest.source}: no test utterances to generate")
    out = {}
    for utterance, tokens in split.items():
        path = manifest.audio_path(utterance)
        out[utterance.id] = GeneratedUtterance(
            utterance.id, np.array(tokens), reference_audio=path, reference_text=utterance.text,
            speaker_audio=path,
        )  # fmt: skip
    return out

"""Per-utterance judge scores remembered by content, so reference audio is judged once.

The reference rows of a generative record (the clean recordings, the noisy input) are the
same files for every tokenizer, and DNSMOS alone costs seconds per file on a CPU. A score is
stored under ``<workdir>/scores/<metric key>/<item key>.json``:

- the **metric key** is a fingerprint of everything that can change a score: the metric's
  name, its code identity (the planner's, covering its module and package), its arguments,
  the key of the judge step it reads (a mini judge), the judge's own identity
  (:meth:`~benchmark.metrics.audio_base.AudioMetric.judge`: package version, model sha256,
  pinned revision), the library versions (onnxruntime, librosa, torch: the planner's
  :func:`~benchmark.pipeline.keys.library_versions`) and this cache's format;
- the **item key** is a fingerprint of the item's content: the size and sha256 of its audio,
  reference audio and speaker audio, and its reference text (never its path: the same bytes
  elsewhere hit, other bytes at the same path miss).

Each entry holds the score or the skip reason, written atomically; entries of concurrent
steps never collide (one file each). Concurrent steps that need the same unseen items share
the work: an item is judged under its own lock, an item another process is judging is left
for last and then read from the cache (mini: the resynthesis record's audio is the
enhancement record's ceiling row, and the two jobs may run side by side). A metric that
raises or is unavailable stores nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.metrics.audio_base import AudioItem, AudioMetric
from benchmark.pipeline.keys import AudioIdentityCache, fingerprint, library_versions

log = logging.getLogger(__name__)

#: Bumped when an entry's layout or meaning changes.
FORMAT = 1


class ScoreCache:
    """Scores of one metric (one key) on the items it judged before, by content."""

    def __init__(self, folder: Path, audio_ids: AudioIdentityCache, metric_key: str) -> None:
        self.folder = Path(folder) / metric_key
        self.audio_ids = audio_ids
        self.hits = 0
        self.misses = 0

    @staticmethod
    def metric_key(metric: AudioMetric, metric_spec: dict[str, Any],
                   judge_step_key: str | None) -> str:  # fmt: skip
        """The fingerprint of everything that changes the metric's scores (see the module).

        Raises:
            JudgeUnavailableError: the metric's judge is missing (nothing can be cached).
        """
        args = {k: v for k, v in metric_spec["args"].items() if k != "mini_judge"}
        return fingerprint({"format": FORMAT, "name": metric_spec["name"],
                            "code": metric_spec["code"], "args": args,
                            "judge_step": judge_step_key, "judge": metric.judge(),
                            "libraries": library_versions()})  # fmt: skip

    def item_key(self, item: AudioItem) -> str:
        """The fingerprint of an item's audio bytes and reference text."""

        def audio(path: Path | None) -> str | None:
            return None if path is None else self.audio_ids.identity(Path(path))

        return fingerprint({"audio": audio(item.audio),
                            "reference_audio": audio(item.reference_audio),
                            "reference_text": item.reference_text,
                            "speaker_audio": audio(item.speaker_audio)})  # fmt: skip

    def scorer(self, metric: AudioMetric):
        """A drop-in for ``metric.score_with_reasons`` that judges only unseen items."""

        def score(items: Sequence[AudioItem]) -> tuple[list[float | None], list[str | None]]:
            return self.score_with_reasons(metric, items)

        return score

    def score_with_reasons(
        self, metric: AudioMetric, items: Sequence[AudioItem]
    ) -> tuple[list[float | None], list[str | None]]:
        """Per-item scores (None = skipped) and skip reasons, in item order; the items not
        in the cache are judged by ``metric`` (one call per item, under the item's lock)
        and stored."""
        from benchmark.pipeline.store import atomic_write_json, output_lock, try_lock

        keys = [self.item_key(item) for item in items]
        found: dict[int, dict[str, Any]] = {}
        for index, key in enumerate(keys):
            entry = self._read(key)
            if entry is not None:
                found[index] = entry
        judged = 0

        def judge(index: int) -> None:
            nonlocal judged
            entry = self._read(keys[index])  # written while this process waited or looked
            if entry is None:
                scores, reasons = metric.score_with_reasons([items[index]])
                entry = {"score": scores[0], "reason": reasons[0]}
                atomic_write_json(self.folder / f"{keys[index]}.json", entry)
                judged += 1
            found[index] = entry

        busy = []
        for index in [i for i in range(len(items)) if i not in found]:
            with try_lock(self.folder / f"{keys[index]}.json") as mine:
                if mine:
                    judge(index)
                else:
                    busy.append(index)
        for index in busy:  # another process is judging them: wait, then read (or judge)
            with output_lock(self.folder / f"{keys[index]}.json", f"{metric.name} scores"):
                judge(index)
        self.hits += len(items) - judged
        self.misses += judged
        self.audio_ids.save()
        return ([found[i]["score"] for i in range(len(items))],
                [found[i]["reason"] for i in range(len(items))])  # fmt: skip

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("score cache entry %s is unreadable; judging again", path)
            return None
        score = entry.get("score")
        if not (score is None or isinstance(score, int | float)) or (
            score is None and not entry.get("reason")
        ):
            log.warning("score cache entry %s is malformed; judging again", path)
            return None
        return entry

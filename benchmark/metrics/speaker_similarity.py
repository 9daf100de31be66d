"""Speaker similarity: cosine of speaker embeddings of the generated and the speaker audio.

Each utterance's score is the cosine similarity (-1..1) of the embedding of the generated
audio and that of the reference speaker's audio (the clean reference itself for
enhancement and resynthesis, another utterance of the target speaker for TTS); the
aggregate is their mean with a bootstrap CI.

Embedders: WavLM x-vectors (``full``; default ``microsoft/wavlm-base-sv`` at a pinned
revision, see :mod:`benchmark.metrics.judges.wavlm_sv`) or the harness-trained mini
ECAPA-TDNN (``mini_judge``: its folder, see :mod:`benchmark.metrics.judges.mini_speaker`).
Skipped: audio (generated or speaker) under 0.5 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.data.audio import load_audio
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip


class SpeakerSimilarity(AudioMetric):
    """Mean cosine similarity of speaker embeddings (higher is better, at most 1).

    Args:
        weights: WavLM x-vector weights (``{"hub", "revision"}`` or ``{"path"}``); default
            ``microsoft/wavlm-base-sv`` at its pinned revision.
        mini_judge: folder of a trained mini speaker judge, used instead of WavLM.
        device: torch device.
    """

    name = "speaker_similarity"
    direction = "higher"
    needs = ("audio", "speaker_audio")
    min_seconds = 0.5

    def __init__(
        self,
        weights: Mapping[str, Any] | None = None,
        mini_judge: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        if weights and mini_judge:
            raise ValueError(
                "speaker_similarity: give WavLM weights or a mini_judge folder, not both"
            )
        self.weights, self.mini_judge, self.device = weights, mini_judge, device
        self._embedder: Any = None

    def embedder(self) -> Any:
        """The loaded embedder (loaded once). Raises JudgeUnavailableError."""
        if self._embedder is None:
            if self.mini_judge:
                from benchmark.metrics.judges.mini_speaker import load_mini_speaker_judge

                self._embedder = load_mini_speaker_judge(Path(self.mini_judge), self.device)
            else:
                from benchmark.metrics.judges.wavlm_sv import WavLMSpeakerEmbedder

                self._embedder = WavLMSpeakerEmbedder(self.weights, self.device)
        return self._embedder

    def judge(self) -> dict[str, Any]:
        return {**self.embedder().identity(), "score": "cosine similarity"}

    def embed_files(self, paths: Sequence[Path]) -> dict[Path, torch.Tensor]:
        """Unit-norm embedding ``[D]`` of each distinct file."""
        embedder = self.embedder()
        distinct = list(dict.fromkeys(Path(p) for p in paths))
        out: dict[Path, torch.Tensor] = {}
        for path in distinct:
            out[path] = embedder.embed([load_audio(path, embedder.sample_rate)])[0]
        return out

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        embeddings = self.embed_files([p for i in items for p in (i.audio, i.speaker_audio)])
        return [
            float(torch.dot(embeddings[Path(i.audio)], embeddings[Path(i.speaker_audio)]))
            for i in items
        ]

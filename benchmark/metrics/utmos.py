"""UTMOS: predicted naturalness MOS (1-5) of the generated audio, non-intrusive.

The judge is the UTMOS22 strong learner (:mod:`benchmark.metrics.judges.utmos`), from a
local checkpoint (``weights: {path: ...}``) or the pinned hub copy when it is cached or
the hub is reachable. Without the checkpoint the metric is unavailable with the reason.
Skipped: audio under 0.5 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.data.audio import load_audio
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip


class UTMOS(AudioMetric):
    """Mean UTMOS of the generated audio (higher is better).

    Args:
        weights: ``{"path": file or folder}`` or ``{"hub", "revision"}``; default the
            pinned ``Blinorot/UTMOS-PyTorch`` checkpoint.
        device: torch device.
    """

    name = "utmos"
    direction = "higher"
    needs = ("audio",)
    min_seconds = 0.5

    def __init__(self, weights: Mapping[str, Any] | None = None, device: str = "cpu") -> None:
        self.weights, self.device = weights, device
        self._judge: Any = None

    def model(self) -> Any:
        """The loaded UTMOS judge (loaded once). Raises JudgeUnavailableError."""
        if self._judge is None:
            from benchmark.metrics.judges.utmos import UTMOSJudge

            self._judge = UTMOSJudge(self.weights, self.device)
        return self._judge

    def judge(self) -> dict[str, Any]:
        return self.model().identity()

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        model = self.model()
        return [model.score([load_audio(i.audio, model.sample_rate)])[0] for i in items]

"""Classification metrics (speaker identification, emotion / style recognition)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.api import Metric, MetricValue, UtteranceScores
from benchmark.metrics.bootstrap import DEFAULT_LEVEL, bootstrap_mean_ci


class Accuracy(Metric):
    """Fraction of predictions equal to the reference label, in %, with a bootstrap CI."""

    name = "accuracy"
    direction = "higher"

    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        ids: Sequence[str] | None = None,
    ) -> MetricValue:
        if len(predictions) != len(references) or not references:
            raise ValueError(
                f"accuracy needs as many predictions as references (>0), got "
                f"{len(predictions)} and {len(references)}"
            )
        correct = np.asarray([p == r for p, r in zip(predictions, references, strict=True)])
        low, high = bootstrap_mean_ci(correct.astype(np.float64))
        items = None
        if ids is not None:
            items = UtteranceScores(
                list(ids), correct.astype(float).tolist(), [1.0] * len(ids), scale=100.0
            )
        return MetricValue(
            name=self.name,
            direction="higher",
            value=100.0 * float(correct.mean()),
            ci_low=100.0 * low,
            ci_high=100.0 * high,
            ci_level=DEFAULT_LEVEL,
            n=len(references),
            per_utterance=items,
        )

"""Percentile bootstrap confidence intervals over utterances.

Corpus-level metrics (WER = total errors / total reference words) are ratios of sums, so the
bootstrap resamples utterances with replacement and recomputes the ratio, which keeps the
weighting of long utterances that a mean of per-utterance rates would lose.
"""

from __future__ import annotations

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


def bootstrap_ratio_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``sum(num) / sum(den)`` under resampling of items.

    Args:
        numerators: ``[U]`` per-item numerators (e.g. edit operations).
        denominators: ``[U]`` per-item denominators (e.g. reference words), positive sum.
        level: coverage of the interval (0.95 for 95 %).
        resamples: number of bootstrap resamples.
        seed: seed of the resampling, so intervals are reproducible.

    Returns:
        ``(low, high)`` of the ratio.
    """
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    if numerators.shape != denominators.shape or numerators.ndim != 1 or len(numerators) == 0:
        raise ValueError(
            f"bootstrap needs two equal-length non-empty 1-D arrays, got {numerators.shape} "
            f"and {denominators.shape}"
        )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(numerators), size=(resamples, len(numerators)))
    num = numerators[picks].sum(axis=1)
    den = denominators[picks].sum(axis=1)
    ratios = num[den > 0] / den[den > 0]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: np.ndarray,
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the mean of ``values`` ``[U]`` under resampling of items."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap_ratio_ci(values, np.ones_like(values), level, resamples, seed)

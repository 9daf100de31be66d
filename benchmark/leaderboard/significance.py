"""Paired bootstrap over per-utterance scores: is one tokenizer's metric different from another's?

Both tokenizers were scored on the same test utterances, so utterances are resampled
*together* (the same draw for both) and the metric is recomputed exactly as published,
``scale * sum(num) / sum(den)`` over the drawn utterances (a corpus ratio such as WER keeps
its weighting). The difference is significant when its percentile interval at ``level``
excludes zero; the two-sided p-value is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.pipeline.records import UtteranceScores

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
#: Resamples drawn at a time (bounds memory: chunk * utterances indices).
_CHUNK = 200


@dataclass(frozen=True)
class PairedTest:
    """Result of one paired bootstrap of ``a - b``.

    Attributes:
        difference: ``value(a) - value(b)`` on the common utterances.
        ci_low, ci_high: percentile interval of the difference at ``level``.
        p_value: two-sided bootstrap p-value (share of resampled differences on the other
            side of zero, doubled, capped at 1).
        significant: the interval excludes zero.
        n: common utterances.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    n: int
    level: float


def _value(num: np.ndarray, den: np.ndarray, scale: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return scale * num / den


def pool_seeds(runs: Sequence[UtteranceScores]) -> UtteranceScores | None:
    """One set of per-utterance scores from several seeds: per utterance, the mean of each
    seed's numerator and denominator, over the utterances every seed scored.

    With equal denominators across seeds (the same test set), the pooled metric is the mean
    of the seeds' metrics. Returns None when the seeds share no utterance or use different
    scales.
    """
    if not runs:
        return None
    if len({float(r.scale) for r in runs}) != 1:
        return None
    common = set(runs[0].ids)
    for run in runs[1:]:
        common &= set(run.ids)
    ids = [i for i in runs[0].ids if i in common]
    if not ids:
        return None
    num = np.zeros(len(ids))
    den = np.zeros(len(ids))
    for run in runs:
        index = {utt: k for k, utt in enumerate(run.ids)}
        rows = [index[i] for i in ids]
        num += np.asarray(run.num, dtype=np.float64)[rows]
        den += np.asarray(run.den, dtype=np.float64)[rows]
    return UtteranceScores(
        ids, (num / len(runs)).tolist(), (den / len(runs)).tolist(), runs[0].scale
    )


def paired_bootstrap(
    a: UtteranceScores,
    b: UtteranceScores,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> PairedTest | None:
    """Paired bootstrap of ``value(a) - value(b)`` over the utterances both scored.

    Args:
        a, b: per-utterance scores of two tokenizers on one test set (same metric).
        resamples: bootstrap draws.
        level: coverage of the difference's interval.
        seed: seed of the draws (so a build is reproducible).

    Returns:
        The test, or None when fewer than two utterances are common or the scales differ
        (no paired test is possible).
    """
    if float(a.scale) != float(b.scale):
        return None
    index_b = {utt: k for k, utt in enumerate(b.ids)}
    pairs = [(k, index_b[utt]) for k, utt in enumerate(a.ids) if utt in index_b]
    if len(pairs) < 2:
        return None
    rows_a, rows_b = (np.asarray(x) for x in zip(*pairs, strict=True))
    num_a = np.asarray(a.num, dtype=np.float64)[rows_a]
    den_a = np.asarray(a.den, dtype=np.float64)[rows_a]
    num_b = np.asarray(b.num, dtype=np.float64)[rows_b]
    den_b = np.asarray(b.den, dtype=np.float64)[rows_b]
    if den_a.sum() <= 0 or den_b.sum() <= 0:
        return None
    scale = float(a.scale)
    observed = float(
        _value(num_a.sum(), den_a.sum(), scale) - _value(num_b.sum(), den_b.sum(), scale)
    )
    rng = np.random.default_rng(seed)
    count = len(pairs)
    diffs = []
    for start in range(0, resamples, _CHUNK):
        picks = rng.integers(0, count, size=(min(_CHUNK, resamples - start), count))
        value_a = _value(num_a[picks].sum(axis=1), den_a[picks].sum(axis=1), scale)
        value_b = _value(num_b[picks].sum(axis=1), den_b[picks].sum(axis=1), scale)
        diffs.append(value_a - value_b)
    diff = np.concatenate(diffs)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diff, [alpha, 1.0 - alpha])
    p_value = min(1.0, 2.0 * min(float(np.mean(diff <= 0)), float(np.mean(diff >= 0))))
    significant = bool(low > 0 or high < 0)
    return PairedTest(observed, float(low), float(high), p_value, significant, count, level)

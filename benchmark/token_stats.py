"""Token statistics of a tokenizer on its cached test sets, stored as ``token-stats`` records.

- **Codebook usage and entropy**, from the cached tokens alone (no encoding): per codebook,
  the share of its ``C_k`` ids that occur at least once, the entropy of the ids' empirical
  distribution (bits) and that entropy over ``log2(C_k)`` (normalised entropy: 100 % when
  every id is equally frequent).
- **Token stability**: the share of ids unchanged (frame by frame, every codebook) when the
  input is delayed by one sample, and when white noise is added at ``snr_db`` (30 dB). This
  one needs encoding: ``stability_utterances`` (20) test utterances are encoded three times
  (as they are, delayed, noisy), batched alike, so batching cannot differ between them. That
  is the only extra encoding, stated in the record's config.

The record lives at ``<results>/<preset>/<tokenizer>/token-stats/seed0.json``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.metrics.bootstrap import bootstrap_ratio_ci
from benchmark.pipeline.keys import key_of
from benchmark.pipeline.records import MetricRecord, ResultRecord, UtteranceScores

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from benchmark.api import Tokenizer
    from benchmark.cache import TokenSplit

log = logging.getLogger(__name__)

STATS_TASK = "token-stats"
STATS_VERSION = 1
MAIN_METRIC = "normalized_entropy"

#: Metric name -> what it measures (all directions ``higher``; none is ranked).
STATS_METRICS: dict[str, str] = {
    "codebook_usage": "share of each codebook's ids used on the test sets, mean over codebooks (%)",
    "entropy_bits": "entropy of each codebook's id distribution, mean over codebooks (bits)",
    "normalized_entropy": "entropy / log2(codebook size), mean over codebooks (%)",
    "stability_shift": "ids unchanged when the input is delayed by one sample (%)",
    "stability_noise": "ids unchanged when white noise is added at the stated SNR (%)",
}


class TokenStatsError(BenchmarkError):
    """Token statistics asked of something that has no tokens (names it)."""


@dataclass(frozen=True)
class StatsSettings:
    """How the statistics are computed (all of it is part of the step's key).

    Attributes:
        stability_utterances: test utterances re-encoded for the stability measures.
        snr_db: signal-to-noise ratio of the added white noise, in dB.
        shift_samples: delay of the shifted input, in samples.
        seed: seed of the noise and of the choice of utterances.
        batch_size: utterances per encode call in the stability measures.
    """

    stability_utterances: int = 20
    snr_db: float = 30.0
    shift_samples: int = 1
    seed: int = 0
    batch_size: int = 8


def codebook_counts(split: TokenSplit, chunk_frames: int = 1 << 20) -> list[np.ndarray]:
    """Occurrences of every id of every codebook over the cached frames of ``split``.

    Args:
        split: cached tokens, ``data [frames, K]``.
        chunk_frames: frames read from the memory map at a time.

    Returns:
        ``K`` arrays, the ``k``-th of length ``C_k``.
    """
    sizes = split.codebook_sizes
    if split.data.ndim != 2:
        raise TokenStatsError(
            f"{split.path}: cached features, not tokens (a continuous reference has no ids)"
        )
    counts = [np.zeros(size, dtype=np.int64) for size in sizes]
    for start in range(0, split.data.shape[0], chunk_frames):
        block = np.asarray(split.data[start : start + chunk_frames])
        for k, size in enumerate(sizes):
            counts[k] += np.bincount(block[:, k].astype(np.int64), minlength=size)[:size]
    return counts


def usage_entropy(counts: Sequence[np.ndarray]) -> list[dict[str, float]]:
    """Per codebook: ids used, usage (%), entropy (bits) and normalised entropy (%).

    Args:
        counts: per codebook, occurrences of each id (length ``C_k``).
    """
    rows = []
    for k, count in enumerate(counts):
        total = int(count.sum())
        size = len(count)
        used = int((count > 0).sum())
        if total:
            p = count[count > 0] / total
            entropy = float(-(p * np.log2(p)).sum())
        else:
            entropy = 0.0
        rows.append(
            {
                "codebook": k,
                "size": size,
                "frames": total,
                "used": used,
                "usage": 100.0 * used / size,
                "entropy_bits": entropy,
                "normalized_entropy": 100.0 * entropy / math.log2(size),
            }
        )
    return rows


def _delayed(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """``wave`` delayed by ``samples``: zeros in front, the same length."""
    import torch

    return torch.cat([wave.new_zeros(samples), wave[:-samples]]) if samples else wave.clone()


def _noisy(wave: torch.Tensor, snr_db: float, generator: torch.Generator) -> torch.Tensor:
    """``wave`` plus white Gaussian noise at ``snr_db`` relative to its mean power."""
    import torch

    power = float(wave.pow(2).mean())
    noise = torch.randn(wave.shape, generator=generator) * math.sqrt(power / 10 ** (snr_db / 10))
    return wave + noise


def _encode_all(
    tokenizer: Tokenizer, waves: Sequence[torch.Tensor], batch_size: int
) -> list[np.ndarray]:
    """``[N_i, K]`` tokens of each wave, encoded in batches of ``batch_size`` in order."""
    import torch

    from benchmark.data.audio import batch_audio

    out: list[np.ndarray] = []
    for start in range(0, len(waves), batch_size):
        wav, lengths = batch_audio(list(waves[start : start + batch_size]))
        with torch.inference_mode():
            tokens, token_lengths = tokenizer.encode(wav, lengths)
        tokens = tokens.detach().to("cpu", torch.int64)
        for row, n in enumerate(token_lengths.tolist()):
            out.append(tokens[row, : int(n)].numpy())
    return out


def token_stability(
    tokenizer: Tokenizer,
    waves: Mapping[str, torch.Tensor],
    settings: StatsSettings = StatsSettings(),
    codebooks: int | None = None,
) -> dict[str, Any]:
    """Share of ids unchanged under a one-sample delay and under white noise.

    Args:
        tokenizer: the tokenizer whose tokens are cached.
        waves: utterance id -> ``[T]`` float waveform at ``tokenizer.info.sample_rate``.
        settings: delay, SNR, seed, batch size.
        codebooks: compare only the first ``codebooks`` codebooks (a variant that keeps a
            prefix of a larger extraction); None compares all.

    Returns:
        ``{"shift": UtteranceScores, "noise": UtteranceScores, "per_codebook": {"shift":
        [%...], "noise": [%...]}}``; each utterance's numerator is the count of unchanged ids
        over the frames both encodings have, its denominator that count of ids, scale 100.
    """
    import torch

    if tokenizer.info.is_continuous:
        raise TokenStatsError(
            f"{tokenizer.info.name!r} is a continuous reference: it has no token ids"
        )
    ids = list(waves)
    originals = [waves[i].to(torch.float32) for i in ids]
    generator = torch.Generator().manual_seed(settings.seed)
    variants = {
        "shift": [_delayed(w, settings.shift_samples) for w in originals],
        "noise": [_noisy(w, settings.snr_db, generator) for w in originals],
    }
    base = _encode_all(tokenizer, originals, settings.batch_size)
    k = codebooks or tokenizer.info.num_codebooks
    result: dict[str, Any] = {"per_codebook": {}}
    for name, inputs in variants.items():
        encoded = _encode_all(tokenizer, inputs, settings.batch_size)
        num, den = [], []
        same_k = np.zeros(k)
        frames_k = 0
        for a, b in zip(base, encoded, strict=True):
            n = min(len(a), len(b))
            equal = a[:n, :k] == b[:n, :k]
            num.append(float(equal.sum()))
            den.append(float(n * k))
            same_k += equal.sum(axis=0)
            frames_k += n
        result[name] = UtteranceScores(ids, num, den, scale=100.0)
        result["per_codebook"][name] = (100.0 * same_k / max(frames_k, 1)).tolist()
    return result


def _pick(splits: Mapping[str, TokenSplit], count: int) -> list[tuple[str, Any, Any]]:
    """``count`` utterances spread evenly over the splits' utterances (sorted, so stable)."""
    pool = [
        (name, split.manifest, utterance)
        for name, split in sorted(splits.items())
        for utterance in sorted(split.manifest, key=lambda u: u.id)
    ]
    if not pool:
        return []
    picks = np.unique(np.linspace(0, len(pool) - 1, num=min(count, len(pool))).round().astype(int))
    return [pool[i] for i in picks]


def token_stats(
    tokenizer: Tokenizer,
    splits: Mapping[str, TokenSplit],
    settings: StatsSettings = StatsSettings(),
) -> tuple[dict[str, MetricRecord], dict[str, UtteranceScores], dict[str, Any]]:
    """Usage, entropy and stability of ``tokenizer``'s tokens on the cached test ``splits``.

    Args:
        tokenizer: the tokenizer that produced the cached tokens (for the stability encodes).
        splits: name (e.g. ``asr/test``) -> cached test split; counts are pooled over them.
        settings: how the stability is measured.

    Returns:
        ``(metrics, per_utterance, extras)``: metrics named as in :data:`STATS_METRICS`,
        per-utterance stability scores, and extras with ``per_codebook`` rows and the
        per-split usage.

    Raises:
        TokenStatsError: no splits, or a continuous reference.
    """
    from benchmark.data.audio import load_audio

    if not splits:
        raise TokenStatsError("token statistics need at least one cached test split")
    per_split: dict[str, list[dict[str, float]]] = {}
    pooled: list[np.ndarray] | None = None
    for name, split in sorted(splits.items()):
        counts = codebook_counts(split)
        per_split[name] = usage_entropy(counts)
        pooled = counts if pooled is None else [a + b for a, b in zip(pooled, counts, strict=True)]
    rows = usage_entropy(pooled or [])
    frames = int(sum(r["frames"] for r in rows) / max(len(rows), 1))
    judge = {"name": "benchmark.token_stats", "version": STATS_VERSION}
    metrics = {
        name: MetricRecord(
            float(np.mean([r[key] for r in rows])), "higher", n=frames, judge=judge, split="test"
        )
        for name, key in (
            ("codebook_usage", "usage"),
            ("entropy_bits", "entropy_bits"),
            ("normalized_entropy", "normalized_entropy"),
        )
    }
    picked = _pick(splits, settings.stability_utterances)
    rate = tokenizer.info.sample_rate
    waves = {
        f"{name}/{u.id}": load_audio(manifest.audio_path(u), rate) for name, manifest, u in picked
    }
    k = len(next(iter(splits.values())).codebook_sizes)
    stability = token_stability(tokenizer, waves, settings, codebooks=k)
    per_utterance = {}
    stab_judge = {**judge, "snr_db": settings.snr_db, "shift_samples": settings.shift_samples}
    for name in ("shift", "noise"):
        scores: UtteranceScores = stability[name]
        num, den = np.asarray(scores.num), np.asarray(scores.den)
        value = 100.0 * num.sum() / den.sum()
        low, high = bootstrap_ratio_ci(num, den, seed=settings.seed)
        metrics[f"stability_{name}"] = MetricRecord(
            float(value),
            "higher",
            ci={"low": 100 * low, "high": 100 * high, "level": 0.95},
            n=len(scores.ids),
            judge=stab_judge,
            split="test",
        )
        per_utterance[f"stability_{name}"] = scores
    for row, shift, noise in zip(
        rows, stability["per_codebook"]["shift"], stability["per_codebook"]["noise"], strict=True
    ):
        row["stability_shift"] = shift
        row["stability_noise"] = noise
    extras = {"per_codebook": rows, "per_split": per_split, "settings": asdict(settings)}
    return metrics, per_utterance, extras


def stats_key_components(
    tokenizer_fp: str, manifest_fps: Mapping[str, str], settings: StatsSettings
) -> dict[str, Any]:
    """The inputs of a token-stats step's key.

    Args:
        tokenizer_fp: fingerprint of the tokens (the token cache's key).
        manifest_fps: split name -> manifest fingerprint of the test sets.
        settings: how stability is measured.
    """
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return {
        "kind": "token-stats",
        "version": STATS_VERSION,
        "tokenizer": tokenizer_fp,
        "manifests": dict(sorted(manifest_fps.items())),
        "settings": asdict(settings),
        "code": code,
    }


def stats_key(tokenizer_fp: str, manifest_fps: Mapping[str, str], settings: StatsSettings) -> str:
    """The token-stats step's key: sha256 of :func:`stats_key_components` (canonical JSON)."""
    return key_of(stats_key_components(tokenizer_fp, manifest_fps, settings))


def token_stats_record(
    tokenizer: Tokenizer,
    tokenizer_name: str,
    preset: str,
    splits: Mapping[str, TokenSplit],
    settings: StatsSettings = StatsSettings(),
    fingerprint: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> ResultRecord:
    """:func:`token_stats` wrapped as a ``token-stats`` :class:`ResultRecord`."""
    started = datetime.now(UTC)
    metrics, per_utterance, extras = token_stats(tokenizer, splits, settings)
    provenance = dict(provenance or {})
    provenance.setdefault("date", started.isoformat(timespec="seconds"))
    return ResultRecord(
        status="ok",
        tokenizer=tokenizer_name,
        task=STATS_TASK,
        seed=0,
        preset=preset,
        fingerprint=fingerprint,
        kind="token-stats",
        metrics=metrics,
        main_metric=MAIN_METRIC,
        per_utterance=per_utterance,
        tokenizer_info=tokenizer.info.to_dict(),
        config={
            "splits": sorted(splits),
            "settings": asdict(settings),
            "extra_encoding": f"{3 * len(per_utterance['stability_shift'].ids)} utterance "
            "encodes (as is, delayed, noisy) for stability; usage and entropy from the cache",
        },
        provenance=provenance,
        timings={"started": started.isoformat(timespec="seconds")},
        extras=extras,
    )

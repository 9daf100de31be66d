"""Hand-made result records for the leaderboard tests, written with ``ResultRecord.to_disk``.

``mini``: tokenizers ``tok-a`` (low tier, description ``<script>alert(1)</script>``),
``tok-b`` (low), ``tok-c`` (medium), the continuous reference ``cont``; tasks ``asr``
(WER, lower; two seeds for tok-a), ``style`` (accuracy, higher; tok-c unavailable) and
``tts`` (UTMOS, higher; tok-b failed, tok-c missing; audio examples); trivial baselines; a
profile, a token-stats and a study record. ``full``: ``tok-a`` and ``tok-z`` on ``asr``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmark.pipeline.records import MetricRecord, ResultRecord, UtteranceScores, record_path

XSS = "<script>alert(1)</script>"
IDS = [f"utt{i:02d}" for i in range(30)]


def info(name: str, bitrate: float | None, description: str = "") -> dict:
    tier = (
        "continuous"
        if bitrate is None
        else ("low" if bitrate <= 1500 else "medium" if bitrate <= 6000 else "high")
    )
    return {
        "name": name,
        "sample_rate": 16000,
        "frame_rate": 50.0,
        "num_codebooks": 2,
        "codebook_sizes": [32, 32],
        "can_decode": True,
        "layers": [3, 7],
        "feature_dim": None,
        "bitrate_bps": bitrate,
        "tier": tier,
        "description": description,
        "display_name": None,
    }


def provenance(device: str = "cpu") -> dict:
    return {
        "code": {"version": "0.1.0", "commit": "0123456789abcdef", "dirty": False},
        "packages": {"torch": "2.11.0"},
        "device": {"device": device},
        "weights": {"hub": "org/model", "revision": "abc123"},
    }


def ratio_metric(
    num, den, scale, direction, judge="jiwer 3.0"
) -> tuple[MetricRecord, UtteranceScores]:
    """A metric and its per-utterance scores, the value being ``scale * sum/sum``."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    value = scale * num.sum() / den.sum()
    metric = MetricRecord(
        float(value),
        direction,
        {"low": value * 0.9, "high": value * 1.1, "level": 0.95},
        len(num),
        {"name": judge},
        split="test",
    )
    return metric, UtteranceScores(list(IDS[: len(num)]), num.tolist(), den.tolist(), scale)


def job(
    root: Path,
    preset: str,
    tokenizer: str,
    task: str,
    seed: int,
    bitrate,
    metrics,
    main: str,
    description: str = "",
    **extra,
) -> ResultRecord:
    """Write an ok job record; ``metrics`` maps name -> (MetricRecord, UtteranceScores)."""
    record = ResultRecord(
        status="ok",
        tokenizer=tokenizer,
        task=task,
        seed=seed,
        preset=preset,
        fingerprint=f"fp-{preset}-{tokenizer}-{task}-{seed}",
        kind="job",
        metrics={k: m for k, (m, _) in metrics.items()},
        main_metric=main,
        per_utterance={k: s for k, (_, s) in metrics.items() if s is not None},
        tokenizer_info=info(tokenizer, bitrate, description),
        conformance={"passed": ["shapes", "bitrate"], "failed": [], "suite_version": 3},
        provenance=provenance(),
        timings={"started": "2026-01-02T03:04:05+00:00"},
        **extra,
    )
    record.to_disk(record_path(root, preset, tokenizer, task, seed))
    return record


def status_record(root, preset, tokenizer, task, status, message, bitrate) -> None:
    record = ResultRecord(
        status=status,
        tokenizer=tokenizer,
        task=task,
        seed=0,
        preset=preset,
        tokenizer_info=info(tokenizer, bitrate),
        provenance=provenance(),
        error={"type": "RuntimeError", "message": message},
    )
    record.to_disk(record_path(root, preset, tokenizer, task, 0))


def wer_parts(errors_per_utt: list[int], words: int = 10):
    return errors_per_utt, [words] * len(errors_per_utt)


def write_wav(path: Path, seconds: float = 0.5, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.2 * np.sin(2 * math.pi * freq * t)).astype(np.float32), 16000)
    return path


def write_fixture_results(root: Path, audio_dir: Path) -> Path:
    """Write the hand-made result set under ``root``; return ``root``."""
    rng = np.random.default_rng(0)
    # asr: tok-a (2 seeds) clearly better than tok-b; tok-c close to tok-b
    a0 = ratio_metric(*wer_parts(list(rng.integers(0, 2, 30))), 100.0, "lower")
    a1 = ratio_metric(*wer_parts(list(rng.integers(0, 2, 30))), 100.0, "lower")
    b_errors = list(rng.integers(3, 6, 30))
    b = ratio_metric(*wer_parts(b_errors), 100.0, "lower")
    c = ratio_metric(
        *wer_parts([e + (1 if i % 10 == 0 else 0) for i, e in enumerate(b_errors)]), 100.0, "lower"
    )
    cont = ratio_metric(*wer_parts([0] * 29 + [1]), 100.0, "lower")
    empty = {"empty transcript": {"wer": MetricRecord(100.0, "lower", n=30, split="test")}}
    cer = MetricRecord(5.0, "lower", n=30, judge={"name": "jiwer 3.0"}, split="test")
    weights = {"layer_weights": [0.7, 0.3], "layers": [3, 7]}
    job(
        root,
        "mini",
        "tok-a",
        "asr",
        0,
        1000.0,
        {"wer": a0, "cer": (cer, None)},
        "wer",
        XSS,
        baselines=empty,
        extras=weights,
    )
    job(
        root,
        "mini",
        "tok-a",
        "asr",
        1,
        1000.0,
        {"wer": a1, "cer": (cer, None)},
        "wer",
        XSS,
        baselines=empty,
        extras=weights,
    )
    job(
        root,
        "mini",
        "tok-b",
        "asr",
        0,
        1200.0,
        {"wer": b, "cer": (cer, None)},
        "wer",
        baselines=empty,
        extras={"layer_weights": [0.4, 0.6], "layers": [3, 7]},
    )
    job(root, "mini", "tok-c", "asr", 0, 6000.0, {"wer": c}, "wer", baselines=empty)
    job(root, "mini", "cont", "asr", 0, None, {"wer": cont}, "wer", baselines=empty)
    # style: accuracy, tok-a and tok-b tied exactly; tok-c unavailable
    same = ratio_metric([1] * 20 + [0] * 10, [1] * 30, 100.0, "higher", "accuracy")
    chance = {"chance": {"accuracy": MetricRecord(33.3, "higher", n=30, split="test")}}
    job(
        root,
        "mini",
        "tok-a",
        "style",
        0,
        1000.0,
        {"accuracy": same},
        "accuracy",
        XSS,
        baselines=chance,
        extras={"layer_weights": [0.2, 0.8], "layers": [3, 7]},
    )
    job(root, "mini", "tok-b", "style", 0, 1200.0, {"accuracy": same}, "accuracy", baselines=chance)
    job(
        root,
        "mini",
        "cont",
        "style",
        0,
        None,
        {"accuracy": ratio_metric([1] * 29 + [0], [1] * 30, 100.0, "higher")},
        "accuracy",
    )
    unavailable = ResultRecord(
        "ok",
        "tok-c",
        "style",
        0,
        "mini",
        kind="job",
        metrics={
            "accuracy": MetricRecord(
                None, "higher", status="unavailable", reason="no speaker labels"
            )
        },
        main_metric="accuracy",
        tokenizer_info=info("tok-c", 6000.0),
        provenance=provenance(),
    )
    unavailable.to_disk(record_path(root, "mini", "tok-c", "style", 0))
    # tts: generative; tok-a ok with audio examples, tok-b failed, tok-c missing
    # one absolute path, one relative to the record's folder
    record_dir = record_path(root, "mini", "tok-a", "tts", 0).parent
    reference = write_wav(audio_dir / "ref-utt00.wav", freq=220)
    examples = [
        {
            "id": "utt00",
            "audio": str(write_wav(audio_dir / "a-utt00.wav", freq=330).resolve()),
            "reference": os.path.relpath(reference.resolve(), record_dir.resolve()),
        }
    ]
    utmos = MetricRecord(
        3.2,
        "higher",
        {"low": 3.0, "high": 3.4, "level": 0.95},
        30,
        {"name": "utmos", "revision": "v1"},
        split="test",
    )
    job(
        root,
        "mini",
        "tok-a",
        "tts",
        0,
        1000.0,
        {"utmos": (utmos, None)},
        "utmos",
        XSS,
        extras={"examples": examples},
    )
    status_record(root, "mini", "tok-b", "tts", "failed", "CUDA out of memory", 1200.0)
    # profile, token stats and a study
    for name, seconds in (("tok-a", 0.2), ("tok-b", 0.5)):
        metrics = {
            k: MetricRecord(seconds, "lower", n=3, split="synthetic")
            for k in (
                "encode_seconds",
                "encode_rtf",
                "decode_seconds",
                "decode_rtf",
                "encode_peak_mib",
                "decode_peak_mib",
            )
        }
        spread = {
            "encode_seconds": {"min": seconds * 0.9, "max": seconds * 1.1, "runs": [seconds] * 3}
        }
        ResultRecord(
            "ok",
            name,
            "profile",
            0,
            "mini",
            kind="profile",
            metrics=metrics,
            main_metric="encode_rtf",
            tokenizer_info=info(name, 1000.0),
            config={"device": "cpu"},
            provenance=provenance(),
            extras={"spread": spread, "device": {"cpu_model": "Test CPU"}},
        ).to_disk(record_path(root, "mini", name, "profile", 0))
    stats = {
        "codebook_usage": MetricRecord(40.0, "higher", n=900),
        "normalized_entropy": MetricRecord(55.0, "higher", n=900),
        "stability_shift": MetricRecord(97.5, "higher", n=20),
    }
    ResultRecord(
        "ok",
        "tok-a",
        "token-stats",
        0,
        "mini",
        kind="token-stats",
        metrics=stats,
        main_metric="normalized_entropy",
        tokenizer_info=info("tok-a", 1000.0),
        extras={"per_codebook": [{"usage": 40.0, "entropy_bits": 2.5}] * 2},
    ).to_disk(record_path(root, "mini", "tok-a", "token-stats", 0))
    ResultRecord(
        "ok",
        "tok-a",
        "vocoder-study",
        0,
        "mini",
        kind="study",
        extras={
            "table": [
                {"layers": "3", "mel_distance": 1.25},
                {"layers": "3+7", "mel_distance": 0.95},
            ]
        },
    ).to_disk(record_path(root, "mini", "tok-a", "vocoder-study", 0))
    # full preset: never ranked with mini
    full_a = ratio_metric(*wer_parts([3] * 30), 100.0, "lower")
    full_z = ratio_metric(*wer_parts([1] * 30), 100.0, "lower")
    job(root, "full", "tok-a", "asr", 0, 1000.0, {"wer": full_a}, "wer")
    job(root, "full", "tok-z", "asr", 0, 1000.0, {"wer": full_z}, "wer")
    return root

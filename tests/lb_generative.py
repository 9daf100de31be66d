"""Hand-made records of generative tasks, token statistics and a study, as the harness writes
them (``ResultRecord.to_disk``), with tiny WAV examples beside the records.

``mini`` tasks ``enhancement`` (main metric ``dnsmos_ovrl``) and ``resynthesis`` (main
``pesq``): tokenizers ``tok-a``, ``tok-b`` (low tier) and ``tok-c`` (medium). Every metric of
the generative metric set, ``utmos`` unavailable everywhere, tok-b's ``pesq`` failed on
enhancement; baselines ``noisy input`` and ``ground truth`` (equal in every record) and
``resynthesis ceiling`` (one per tokenizer); ``extras["examples"]`` with paths relative to
the record's folder. Tasks say they decode audio with ``config.task.needs_decode``; the
resynthesis task is named ``copy-synthesis`` so its family can only come from that attribute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lb_fixtures import IDS, info, provenance, write_wav

from benchmark.pipeline.records import MetricRecord, ResultRecord, UtteranceScores, record_path

METRICS = {  # name -> (direction, value of tok-a, step per tokenizer)
    "pesq": ("higher", 2.5, -0.4),
    "stoi": ("higher", 0.85, -0.05),
    "dnsmos_sig": ("higher", 3.4, -0.2),
    "dnsmos_bak": ("higher", 3.9, -0.1),
    "dnsmos_ovrl": ("higher", 3.1, -0.3),
    "dnsmos_p808": ("higher", 3.5, -0.2),
    "dwer": ("lower", 12.0, 4.0),
    "dcer": ("lower", 6.0, 2.0),
    "speaker_similarity": ("higher", 0.8, -0.05),
}
TOKENIZERS = {"tok-a": 1000.0, "tok-b": 1200.0, "tok-c": 6000.0}
RESYNTHESIS = "copy-synthesis"


def _metric(value: float, direction: str, n: int = 30, name: str = "judge") -> MetricRecord:
    return MetricRecord(
        round(value, 6),
        direction,
        {"low": round(value * 0.95, 6), "high": round(value * 1.05, 6), "level": 0.95},
        n,
        {"name": name, "revision": "pinned"},
        split="test",
    )


def _scores(mean: float, rng: np.random.Generator) -> UtteranceScores:
    values = mean + rng.normal(0, 0.02, len(IDS))
    values += mean - values.mean()
    return UtteranceScores(list(IDS), values.tolist(), [1.0] * len(IDS), 1.0)


def _metrics(position: int, failed_pesq: bool) -> dict[str, MetricRecord]:
    metrics = {
        name: _metric(start + position * step, direction, name=f"{name}-judge")
        for name, (direction, start, step) in METRICS.items()
    }
    metrics["stoi"] = _metric(metrics["stoi"].value, "higher", n=28, name="pystoi")
    metrics["utmos"] = MetricRecord(
        None, "higher", status="unavailable", reason="UTMOS weights not found (offline)"
    )
    if failed_pesq:
        metrics["pesq"] = MetricRecord(
            None, "higher", status="failed", reason="pesq raised NoUtterancesError"
        )
    return metrics


def _baselines(position: int) -> dict[str, dict[str, MetricRecord]]:
    noisy = {n: _metric(v - 0.5 if d == "higher" else v + 5, d) for n, (d, v, _) in
             METRICS.items()}  # fmt: skip
    truth = {n: _metric(4.2 if d == "higher" else 0.5, d) for n, (d, _, _) in METRICS.items()}
    truth["stoi"], truth["speaker_similarity"] = _metric(1.0, "higher"), _metric(1.0, "higher")
    truth["pesq"] = MetricRecord(
        None, "higher", status="unavailable", reason="the reference is the ground truth itself"
    )
    ceiling = {
        n: _metric(v + 0.1 + position * s if d == "higher" else v - 1 + position * s, d)
        for n, (d, v, s) in METRICS.items()
    }
    return {"noisy input": noisy, "resynthesis ceiling": ceiling, "ground truth": truth}


def generative_record(
    root: Path, task: str, tokenizer: str, position: int, main: str, labels: tuple[str, ...]
) -> ResultRecord:
    """Write one generative record with its example WAVs (relative paths); return it."""
    path = record_path(root, "mini", tokenizer, task, 0)
    rng = np.random.default_rng(position)
    examples = []
    for k, utterance in enumerate(IDS[:2]):
        reference = f"seed0.examples/{utterance}.reference.wav"
        write_wav(path.parent / reference, seconds=0.25, freq=200 + 40 * k)
        for j, label in enumerate(labels):
            audio = f"seed0.examples/{utterance}.{label.replace(' ', '-')}.wav"
            write_wav(path.parent / audio, seconds=0.25 + 0.05 * j, freq=300 + 50 * position)
            examples.append(
                {"id": utterance, "label": label, "audio": audio, "reference": reference}
            )
    metrics = _metrics(position, failed_pesq=task == "enhancement" and tokenizer == "tok-b")
    record = ResultRecord(
        status="ok",
        tokenizer=tokenizer,
        task=task,
        seed=0,
        preset="mini",
        fingerprint=f"fp-gen-{task}-{tokenizer}",
        kind="job",
        metrics=metrics,
        main_metric=main,
        baselines=_baselines(position),
        per_utterance={main: _scores(metrics[main].value, rng)},
        tokenizer_info=info(tokenizer, TOKENIZERS[tokenizer]),
        conformance={"passed": ["shapes"], "failed": [], "suite_version": 3},
        config={"task": {"ref": task, "params": {}, "needs_decode": True}},
        provenance=provenance(),
        timings={"started": "2026-01-02T03:04:05+00:00"},
        extras={"examples": examples},
    )
    record.to_disk(path)
    return record


def stats_record(root: Path, tokenizer: str, usage: float) -> ResultRecord:
    """A token-stats record shaped as :func:`benchmark.token_stats.token_stats_record`."""
    rows = [
        {
            "codebook": k,
            "size": 32,
            "frames": 900,
            "used": int(32 * usage / 100),
            "usage": usage,
            "entropy_bits": 3.0 + k,
            "normalized_entropy": 60.0 + 10 * k,
            "stability_shift": 95.0 - k,
            "stability_noise": 80.0 - k,
        }
        for k in range(2)
    ]
    metrics = {
        "codebook_usage": MetricRecord(usage, "higher", n=900, split="test"),
        "entropy_bits": MetricRecord(3.5, "higher", n=900, split="test"),
        "normalized_entropy": MetricRecord(65.0, "higher", n=900, split="test"),
        "stability_shift": MetricRecord(
            94.5, "higher", {"low": 93.0, "high": 96.0, "level": 0.95}, 20, split="test"
        ),
        "stability_noise": MetricRecord(
            79.5, "higher", {"low": 77.0, "high": 82.0, "level": 0.95}, 20, split="test"
        ),
    }
    record = ResultRecord(
        "ok", tokenizer, "token-stats", 0, "mini", kind="token-stats", metrics=metrics,
        main_metric="normalized_entropy", tokenizer_info=info(tokenizer, TOKENIZERS[tokenizer]),
        config={"splits": ["asr/test:test", "style/test"]}, provenance=provenance(),
        extras={"per_codebook": rows, "settings": {"shift_samples": 1, "snr_db": 30.0,
                                                   "stability_utterances": 20}},
    )  # fmt: skip
    record.to_disk(record_path(root, "mini", tokenizer, "token-stats", 0))
    return record


STUDY_ROWS = [
    {"layers kept": "3", "mel_distance": 1.25, "dnsmos_ovrl": 2.1},
    {"layers kept": "3+7", "mel_distance": 0.95, "dnsmos_ovrl": 2.6},
    {"layers kept": "3+7+12", "mel_distance": 0.9, "dnsmos_ovrl": None},
]


def write_generative_results(root: Path) -> Path:
    """Write the generative, token-stats and study records under ``root``; return it."""
    for position, tokenizer in enumerate(TOKENIZERS):
        generative_record(root, "enhancement", tokenizer, position, "dnsmos_ovrl",
                          ("generated", "noisy input"))  # fmt: skip
        generative_record(root, RESYNTHESIS, tokenizer, position, "pesq", ("resynthesis",))
    stats_record(root, "tok-b", 50.0)
    ResultRecord(
        "ok", "tok-b", "layer-dropout", 0, "mini", kind="study",
        extras={"table": STUDY_ROWS, "columns": list(STUDY_ROWS[0]),
                "study": {"name": "layer dropout",
                                                "description": "vocoder decodes layer subsets"}},
    ).to_disk(record_path(root, "mini", "tok-b", "layer-dropout", 0))  # fmt: skip
    return root

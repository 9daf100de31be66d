"""DNSMOS throughput: speechmos's own sessions (onnxruntime's default threads) against the
harness's sessions at a fixed thread count, on the same files, in one run.

    .venv/bin/python scripts/bench_dnsmos.py FOLDER_OF_WAVS [--files 20] [--threads 1]

Prints seconds per file of each, their ratio, and the largest difference between the
scores (the harness's sessions must give speechmos's numbers).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from benchmark.data.audio import load_audio
from benchmark.metrics import dnsmos as ours

log = logging.getLogger("bench_dnsmos")


def _speechmos_default(audio: np.ndarray) -> dict[str, float]:
    from speechmos import dnsmos

    dnsmos.dnsmos = None  # speechmos builds its own sessions (onnxruntime's default threads)
    result = dnsmos.run(np.clip(audio.astype(np.float64), -1.0, 1.0), ours.SAMPLE_RATE)
    return {key: float(result[field]) for key, field in ours.OUTPUTS.items()}


def _timed(score, audios: list[np.ndarray]) -> tuple[float, list[dict[str, float]]]:
    score(audios[0])  # builds the sessions: not timed
    start = time.perf_counter()
    results = [score(a) for a in audios]
    return (time.perf_counter() - start) / len(audios), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = sorted(args.folder.rglob("*.wav"))[: args.files]
    audios = [load_audio(p, ours.SAMPLE_RATE).numpy() for p in paths]
    seconds = sum(a.size for a in audios) / ours.SAMPLE_RATE
    log.info("%d files, %.1f s of audio", len(audios), seconds)
    default_s, reference = _timed(_speechmos_default, audios)
    log.info("speechmos sessions (onnxruntime default threads): %.3f s per file", default_s)

    def harness(audio: np.ndarray) -> dict[str, float]:
        return ours.dnsmos_scores(audio, threads=args.threads)

    ours_s, mine = _timed(harness, audios)
    log.info("harness sessions, %d thread(s): %.3f s per file", args.threads, ours_s)
    worst = max(abs(a[k] - b[k]) for a, b in zip(reference, mine, strict=True) for k in a)
    log.info("ratio (speechmos / harness): %.2f; largest score difference %.2e",
             default_s / ours_s, worst)  # fmt: skip


if __name__ == "__main__":
    main()

"""espeak-ng synthesis jobs for the mini corpus, run in parallel threads."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from benchmark.data.audio import audio_from_bytes, save_wav
from benchmark.errors import DataError


@dataclass(frozen=True)
class SynthJob:
    """One espeak-ng call: ``text`` read by ``voice`` into ``rel`` (relative to the build)."""

    rel: str
    voice: str  # "accent+variant"
    pitch: int  # -p, 0..99
    rate: int  # -s, words per minute
    amplitude: int  # -a, 0..200
    text: str
    pitch_range: str | None = None  # SSML <prosody range=...>, e.g. "x-high"


def synthesize_job(job: SynthJob, folder: Path, espeak: str, sample_rate: int) -> int:
    """Run espeak-ng (22.05 kHz), resample to ``sample_rate``, save 16-bit WAV; return samples.

    Raises:
        DataError: espeak-ng exits non-zero or writes no audio.
        StoreWriteError: the WAV cannot be written (names the path and the cause).
    """
    text = job.text
    command = [espeak, "-v", job.voice, "-p", str(job.pitch), "-s", str(job.rate)]
    # --stdout, not -w FILE: espeak-ng exits 0 after a failed file write (a full disk then
    # looked like an undecodable file); through a pipe only our own write touches the disk
    command += ["-a", str(job.amplitude), "--stdout"]
    if job.pitch_range is not None:
        command.append("-m")
        text = f'<speak><prosody range="{job.pitch_range}">{text}</prosody></speak>'
    done = subprocess.run([*command, text], capture_output=True, timeout=120)
    if done.returncode != 0 or not done.stdout:
        message = " ".join(done.stderr.decode("utf-8", "replace").split()) or "no audio output"
        raise DataError(f"espeak-ng failed on {job.rel} (exit {done.returncode}): {message}")
    wav = audio_from_bytes(done.stdout, sample_rate, f"espeak-ng output for {job.rel}")
    save_wav(folder / job.rel, wav, sample_rate)
    return int(wav.shape[0])


def espeak_version(espeak: str) -> str:
    """``"eSpeak NG text-to-speech: 1.51"`` (recorded in the marker; output depends on it)."""
    done = subprocess.run([espeak, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.split("Data at")[0].strip()


_Job = TypeVar("_Job")


def run_parallel(
    function: Callable[..., int],
    jobs: Sequence[_Job],
    workers: int,
    desc: str,
    progress: bool,
    *args: Any,
) -> list[int]:
    """``[function(job, *args) for job in jobs]`` on ``workers`` threads, results in order.

    Threads suffice: the work is espeak-ng child processes, file I/O and NumPy/torch kernels,
    which all release the GIL; they avoid both fork-after-torch hazards and the cost of
    importing torch in spawned workers. Each job writes only its own files, so the output
    does not depend on scheduling.
    """
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, job, *args) for job in jobs]
        try:
            results = []
            for future in tqdm(futures, desc=desc, unit="file", disable=not progress):
                results.append(future.result())
            return results
        except BaseException:
            for future in futures:
                future.cancel()
            raise

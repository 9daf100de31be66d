"""Wall time and memory: of a pipeline step (:class:`Profile`) and of one call measured
after warm-up (:func:`measure_call`: median of timed runs, the call's own memory peak)."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def release_freed_memory() -> None:
    """Hand memory freed by Python and torch back to the OS (glibc ``malloc_trim``).

    glibc keeps freed heap pages for reuse, so a long extraction's resident memory creeps up
    batch after batch even though nothing is held; trimming after each batch keeps it flat
    (measured by ``scripts/bench_ssl_encode.py``: 1x vs 4x the corpus). No-op off Linux.
    """
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class Profile:
    """Timings (s) and memory peaks (MiB) collected per named step."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    peak_cuda_mib: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str, device: str = "cpu") -> Iterator[None]:
        """Time a block and record the memory peaks seen by its end."""
        cuda = device.startswith("cuda")
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.peak_rss_mib = max(self.peak_rss_mib, peak_rss_mib())
            if cuda:
                import torch

                self.peak_cuda_mib[name] = torch.cuda.max_memory_allocated() / 2**20

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "peak_cuda_mib": {k: round(v, 1) for k, v in self.peak_cuda_mib.items()},
        }


# --- measuring one call: wall time (CUDA synchronised) and the call's own memory peak -------


def sync(device: str) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU), so wall times are real."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


def timed(fn: Callable[[], Any], device: str) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` of one call of ``fn``, synchronised."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def rss_mib(field: str = "VmRSS") -> float | None:
    """``VmRSS`` (current) or ``VmHWM`` (peak) resident memory from ``/proc``, in MiB.

    Returns None where ``/proc/self/status`` does not exist (not Linux).
    """
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ``clear_refs`` 5); False when unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class CallMeasurement:
    """Timed runs of one call after warm-up, and the memory peak each run added.

    Attributes:
        wall_s: wall seconds of each timed run (CUDA synchronised before and after).
        cpu_s: CPU seconds of this process in each run.
        peak_mib: per run, the peak memory the call added above what was allocated before
            it, in MiB: the CUDA allocator's peak (reset before the run) minus the memory
            allocated at its start on GPU; the peak RSS (reset before the run) minus the RSS
            at its start on CPU. None when it cannot be measured (``peak_reason`` says why).
        peak_kind: ``cuda-allocator`` or ``rss-delta``.
    """

    wall_s: list[float]
    cpu_s: list[float]
    peak_mib: list[float] | None
    peak_kind: str
    peak_reason: str | None = None

    @property
    def median_s(self) -> float:
        """Median wall seconds over the timed runs."""
        return statistics.median(self.wall_s)

    @property
    def max_peak_mib(self) -> float | None:
        """The largest per-run memory peak, in MiB."""
        return max(self.peak_mib) if self.peak_mib else None


def measure_call(
    fn: Callable[[], Any], device: str, runs: int = 5, warmup: int = 1
) -> CallMeasurement:
    """Run ``fn`` ``warmup`` times untimed, then ``runs`` times timed, each with its own peak.

    Args:
        fn: the call to measure (its result is dropped before the next run).
        device: ``cpu`` or ``cuda[:N]``: where the call's work runs.
        runs: timed runs (>= 1).
        warmup: untimed runs first (caches, lazy initialisation, cuDNN autotuning).

    Raises:
        ValueError: ``runs < 1`` or ``warmup < 0``.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"measure_call: runs must be >= 1 and warmup >= 0, got {runs}, {warmup}")
    cuda = str(device).startswith("cuda")
    for _ in range(warmup):
        fn()
        sync(device)
    walls: list[float] = []
    cpus: list[float] = []
    peaks: list[float] = []
    reason = None
    for _ in range(runs):
        release_freed_memory()
        if cuda:
            import torch

            dev = torch.device(device)
            torch.cuda.synchronize(dev)
            before = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        else:
            before = rss_mib("VmRSS")
            if before is None or not reset_peak_rss():
                reason = "peak RSS cannot be reset here (needs Linux /proc/self/clear_refs)"
        wall, cpu = timed(fn, device)
        walls.append(wall)
        cpus.append(cpu)
        if cuda:
            peaks.append((torch.cuda.max_memory_allocated(dev) - before) / 2**20)
        elif reason is None:
            peak = rss_mib("VmHWM")
            peaks.append(max(0.0, (peak or 0.0) - before))
    return CallMeasurement(
        wall_s=walls,
        cpu_s=cpus,
        peak_mib=None if reason else peaks,
        peak_kind="cuda-allocator" if cuda else "rss-delta",
        peak_reason=reason,
    )

"""Wall time and memory of a step: seconds, peak resident memory, peak CUDA memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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

"""Provenance of a result: the harness's code version, package versions, the device.

Works without a git checkout (a wheel install on a cluster worker): the code version is then
the package version plus a hash of the installed package's source files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TRACKED_PACKAGES = (
    "torch",
    "torchaudio",
    "numpy",
    "transformers",
    "speechbrain",
    "scikit-learn",
    "jiwer",
    "encodec",
)


@cache
def code_version() -> dict[str, Any]:
    """The git commit of the harness and whether the tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        commit, dirty = "", False
        root = None
    try:
        if root is None:
            raise OSError("not a git checkout")
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    from benchmark import __version__

    return {
        "version": __version__,
        "commit": commit or None,
        "dirty": dirty,
        "source_sha256": source_sha256(),
    }


@cache
def source_sha256() -> str:
    """sha256 over the harness's own ``.py`` files and built-in cards (path and bytes)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.yaml")]):
        digest.update(path.relative_to(package).as_posix().encode("utf-8"))
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@cache
def package_versions() -> dict[str, str | None]:
    """Versions of the packages results depend on (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str) -> dict[str, Any]:
    """What ran the job: CPU model and cores, or the CUDA device name."""
    info: dict[str, Any] = {
        "device": device,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info

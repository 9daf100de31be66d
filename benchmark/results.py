"""Result records: one JSON file per (preset, tokenizer, task, seed), written atomically.

A record holds the schema version, ``status`` (``ok`` / ``failed`` / ``unavailable``), the
metrics (value, direction, confidence interval, judge), the main metric, the fingerprint of
everything the result depends on, provenance, timings and memory, the resolved configuration
and, when it failed, the error. Files are written to a temporary sibling, fsynced and renamed,
so a crash or kill at any point leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "unavailable")
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


def fingerprint(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys; paths and tuples as lists)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_path(results_dir: Path, preset: str, tokenizer: str, task: str, seed: int) -> Path:
    """Where the record of one run lives: ``<results>/<preset>/<tokenizer>/<task>/seed<N>.json``."""
    return Path(results_dir) / preset / tokenizer / task / f"seed{seed}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Validate the record's envelope and write it atomically as indented JSON."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"record schema_version must be {SCHEMA_VERSION}")
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None if it is absent or unreadable (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable result record %s (%s); it will be rerun", path, exc)
        return None
    return record if isinstance(record, dict) else None


def is_up_to_date(path: Path, expected_fingerprint: str) -> bool:
    """True when a successful record with this fingerprint exists.

    Failed and unavailable records are retried: what was missing may have been provided.
    """
    record = read_record(path)
    return (
        record is not None
        and record.get("fingerprint") == expected_fingerprint
        and record.get("status") == "ok"
    )


@cache
def code_version() -> dict[str, Any]:
    """The git commit of the harness and whether the tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
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

    return {"version": __version__, "commit": commit or None, "dirty": dirty}


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

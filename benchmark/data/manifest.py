"""Typed utterance manifests, streamed from and to JSONL (one utterance per line).

A manifest line holds ``id``, ``path`` (relative to the manifest's folder, or absolute),
``duration`` (seconds), ``sample_rate`` (Hz) and the optional supervision fields ``text``,
``speaker`` and ``label``; anything else a corpus needs (the clean twin of a noisy file, the
SNR) goes in ``extra``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import DataError
from benchmark.pipeline.store import atomic_write_text

_FIELDS = ("id", "path", "duration", "sample_rate", "text", "speaker", "label", "extra")


@dataclass(frozen=True)
class Utterance:
    """One audio file and its supervision."""

    id: str
    path: str
    duration: float
    sample_rate: int
    text: str | None = None
    speaker: str | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One compact, key-sorted JSON line (byte-stable for the same content)."""
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Manifest:
    """An ordered list of utterances and the folder their relative paths start from."""

    utterances: tuple[Utterance, ...]
    root: Path
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def audio_path(self, utterance: Utterance) -> Path:
        """Absolute path of an utterance's audio file."""
        path = Path(utterance.path)
        return path if path.is_absolute() else self.root / path

    def resolve(self, relative: str) -> Path:
        """Absolute path of another file named relative to the manifest (e.g. a clean twin)."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    @property
    def total_duration(self) -> float:
        """Sum of utterance durations in seconds."""
        return float(sum(u.duration for u in self.utterances))

    def fingerprint(self) -> str:
        """sha256 of the manifest's lines: changes whenever any utterance changes."""
        digest = hashlib.sha256()
        for utterance in self.utterances:
            digest.update(utterance.to_json().encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    def by_id(self) -> dict[str, Utterance]:
        """Map id -> utterance."""
        return {u.id: u for u in self.utterances}


def write_manifest(path: Path, utterances: Iterable[Utterance]) -> None:
    """Write a JSONL manifest atomically (temp file + rename); ids must be unique."""
    path = Path(path)
    seen: set[str] = set()
    lines = []
    for utterance in utterances:
        if utterance.id in seen:
            raise DataError(f"{path}: duplicate utterance id {utterance.id!r}")
        seen.add(utterance.id)
        lines.append(utterance.to_json() + "\n")
    atomic_write_text(path, "".join(lines))


def read_manifest(path: Path, root: Path | None = None) -> Manifest:
    """Read a JSONL manifest; relative audio paths start from ``root`` (default: its folder).

    Raises:
        DataError: the file is missing, a line is not JSON, or a required field is absent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist; run `python -m benchmark prepare`")
    utterances: list[Utterance] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            unknown = set(record) - set(_FIELDS)
            missing = {"id", "path", "duration", "sample_rate"} - set(record)
            if missing or unknown:
                raise DataError(
                    f"{path}:{number}: missing fields {sorted(missing)} / unknown fields "
                    f"{sorted(unknown)}; expected {list(_FIELDS)}"
                )
            record.setdefault("extra", {})
            utterances.append(Utterance(**record))
    return Manifest(tuple(utterances), root=Path(root) if root else path.parent, source=path)

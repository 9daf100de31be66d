"""Typed utterance manifests, streamed from and to JSONL (one utterance per line).

A manifest line holds ``id``, ``path`` (relative to the manifest's folder, or absolute),
``duration`` (seconds), ``sample_rate`` (Hz) and the optional supervision fields ``text``,
``speaker`` and ``label``; anything else a corpus needs (the clean twin of a noisy file, the
SNR) goes in ``extra``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import DataError
from benchmark.pipeline.store import atomic_write_text

log = logging.getLogger(__name__)

_FIELDS = ("id", "path", "duration", "sample_rate", "text", "speaker", "label", "extra")
_OPTIONAL_TEXT = ("text", "speaker", "label")


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
    """Write a JSONL manifest atomically (temp file + rename); ids must be unique.

    A sidecar ``<name>.meta.json`` records the line count and the sha256 of the file, so a
    cached manifest cut short or edited is noticed (:func:`read_cached_manifest`).
    """
    path = Path(path)
    seen: set[str] = set()
    lines = []
    for utterance in utterances:
        if utterance.id in seen:
            raise DataError(f"{path}: duplicate utterance id {utterance.id!r}")
        seen.add(utterance.id)
        lines.append(utterance.to_json() + "\n")
    data = "".join(lines).encode("utf-8")
    atomic_write_text(path, data.decode("utf-8"))
    meta = {"lines": len(lines), "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_text(meta_path(path), json.dumps(meta, sort_keys=True) + "\n")


def meta_path(path: Path) -> Path:
    """The sidecar of a written manifest: ``<name>.meta.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def read_cached_manifest(path: Path, root: Path | None = None) -> Manifest | None:
    """A cached manifest, or None (with a warning) when it must be rebuilt.

    The file must match the line count and sha256 its sidecar recorded when it was written
    (:func:`write_manifest`) and read cleanly; a manifest cut short, edited, unreadable or
    without a sidecar is reported in one warning line naming the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        return None
    sidecar = meta_path(path)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except (OSError, ValueError) as exc:
        log.warning("rebuilding cached manifest %s: no readable %s (%s)", path, sidecar.name, exc)
        return None
    lines = data.count(b"\n")
    digest = hashlib.sha256(data).hexdigest()
    if not isinstance(meta, dict) or (meta.get("lines"), meta.get("sha256")) != (lines, digest):
        expected = meta.get("lines") if isinstance(meta, dict) else "?"
        log.warning(
            "rebuilding cached manifest %s: it does not match what was written "
            "(%d lines, %s expected; sha256 differs)", path, lines, expected,
        )  # fmt: skip
        return None
    try:
        return read_manifest(path, root=root)
    except DataError as exc:
        log.warning("rebuilding unreadable cached manifest: %s", exc)
        return None


def _check_types(record: dict[str, Any], where: str) -> None:
    """Raise a one-line :class:`DataError` for the first field of the wrong type."""

    def bad(name: str, expected: str) -> DataError:
        return DataError(
            f"{where}: field {name!r} must be {expected}, got {record[name]!r}; fix the line "
            "or rebuild the manifest"
        )

    for name in ("id", "path"):
        if not isinstance(record[name], str) or not record[name]:
            raise bad(name, "a non-empty string")
    duration = record["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise bad("duration", "a number of seconds")
    if not math.isfinite(duration) or duration < 0:
        raise bad("duration", "a finite number of seconds >= 0")
    rate = record["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise bad("sample_rate", "a positive integer (Hz)")
    for name in _OPTIONAL_TEXT:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise bad(name, "a string or null")
    if not isinstance(record.get("extra", {}), dict):
        raise bad("extra", "an object")


def read_manifest(path: Path, root: Path | None = None) -> Manifest:
    """Read a JSONL manifest; relative audio paths start from ``root`` (default: its folder).

    Raises:
        DataError: the file is missing or not UTF-8, a line is not a JSON object, a required
            field is absent, a field has the wrong type, or an utterance id repeats (each
            one line naming ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist; run `python -m benchmark prepare`")
    utterances: list[Utterance] = []
    first_line: dict[str, int] = {}
    try:
        with path.open("rb") as handle:
            raw_lines = handle.read().split(b"\n")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}:{number}: not UTF-8 (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); save the manifest as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {line.strip()[:40]}")
        unknown = set(record) - set(_FIELDS)
        missing = {"id", "path", "duration", "sample_rate"} - set(record)
        if missing or unknown:
            raise DataError(
                f"{path}:{number}: missing fields {sorted(missing)} / unknown fields "
                f"{sorted(unknown)}; expected {list(_FIELDS)}"
            )
        _check_types(record, f"{path}:{number}")
        if record["id"] in first_line:
            raise DataError(
                f"{path}:{number}: duplicate utterance id {record['id']!r} (first on line "
                f"{first_line[record['id']]}); ids must be unique"
            )
        first_line[record["id"]] = number
        record.setdefault("extra", {})
        record["duration"] = float(record["duration"])
        utterances.append(Utterance(**record))
    return Manifest(tuple(utterances), root=Path(root) if root else path.parent, source=path)

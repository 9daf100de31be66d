"""Typed result records: one JSON file per (preset, tokenizer, task, seed), with a reader.

A :class:`ResultRecord` is what every consumer (the skip decision, the CLI summary, the
leaderboard) reads; nothing parses record JSON by hand. ``ResultRecord.load(path)`` migrates
records of older schema versions, so a reader sees one shape whatever wrote the file.

Fields, in the order a reader needs them:

- ``kind``: ``job`` (a task's train-and-evaluate), ``profile`` (encode/decode timings),
  ``token-stats`` or ``study``;
- ``status``: ``ok`` / ``failed`` / ``unavailable``; ``error`` when not ok;
- ``tokenizer``, ``task``, ``seed``, ``preset``: the cell; ``fingerprint``: the key of every
  input (a record whose fingerprint differs from the planned step's is out of date);
- ``metrics``: name -> :class:`MetricRecord` (value, direction, CI, n, judge, split);
  ``main_metric``; ``baselines``: the task's trivial baselines on the same test set;
- ``per_utterance``: name -> :class:`UtteranceScores` (for paired significance tests);
- ``tokenizer_info`` (bitrate and tier computed), ``conformance`` (checks passed, suite
  version), ``provenance``, ``config``, ``timings``, ``extras``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.api import UtteranceScores
from benchmark.errors import BenchmarkError
from benchmark.pipeline.store import atomic_write_json

log = logging.getLogger(__name__)

#: 2: kind, conformance, baselines, per_utterance and the split of every metric.
SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "unavailable")
RecordKind = Literal["job", "profile", "token-stats", "study"]


class RecordError(BenchmarkError):
    """A record file that is not a record (names the file)."""


@dataclass(frozen=True)
class MetricRecord:
    """One metric as stored: value with its direction, 95 % CI, n, judge and split.

    ``status`` is ``ok`` with a value, ``unavailable`` (no judge, too little data) or
    ``failed`` (the metric raised), the last two with a ``reason`` and no value.
    """

    value: float | None
    direction: Literal["higher", "lower"]
    ci: dict[str, float] | None = None
    n: int | None = None
    judge: dict[str, Any] | None = None
    status: Literal["ok", "unavailable", "failed"] = "ok"
    reason: str | None = None
    split: str | None = None
    skipped: int | None = None

    @classmethod
    def from_value(cls, value: Any) -> MetricRecord:
        """From a :class:`benchmark.api.MetricValue`."""
        return cls.from_dict(value.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricRecord:
        """Read the stored form (unknown keys are ignored, so newer writers stay readable)."""
        known = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)


@dataclass
class ResultRecord:
    """One result cell; see the module docstring for the fields."""

    status: str
    tokenizer: str
    task: str
    seed: int
    preset: str
    fingerprint: str | None = None
    kind: RecordKind = "job"
    metrics: dict[str, MetricRecord] = field(default_factory=dict)
    main_metric: str | None = None
    baselines: dict[str, dict[str, MetricRecord]] = field(default_factory=dict)
    per_utterance: dict[str, UtteranceScores] = field(default_factory=dict)
    tokenizer_info: dict[str, Any] | None = None
    conformance: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    key_components: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {self.status!r}")

    @property
    def main_value(self) -> float | None:
        """The main metric's value, or None."""
        metric = self.metrics.get(self.main_metric or "")
        return metric.value if metric is not None else None

    # --- disk ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the stored form)."""
        data = asdict(self)
        data["metrics"] = {k: v.to_dict() for k, v in self.metrics.items()}
        data["baselines"] = {
            name: {k: v.to_dict() for k, v in metrics.items()}
            for name, metrics in self.baselines.items()
        }
        data["per_utterance"] = {k: v.to_dict() for k, v in self.per_utterance.items()}
        return data

    def to_disk(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename): the old file or the new, never half."""
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "record") -> ResultRecord:
        """Build from a stored dict of any schema version (migrating older ones).

        Raises:
            RecordError: not a record, or from a newer schema than this harness reads.
        """
        if not isinstance(data, dict) or "status" not in data:
            raise RecordError(f"{where}: not a result record (no 'status')")
        version = data.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise RecordError(f"{where}: bad schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"{where}: schema_version {version} is newer than this harness reads "
                f"({SCHEMA_VERSION}); update the harness"
            )
        data = migrate(dict(data))
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["metrics"] = {
            k: MetricRecord.from_dict(v) for k, v in (data.get("metrics") or {}).items()
        }
        known["baselines"] = {
            name: {k: MetricRecord.from_dict(v) for k, v in metrics.items()}
            for name, metrics in (data.get("baselines") or {}).items()
        }
        known["per_utterance"] = {
            k: UtteranceScores.from_dict(v) for k, v in (data.get("per_utterance") or {}).items()
        }
        try:
            return cls(**known)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> ResultRecord:
        """Read and migrate the record at ``path``.

        Raises:
            RecordError: the file is missing, not JSON, or not a record.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RecordError(f"{path}: cannot read record ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def load_or_none(cls, path: Path) -> ResultRecord | None:
        """The record at ``path``, or None when absent or unreadable (logged: it reruns)."""
        path = Path(path)
        if not path.is_file():
            return None
        try:
            return cls.load(path)
        except RecordError as exc:
            log.warning("ignoring unreadable result record (%s); it will be rerun", exc)
            return None


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored record up to :data:`SCHEMA_VERSION`, one version at a time.

    Version 1 had no ``kind``, ``conformance``, ``baselines``, ``per_utterance`` nor metric
    splits. Its fingerprint was computed without code hashes, so a migrated record never
    matches a planned step: it is read (for the leaderboard) but recomputed by ``run``.
    """
    if data["schema_version"] == 1:
        data.setdefault("kind", "job")
        data.setdefault("conformance", None)
        data.setdefault("baselines", {})
        data.setdefault("per_utterance", {})
        metrics = {}
        for name, metric in (data.get("metrics") or {}).items():
            metric = dict(metric)
            metric.setdefault("split", "test")
            metrics[name] = metric
        data["metrics"] = metrics
        data["schema_version"] = 2
    return data


def record_path(results_dir: Path, preset: str, tokenizer: str, task: str, seed: int) -> Path:
    """Where one cell's record lives: ``<results>/<preset>/<tokenizer>/<task>/seed<N>.json``."""
    return Path(results_dir) / preset / tokenizer / task / f"seed{seed}.json"


def iter_records(results_dir: Path) -> list[tuple[Path, ResultRecord]]:
    """Every readable record under ``results_dir`` (``**/seed*.json`` and ``*.record.json``),
    sorted by path; unreadable files are logged and left out."""
    results_dir = Path(results_dir)
    found = []
    paths = sorted({*results_dir.rglob("seed*.json"), *results_dir.rglob("*.record.json")})
    for path in paths:
        record = ResultRecord.load_or_none(path)
        if record is not None:
            found.append((path, record))
    return found

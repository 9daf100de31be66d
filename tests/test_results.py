"""The result store: typed records, atomic writes, migration, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from benchmark.api import UtteranceScores
from benchmark.pipeline.keys import fingerprint
from benchmark.pipeline.records import (
    SCHEMA_VERSION,
    MetricRecord,
    RecordError,
    ResultRecord,
    iter_records,
    record_path,
)
from benchmark.pipeline.store import remove_stale_temps


def _record(fp: str, status: str = "ok", size: int = 10) -> ResultRecord:
    return ResultRecord(
        status=status,
        tokenizer="dummy",
        task="style",
        seed=0,
        preset="mini",
        fingerprint=fp,
        metrics={"accuracy": MetricRecord(50.0, "higher", split="test")},
        main_metric="accuracy",
        extras={"padding": "x" * size},
    )


def test_fingerprint_is_canonical_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_write_then_read_round_trip(tmp_path):
    path = record_path(tmp_path, "mini", "dummy", "style", 0)
    record = _record("abc")
    record.per_utterance = {"accuracy": UtteranceScores(["u1", "u2"], [1.0, 0.0], [1, 1], 100)}
    record.to_disk(path)
    back = ResultRecord.load(path)
    assert back == record
    assert back.main_value == 50.0 and back.metrics["accuracy"].split == "test"
    assert [p.name for p in path.parent.iterdir()] == ["seed0.json"]
    assert [r.fingerprint for _, r in iter_records(tmp_path)] == ["abc"]


def test_invalid_records_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="status"):
        _record("abc", status="done")
    path = tmp_path / "r.json"
    record = _record("abc")
    record.extras["value"] = float("nan")
    with pytest.raises(ValueError):
        record.to_disk(path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_corrupt_record_is_treated_as_missing(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"status": "ok", "fingerp')
    assert ResultRecord.load_or_none(path) is None
    with pytest.raises(RecordError, match="r.json: not JSON"):
        ResultRecord.load(path)


def test_version_1_records_are_migrated_and_newer_ones_refused(tmp_path):
    old = {
        "schema_version": 1, "status": "ok", "tokenizer": "dummy", "task": "style", "seed": 0,
        "preset": "mini", "fingerprint": "f", "main_metric": "accuracy",
        "metrics": {"accuracy": {"value": 40.0, "direction": "higher", "ci": None}},
    }  # fmt: skip
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(old))
    record = ResultRecord.load(path)
    assert record.schema_version == SCHEMA_VERSION and record.kind == "job"
    assert record.metrics["accuracy"].split == "test" and record.key_components == {}
    path.write_text(json.dumps({**old, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(RecordError, match="newer than this harness reads"):
        ResultRecord.load(path)


def test_killed_writer_never_leaves_a_half_written_record(tmp_path):
    """SIGKILL a process that rewrites a large record in a loop: the file is always whole."""
    path = tmp_path / "r.json"
    _record("first").to_disk(path)
    script = textwrap.dedent(
        f"""
        from benchmark.pipeline.store import atomic_write_json
        i = 0
        while True:
            atomic_write_json({str(path)!r}, {{"schema_version": 2, "status": "ok",
                              "fingerprint": str(i), "padding": "y" * 3_000_000}})
            i += 1
        """
    )
    for delay in (0.3, 0.55, 0.8):
        process = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        record = json.loads(path.read_text())  # must parse: old or new, never half
        assert record["status"] == "ok"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "r.json"]
    # a killed writer may leave its own temp file, never a partial r.json ...
    assert all(name.startswith(".r.json.") and name.endswith(".tmp") for name in leftovers)
    # ... and the next run removes those of dead processes
    remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]

"""The result store: atomic writes, fingerprints, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from benchmark.results import (
    SCHEMA_VERSION,
    fingerprint,
    is_up_to_date,
    read_record,
    record_path,
    write_record,
)


def _record(fp: str, status: str = "ok", size: int = 10) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "fingerprint": fp,
        "metrics": {"accuracy": {"value": 50.0}},
        "padding": "x" * size,
    }


def test_fingerprint_is_canonical_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_write_then_read_round_trip(tmp_path):
    path = record_path(tmp_path, "mini", "dummy", "style", 0)
    write_record(path, _record("abc"))
    assert read_record(path)["fingerprint"] == "abc"
    assert is_up_to_date(path, "abc")
    assert not is_up_to_date(path, "other")
    assert [p.name for p in path.parent.iterdir()] == ["seed0.json"]


def test_failed_and_unavailable_records_are_retried(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, _record("abc", status="failed"))
    assert not is_up_to_date(path, "abc")
    write_record(path, _record("abc", status="unavailable"))
    assert not is_up_to_date(path, "abc")


def test_invalid_records_are_refused_before_writing(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(ValueError, match="status"):
        write_record(path, _record("abc", status="done"))
    with pytest.raises(ValueError):
        write_record(path, {**_record("abc"), "value": float("nan")})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_corrupt_record_is_treated_as_missing(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"status": "ok", "fingerp')
    assert read_record(path) is None
    assert not is_up_to_date(path, "abc")


def test_killed_writer_never_leaves_a_half_written_record(tmp_path):
    """SIGKILL a process that rewrites a large record in a loop: the file is always whole."""
    path = tmp_path / "r.json"
    write_record(path, _record("first", size=10))
    script = textwrap.dedent(
        f"""
        from benchmark.results import write_record, SCHEMA_VERSION
        i = 0
        while True:
            write_record({str(path)!r}, {{"schema_version": SCHEMA_VERSION, "status": "ok",
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
    # a killed writer may leave its own temp file, never a partial r.json
    assert all(name.startswith(".r.json.") and name.endswith(".tmp") for name in leftovers)

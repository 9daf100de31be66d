"""The shipped lock of exact versions: complete, exact, current, and hashed for provenance."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from benchmark import lockfile
from benchmark.lockfile import (
    DEV_LOCK_FILE,
    LOCK_FILE,
    LockError,
    dependency_closure,
    lock_sha256,
    project_requirements,
    read_lock,
)

ROOT = Path(__file__).resolve().parents[1]


def _locks() -> tuple[dict[str, str], dict[str, str]]:
    return read_lock(ROOT / LOCK_FILE), read_lock(ROOT / DEV_LOCK_FILE)


def test_lock_pins_every_dependency_of_pyproject_exactly():
    runtime, optional = project_requirements(ROOT / "pyproject.toml")
    pins, dev_pins = _locks()
    assert not set(pins) & set(dev_pins), "a distribution is pinned in both lock files"
    for text, where in [(r, pins) for r in runtime] + [
        (r, pins | dev_pins) for r in optional["dev"]
    ]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in where, f"{requirement.name} ({text}) is not pinned in the lock"
        assert requirement.specifier.contains(where[name], prereleases=True), (
            f"lock pins {requirement.name}=={where[name]}, outside pyproject's {text}"
        )
    assert pins["torch"] == "2.11.0" and pins["torchaudio"] == "2.11.0"
    for path in (ROOT / LOCK_FILE, ROOT / DEV_LOCK_FILE):
        lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
        assert all(line.count("==") == 1 for line in lines), path
        assert not any("audio-token-benchmark" in line for line in lines)  # not the project


def test_lock_is_the_closure_of_the_installed_environment():
    """Fails when pyproject.toml gained a dependency, or the environment drifted, without a
    refreshed lock (``scripts/install.sh --refresh-lock`` or ``python -m benchmark.lockfile``)."""
    runtime, optional = project_requirements(ROOT / "pyproject.toml")
    pins, dev_pins = _locks()
    installed = {canonicalize_name(k): v for k, v in dependency_closure(runtime).items()}
    assert installed == pins, (
        "requirements.lock is stale: rewrite it (python -m benchmark.lockfile)"
    )
    dev = {canonicalize_name(k): v for k, v in dependency_closure(optional["dev"]).items()}
    assert {k: v for k, v in dev.items() if k not in pins} == dev_pins


def test_closure_follows_requirements_and_markers_only():
    closure = {canonicalize_name(k) for k in dependency_closure(["jiwer>=3.0"])}
    assert {"jiwer", "rapidfuzz", "click"} <= closure
    assert "torch" not in closure and "numpy" not in closure
    assert dependency_closure(['jiwer>=3.0; python_version < "3"']) == {}
    with pytest.raises(LockError, match="is not installed"):
        dependency_closure(["surely-not-an-installed-distribution>=1"])
    with pytest.raises(LockError, match=r"numpy .* is installed but numpy<1 is required"):
        dependency_closure(["numpy<1"])


def test_lock_sha256_hashes_the_shipped_file_or_is_none(tmp_path, monkeypatch):
    assert lock_sha256() == hashlib.sha256((ROOT / LOCK_FILE).read_bytes()).hexdigest()
    monkeypatch.setattr(lockfile, "PACKAGE_DIR", tmp_path / "pkg")
    monkeypatch.setattr(lockfile, "REPO_ROOT", tmp_path)
    assert lock_sha256() is None
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / LOCK_FILE).write_text("numpy==2.0.0\n")
    assert lock_sha256() == hashlib.sha256(b"numpy==2.0.0\n").hexdigest()


def test_malformed_lock_lines_are_one_line_errors(tmp_path):
    path = tmp_path / LOCK_FILE
    path.write_text("# comment\nnumpy==2.0.0\ntorch>=2\n")
    with pytest.raises(LockError, match=r"requirements\.lock:3: 'torch>=2' is not name==version"):
        read_lock(path)


def test_written_locks_match_the_shipped_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmark.lockfile", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in (LOCK_FILE, DEV_LOCK_FILE):
        assert read_lock(tmp_path / name) == read_lock(ROOT / name)

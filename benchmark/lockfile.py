"""The shipped lock of exact dependency versions: its hash for provenance, and how it is written.

``requirements.lock`` (in the package, so a wheel install carries it, and linked from the
repository root, where ``scripts/install.sh`` reads it) pins, with ``==``, every distribution
that the runtime dependencies of ``pyproject.toml`` pull in, transitively, as installed in
the virtual environment it was written from; ``requirements-dev.lock`` pins what the ``dev``
extra adds (pytest, ruff, build and their dependencies). ``scripts/install.sh`` installs the
locks and then the project itself with ``--no-deps``, so two installs get the same versions.

The closure is read from the installed distributions' metadata (``importlib.metadata``), with
environment markers evaluated for this interpreter and platform (Linux x86_64, CPython 3.11
for the shipped lock); the project itself and anything else installed in the environment
(tools a user added) are left out. Write the locks from the current environment with::

    .venv/bin/python -m benchmark.lockfile            # after changing pyproject.toml
    scripts/install.sh --refresh-lock                 # newest versions pyproject allows

:func:`lock_sha256` is what every result record carries as the environment's identity.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import platform
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from benchmark.errors import BenchmarkError

LOCK_FILE = "requirements.lock"
DEV_LOCK_FILE = "requirements-dev.lock"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


class LockError(BenchmarkError):
    """A lock that cannot be written or read (missing distribution, malformed line)."""


def lock_path(name: str = LOCK_FILE) -> Path | None:
    """The shipped lock file: inside the package if bundled there, else at the repo root."""
    for folder in (PACKAGE_DIR, REPO_ROOT):
        if (folder / name).is_file():
            return folder / name
    return None


def lock_sha256() -> str | None:
    """sha256 (hex) of the shipped ``requirements.lock``; None when there is none."""
    path = lock_path()
    return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def read_lock(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a lock file's ``name==version`` lines.

    Raises:
        LockError: a line that is not a comment, blank, or ``name==version``.
    """
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if (
            not sep
            or not name.strip()
            or not version.strip()
            or any(c in version for c in "<>=!~,;")
        ):
            raise LockError(f"{path}:{number}: {raw!r} is not name==version; rewrite the lock")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def project_requirements(pyproject: Path) -> tuple[list[str], dict[str, list[str]]]:
    """``(dependencies, optional-dependencies)`` of a ``pyproject.toml``."""
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    return list(project.get("dependencies", [])), dict(project.get("optional-dependencies", {}))


def dependency_closure(requirements: Iterable[str]) -> dict[str, str]:
    """Every installed distribution the requirements pull in, transitively.

    Args:
        requirements: PEP 508 strings (``"torch==2.11.0"``, ``"numpy>=1.26"``, with extras
            and markers).

    Returns:
        ``{distribution name as installed: version}``, sorted by canonical name.

    Raises:
        LockError: a required distribution that is not installed, or installed at a version
            its requirement excludes (names both).
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, parent_extra = pending.pop()
        marker = requirement.marker
        if marker is not None and not marker.evaluate({"extra": parent_extra}):
            continue
        key = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise LockError(
                f"{requirement} is required but {requirement.name} is not installed; install "
                "the project first (scripts/install.sh)"
            ) from None
        version = dist.version
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            raise LockError(
                f"{dist.metadata['Name']} {version} is installed but {requirement} is required; "
                "reinstall before writing the lock"
            )
        found[key] = (dist.metadata["Name"], version)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None:
                pending.append((child, ""))
                continue
            for extra in ("", *sorted(extras)):
                if child.marker.evaluate({"extra": extra}):
                    pending.append((child, extra))
                    break
    return {found[key][0]: found[key][1] for key in sorted(found)}


def _format(pins: Mapping[str, str], title: str) -> str:
    header = (
        f"# {title}\n"
        "# Written by `python -m benchmark.lockfile` from the installed environment: exact\n"
        "# versions of the dependency closure of pyproject.toml; refresh with\n"
        "# `scripts/install.sh --refresh-lock`. Do not edit by hand.\n"
        f"# Python {platform.python_version()} on {sys.platform}-{platform.machine()}\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in pins.items())


def write_locks(pyproject: Path, folder: Path) -> tuple[Path, Path]:
    """Write ``requirements.lock`` (runtime closure) and ``requirements-dev.lock`` (the rest of
    the ``dev`` extra's closure) into ``folder`` from the installed environment.

    Raises:
        LockError: see :func:`dependency_closure`.
    """
    from packaging.utils import canonicalize_name

    runtime, optional = project_requirements(pyproject)
    pins = dependency_closure(runtime)
    taken = {canonicalize_name(n) for n in pins}
    dev = {
        name: version
        for name, version in dependency_closure(optional.get("dev", [])).items()
        if canonicalize_name(name) not in taken
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = (Path(folder) / LOCK_FILE, Path(folder) / DEV_LOCK_FILE)
    texts = (
        _format(pins, "Runtime dependencies of audio-token-benchmark, pinned."),
        _format(dev, "The dev extra (tests, lint, build) on top of requirements.lock, pinned."),
    )
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmark.lockfile [--pyproject P] [--out DIR]``: write both locks (into the
    package folder by default; the repository root links to them)."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.lockfile", description=__doc__)
    parser.add_argument("--pyproject", type=Path, default=REPO_ROOT / "pyproject.toml")
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR)
    args = parser.parse_args(argv)
    try:
        for path in write_locks(args.pyproject, args.out):
            print(f"wrote {path} ({len(read_lock(path))} pins)")
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

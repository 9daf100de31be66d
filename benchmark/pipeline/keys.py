"""Fingerprints that cannot go stale: the code behind a class, library versions, audio bytes.

A step's key is the hash of named *components* (:func:`key_of`); the components are stored
beside the step's output, so ``plan`` can say which input changed. This module computes the
components that are not plain configuration:

- :func:`code_fingerprint`: for a class, the source of its module and of every module of the
  same top-level package that it imports, transitively (an unrelated module's edit changes
  nothing); for a class from an installed distribution, also the hashes of its installed
  files (from the distribution's RECORD); for a plugin file, the file and the sibling
  modules it imports.
- :func:`library_versions`: the libraries whose version changes outputs.
- :func:`audio_identity` / :func:`manifest_key`: a manifest's lines with paths relative to
  the corpus root, plus every referenced audio file's size and content hash (cached by path,
  size and mtime), so moving a corpus changes nothing and changing a file's bytes does.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.data.manifest import Manifest

log = logging.getLogger(__name__)

#: Libraries whose version can change tokens, training or scores.
OUTPUT_LIBRARIES: tuple[str, ...] = (
    "torch",
    "torchaudio",
    "numpy",
    "transformers",
    "speechbrain",
    "scikit-learn",
    "encodec",
    "jiwer",
    "soundfile",
)


def fingerprint(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys; paths and tuples as lists)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_of(components: Mapping[str, Any]) -> str:
    """A step key: the fingerprint of its named components."""
    return fingerprint(dict(components))


def changed_components(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Names of the components that differ between a stored and a planned key."""
    if old is None:
        return ["not computed yet"]
    names = sorted(set(old) | set(new))
    return [name for name in names if fingerprint(old.get(name)) != fingerprint(new.get(name))]


# ------------------------------------------------------------------------------ code


@cache
def _package_dir(root: str) -> Path | None:
    """Folder of a top-level package, found without importing it."""
    module = sys.modules.get(root)
    path = getattr(module, "__file__", None)
    if path is None:
        try:
            spec = importlib.util.find_spec(root)
        except (ImportError, ValueError):
            return None
        path = spec.origin if spec is not None else None
    if not path:
        return None
    path = Path(path)
    return path.parent if path.name == "__init__.py" else path


def _module_source_path(module_name: str) -> Path | None:
    """The ``.py`` file of a module, from the file system (importing nothing)."""
    root, _, rest = module_name.partition(".")
    base = _package_dir(root)
    if base is None:
        return None
    if base.is_file():
        return base if not rest and base.suffix == ".py" else None
    folder = base.joinpath(*rest.split(".")) if rest else base
    for candidate in (folder.with_suffix(".py") if rest else None, folder / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imported_modules(source: str, module_name: str, is_package: bool) -> set[str]:
    """Absolute names of the modules a source file imports (relative imports resolved)."""
    tree = ast.parse(source)
    package = module_name if is_package else module_name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # ``from pkg import submodule`` imports a module, not an attribute
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


_CODE_LOCK = threading.Lock()


_FILE_INFO: dict[tuple[str, int, int], tuple[str, frozenset[str]]] = {}


def _file_info(path: Path, module_name: str) -> tuple[str, frozenset[str]]:
    """sha256 and imported module names of a source file, remembered by (path, mtime, size)."""
    stat = path.stat()
    memo = (f"{path}|{module_name}", stat.st_mtime_ns, stat.st_size)
    if memo not in _FILE_INFO:
        source = path.read_text(encoding="utf-8")
        imports = _imported_modules(source, module_name, path.name == "__init__.py")
        _FILE_INFO[memo] = (hashlib.sha256(source.encode("utf-8")).hexdigest(), frozenset(imports))
    return _FILE_INFO[memo]


def _module_closure_hash(module_name: str) -> str:
    """Hash of a module's source and of the same-package modules it imports, transitively.

    Files are re-read when their mtime or size changes, so a long-lived process (a test, a
    notebook) sees edits.
    """
    root = module_name.split(".")[0]
    seen: dict[str, str] = {}
    stack = [module_name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        path = _module_source_path(name)
        if path is None:
            continue
        digest, imports = _file_info(path, name)
        seen[name] = digest
        stack.extend(i for i in imports if i.split(".")[0] == root and i not in seen)
    return fingerprint(sorted(seen.items()))


def _distribution_of(module_name: str) -> metadata.Distribution | None:
    top = module_name.split(".")[0]
    for dist_name in metadata.packages_distributions().get(top, []):
        try:
            return metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None


@cache
def distribution_files_hash(dist_name: str) -> str:
    """Hash of an installed distribution's files, from the hashes its RECORD lists.

    Files RECORD lists without a hash are hashed from their bytes, so an edit to an
    installed file changes the result even when the version string does not.
    """
    dist = metadata.distribution(dist_name)
    entries = []
    for file in dist.files or ():
        if str(file).endswith((".pyc", "RECORD")):
            continue
        digest = file.hash.value if file.hash is not None else None
        if digest is None:
            located = Path(str(file.locate()))
            if located.is_file():
                digest = hashlib.sha256(located.read_bytes()).hexdigest()
        entries.append((str(file), digest))
    return fingerprint(sorted(entries))


def code_fingerprint(target: str | type) -> dict[str, Any]:
    """The identity of the code behind a class: ``"module:Class"`` or the class itself.

    Returns:
        ``{"module": ..., "source": <closure hash>}``, plus ``"distribution"`` (name,
        version, files hash) when the module comes from an installed distribution other
        than this harness.
    """
    module_name = target.partition(":")[0] if isinstance(target, str) else target.__module__
    with _CODE_LOCK:
        identity: dict[str, Any] = {
            "module": module_name,
            "source": _module_closure_hash(module_name),
        }
        dist = _distribution_of(module_name) if module_name.split(".")[0] != "benchmark" else None
        if dist is not None:
            name = dist.metadata["Name"]
            identity["distribution"] = {
                "name": name,
                "version": dist.version,
                "files": distribution_files_hash(name),
            }
    return identity


def plugin_file_fingerprint(path: Path) -> dict[str, Any]:
    """A plugin file's identity: its bytes and those of the sibling modules it imports."""
    path = Path(path).resolve()
    source = path.read_text(encoding="utf-8")
    files = {path.name: hashlib.sha256(source.encode("utf-8")).hexdigest()}
    stack = [source]
    while stack:
        text = stack.pop()
        for name in _imported_modules(text, path.stem, False):
            sibling = path.parent / f"{name.split('.')[0]}.py"
            if sibling.is_file() and sibling.name not in files:
                sibling_text = sibling.read_text(encoding="utf-8")
                files[sibling.name] = hashlib.sha256(sibling_text.encode("utf-8")).hexdigest()
                stack.append(sibling_text)
    return {"file": str(path), "sources": files}


@cache
def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of :data:`OUTPUT_LIBRARIES` (and ``extra``), None when not installed."""
    versions: dict[str, str | None] = {"python": ".".join(map(str, sys.version_info[:2]))}
    for name in (*OUTPUT_LIBRARIES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ------------------------------------------------------------------------------ audio


class AudioIdentityCache:
    """Size and sha256 of audio files, remembered by (path, size, mtime) across runs.

    Stored as one JSON file (``<workdir>/audio-ids.json``), rewritten atomically when new
    files were hashed. Hashing reads each file once; later runs only ``stat`` it.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("audio identity cache %s is unreadable; rehashing", self.path)

    def identity(self, path: Path) -> str:
        """``"<size>:<sha256>"`` of a file.

        Raises:
            DataError: the file does not exist (names it).
        """
        from benchmark.errors import DataError

        try:
            stat = os.stat(path)
        except OSError as exc:
            raise DataError(f"{path}: cannot read audio ({exc.strerror})") from None
        key = str(Path(path).resolve())
        entry = self._entries.get(key)
        if entry is not None and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return f"{stat.st_size}:{entry[2]}"
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        self._entries[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        self._dirty = True
        return f"{stat.st_size}:{digest.hexdigest()}"

    def save(self) -> None:
        """Persist newly hashed entries (atomic)."""
        if self.path is None or not self._dirty:
            return
        from benchmark.pipeline.store import atomic_write_text

        atomic_write_text(self.path, json.dumps(self._entries, separators=(",", ":")))
        self._dirty = False


def _referenced_paths(manifest: Manifest) -> Iterable[tuple[str, Path]]:
    for utterance in manifest:
        yield utterance.id, manifest.audio_path(utterance)
        for key, value in sorted(utterance.extra.items()):
            if key.endswith("_path") and isinstance(value, str):
                yield f"{utterance.id}:{key}", manifest.resolve(value)


def manifest_key(manifest: Manifest, audio_ids: AudioIdentityCache) -> str:
    """Key of a manifest's content: its lines (paths relative to the root) and audio bytes.

    The lines are what :meth:`Manifest.fingerprint` hashes (paths as the manifest stores
    them, relative to the corpus root); each referenced file (the utterance's audio and any
    ``extra.*_path`` twin) adds its size and content hash. Moving the corpus folder changes
    nothing; changing an audio file's bytes changes the key.
    """
    digest = hashlib.sha256(manifest.fingerprint().encode("utf-8"))
    for name, path in _referenced_paths(manifest):
        digest.update(f"{name}={audio_ids.identity(path)}\n".encode())
    audio_ids.save()
    return digest.hexdigest()

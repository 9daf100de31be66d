"""Shared pieces of the readers of real corpora in their standard folder layouts.

A reader lists the files a split needs, checks they exist, and builds its manifest once per
state of those files: the cache name carries a hash of the corpus folder's location and
every listed file's relative path, size and modification time, so the manifest is rebuilt
exactly when the folder changes. Durations come from the audio headers (soundfile).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf
from tqdm.auto import tqdm

from benchmark.api import BuildContext
from benchmark.data.manifest import (
    Manifest,
    Utterance,
    read_cached_manifest,
    read_manifest,
    write_manifest,
)
from benchmark.errors import DataError

log = logging.getLogger(__name__)


def corpus_folder(context: BuildContext, folder: str, marker: str, hint: str) -> Path:
    """The corpus folder under ``--data-root``: ``ROOT/folder`` or ROOT itself.

    Args:
        context: supplies ``data_root``.
        folder: the corpus's standard folder name (``IEMOCAP_full_release``).
        marker: a path inside the folder that identifies it (``Session1``).
        hint: how to obtain the corpus, for the messages.

    Raises:
        DataError: no data root, or neither ``ROOT/folder`` nor ROOT holds ``marker``.
    """
    if context.data_root is None:
        raise DataError(f"the full preset reads {folder}/ from --data-root DIR; {hint}")
    root = Path(context.data_root).expanduser()
    if (root / marker).exists() and not (root / folder).is_dir():
        return root
    path = root / folder
    if not path.is_dir():
        raise DataError(f"{path}: folder not found (expected {folder}/ under --data-root); {hint}")
    return path


def first_missing(files: Sequence[Path], what: str, fix: str) -> None:
    """Raise one DataError naming the first of ``files`` that does not exist, and how many.

    Args:
        files: every file the split needs.
        what: where they were listed (``"listed in iden_split.txt"``).
        fix: what to do about it.
    """
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise DataError(
            f"{missing[0]}: {what} but missing ({len(missing)} of {len(files)} files "
            f"missing); {fix}"
        )


def listing_hash(folder: Path, files: Sequence[Path], salt: str = "") -> str:
    """16 hex digits over the folder's location and each file's path, size and mtime."""
    digest = hashlib.sha256(f"{folder.resolve()}\n{salt}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def audio_utterance(
    folder: Path,
    path: Path,
    uid: str,
    speaker: str | None = None,
    label: str | None = None,
    text: str | None = None,
) -> Utterance:
    """An utterance of ``path`` (stored relative to ``folder``), duration from its header.

    Raises:
        DataError: the header cannot be read.
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read the audio header ({message})") from None
    return Utterance(
        uid, str(path.relative_to(folder)), info.frames / info.samplerate, info.samplerate,
        text, speaker, label,
    )  # fmt: skip


def cached_manifest(
    cache: Path,
    name: str,
    folder: Path,
    files: Sequence[Path],
    build: Callable[[], list[Utterance]],
    salt: str = "",
) -> Manifest:
    """The manifest ``cache/name-<listing hash>.jsonl``, built by ``build`` when absent.

    Args:
        cache: folder of cached manifests (``<workdir>/manifests/<corpus>``).
        name: manifest name (corpus and split).
        folder: the corpus folder; manifest paths are relative to it.
        files: every file the manifest depends on (audio and label files).
        build: makes the utterances (reads the audio headers).
        salt: anything else the manifest depends on (the reader's version).
    """
    path = Path(cache) / f"{name}-{listing_hash(folder, files, salt)}.jsonl"
    manifest = read_cached_manifest(path, root=folder)
    if manifest is None:
        log.info("building the %s manifest from %s (%d files)", name, folder, len(files))
        write_manifest(path, build())
        manifest = read_manifest(path, root=folder)
    return manifest


def headers(
    folder: Path,
    rows: Sequence[tuple[Path, str, str | None, str | None]],
    desc: str,
    progress: bool,
) -> list[Utterance]:
    """:func:`audio_utterance` of each ``(path, uid, speaker, label)`` row, with a tqdm bar."""
    return [
        audio_utterance(folder, path, uid, speaker, label)
        for path, uid, speaker, label in tqdm(rows, desc=desc, unit="file", disable=not progress)
    ]

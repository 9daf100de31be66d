"""Readers of the TTS corpora in their standard layouts: LJSpeech-1.1 and LibriTTS.

Both build a manifest once per state of the folder (listing hash of relative paths, sizes
and mtimes) under ``<workdir>/manifests/``; paths are stored relative to the corpus folder.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import soundfile as sf

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


def ljspeech_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    """LJSpeech-1.1 under ``--data-root``: ``train`` (99 %) and ``valid`` (every 100th id).

    Raises:
        DataError: no data root, a missing ``metadata.csv`` or a listed file missing.
    """
    if split not in ("train", "valid"):
        raise DataError(f"LJSpeech has splits train and valid, not {split!r}")
    cache = Path(context.workdir) / "manifests" / "vocoder"
    return _ljspeech(_data_root(context, "LJSpeech-1.1"), cache)[split]


def libritts_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    """One LibriTTS split folder (``train-clean-100``, ``dev-clean``, ...) under ``--data-root``.

    Raises:
        DataError: no data root or the split folder is missing or empty.
    """
    cache = Path(context.workdir) / "manifests" / "vocoder"
    return _libritts_split(_data_root(context, "LibriTTS") / split, cache)


def _data_root(context: BuildContext, folder: str) -> Path:
    if context.data_root is None:
        raise DataError(
            f"the vocoder corpus needs --data-root DIR holding {folder}/ in its standard layout"
        )
    root = Path(context.data_root).expanduser()
    path = root if root.name == folder else root / folder
    if not path.is_dir():
        raise DataError(f"{path}: folder not found (expected {folder}/ under --data-root)")
    return path


def _listing_hash(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _cached(cache: Path, name: str, folder: Path, files: list[Path], build) -> Manifest:
    path = cache / f"{name}-{_listing_hash(folder, files)}.jsonl"
    manifest = read_cached_manifest(path, root=folder)
    if manifest is None:
        log.info("building the %s manifest from %s (%d files)", name, folder, len(files))
        write_manifest(path, build())
        manifest = read_manifest(path, root=folder)
    return manifest


def _utterance(folder: Path, path: Path, uid: str, text: str | None, speaker: str | None):
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read the audio header ({exc})") from None
    return Utterance(
        uid, str(path.relative_to(folder)), info.frames / info.samplerate, info.samplerate,
        text, speaker,
    )  # fmt: skip


def _ljspeech(folder: Path, cache: Path) -> dict[str, Manifest]:
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise DataError(f"{metadata}: not found; is {folder} an unpacked LJSpeech-1.1?")
    rows = {}
    for line in metadata.read_text(encoding="utf-8").splitlines():
        parts = line.split("|")
        if len(parts) >= 2:
            rows[parts[0]] = parts[-1]
    ids = sorted(rows)
    files = [folder / "wavs" / f"{uid}.wav" for uid in ids]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: listed in metadata.csv but missing")
    manifests = {}
    for split, keep in (("train", lambda i: i % 100 != 0), ("valid", lambda i: i % 100 == 0)):
        chosen = [(uid, p) for i, (uid, p) in enumerate(zip(ids, files, strict=True)) if keep(i)]
        manifests[split] = _cached(
            cache,
            f"ljspeech-{split}",
            folder,
            [p for _, p in chosen],
            lambda chosen=chosen: [_utterance(folder, p, u, rows[u], "LJ") for u, p in chosen],
        )
    return manifests


def _libritts_split(folder: Path, cache: Path) -> Manifest:
    if not folder.is_dir():
        raise DataError(f"{folder}: LibriTTS split folder not found")
    files = sorted(folder.glob("*/*/*.wav"))
    if not files:
        raise DataError(f"{folder}: no <speaker>/<chapter>/<id>.wav files (LibriTTS layout)")

    def build() -> list[Utterance]:
        out = []
        for path in files:
            text_file = path.with_suffix(".normalized.txt")
            text = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else None
            out.append(_utterance(folder, path, path.stem, text, path.parent.parent.name))
        return out

    return _cached(cache, f"libritts-{folder.name}", folder, files, build)

"""Readers of the TTS corpora in their standard layouts: LJSpeech-1.1 and LibriTTS.

LJSpeech-1.1: ``metadata.csv`` (``id|transcription|normalized transcription``, the third
column is read) and ``wavs/<id>.wav``; split 90 / 5 / 5 % per chapter (:func:`ljspeech_split`).

Both build a manifest once per state of the folder (listing hash of relative paths, sizes
and mtimes) under ``<workdir>/manifests/``; paths are stored relative to the corpus folder.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
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


#: LJSpeech split: DASB's ratio and method (``ljspeech_prepare.split_sets`` of
#: speechbrain/benchmarks, DASB/LJSpeech: per chapter ``LJ001`` ... ``LJ050``, a seeded random
#: 90 / 5 / 5 % of its utterances to train / valid / test, rounded down for train and valid).
#: The permutation is this harness's own (numpy, seed below), so the ids differ from DASB's.
LJSPEECH_SPLIT_RATIO: dict[str, int] = {"train": 90, "valid": 5, "test": 5}
LJSPEECH_SPLIT_SEED = 1234
#: Names the cached split manifests: bump when :func:`ljspeech_split` changes its output.
LJSPEECH_SPLIT_VERSION = 2


def ljspeech_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    """LJSpeech-1.1 under ``--data-root``: ``train`` / ``valid`` / ``test`` (90 / 5 / 5 %).

    See :data:`LJSPEECH_SPLIT_RATIO`; the vocoder and the TTS task share this split, so the
    vocoder never trains on the TTS test recordings.

    Raises:
        DataError: no data root, a missing ``metadata.csv``, a malformed row, or a listed
            file missing.
    """
    if split not in LJSPEECH_SPLIT_RATIO:
        raise DataError(f"LJSpeech has splits {', '.join(LJSPEECH_SPLIT_RATIO)}, not {split!r}")
    cache = Path(context.workdir) / "manifests" / "ljspeech"
    return _ljspeech(_data_root(context, "LJSpeech-1.1"), cache)[split]


def ljspeech_split(ids: list[str]) -> dict[str, list[str]]:
    """Assign LJSpeech ids to splits, chapter by chapter (see :data:`LJSPEECH_SPLIT_RATIO`).

    Args:
        ids: utterance ids ``LJ<chapter>-<number>``.

    Returns:
        ``{split: sorted ids}``.
    """
    chapters: dict[str, list[str]] = {}
    for uid in sorted(ids):
        chapters.setdefault(uid.split("-")[0], []).append(uid)
    rng = np.random.default_rng(LJSPEECH_SPLIT_SEED)
    total = sum(LJSPEECH_SPLIT_RATIO.values())
    out: dict[str, list[str]] = {split: [] for split in LJSPEECH_SPLIT_RATIO}
    for chapter in sorted(chapters):
        members = [chapters[chapter][i] for i in rng.permutation(len(chapters[chapter]))]
        n_train = len(members) * LJSPEECH_SPLIT_RATIO["train"] // total
        n_valid = len(members) * LJSPEECH_SPLIT_RATIO["valid"] // total
        out["train"] += members[:n_train]
        out["valid"] += members[n_train : n_train + n_valid]
        out["test"] += members[n_train + n_valid :]
    return {split: sorted(members) for split, members in out.items()}


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
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[0]:
            raise DataError(
                f"{metadata}:{number}: expected 'id|transcription|normalized transcription' "
                f"(LJSpeech-1.1 layout), got {len(parts)} field(s)"
            )
        rows[parts[0]] = parts[2]
    if not rows:
        raise DataError(f"{metadata}: no rows; is {folder} an unpacked LJSpeech-1.1?")
    missing = [uid for uid in sorted(rows) if not (folder / "wavs" / f"{uid}.wav").is_file()]
    if missing:
        raise DataError(
            f"{folder / 'wavs' / (missing[0] + '.wav')}: listed in metadata.csv but missing "
            f"({len(missing)} missing in all)"
        )
    manifests = {}
    for split, chosen in ljspeech_split(list(rows)).items():
        paths = [folder / "wavs" / f"{uid}.wav" for uid in chosen]
        manifests[split] = _cached(
            cache,
            f"ljspeech-v{LJSPEECH_SPLIT_VERSION}-{split}",
            folder,
            paths,
            lambda chosen=chosen, paths=paths: [
                _utterance(folder, p, u, rows[u], "LJ") for u, p in zip(chosen, paths, strict=True)
            ],
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

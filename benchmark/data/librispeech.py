"""The LibriSpeech recipe: a JSONL manifest per split from the standard folder layout.

LibriSpeech (openslr.org/12) unpacks to::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

where each ``.trans.txt`` line is ``<speaker>-<chapter>-<utt> TRANSCRIPT IN UPPER CASE``.
:func:`librispeech_manifest` turns one split into a :class:`~benchmark.data.manifest.Manifest`
(absolute audio paths, durations from the FLAC headers, lower-cased transcripts, speaker
ids), sorted by utterance id. The manifest is cached as
``<cache_dir>/librispeech/<split>-<listing hash>.jsonl``; the hash covers the split folder's
location and every file's relative path, size and modification time, so the manifest is
rebuilt exactly when the folder changes. Any inconsistency in the layout is a
:class:`~benchmark.errors.DataError` naming the path and the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm.auto import tqdm

from benchmark.data.manifest import Manifest, Utterance, read_cached_manifest, write_manifest
from benchmark.errors import DataError

logger = logging.getLogger(__name__)

RECIPE_VERSION = "1"
SPLITS: tuple[str, ...] = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
#: Unions of splits, as the literature names them (the 960 h of LibriSpeech training data
#: that out-of-domain k-means are trained on).
SPLIT_UNIONS: dict[str, tuple[str, ...]] = {
    "train-960": ("train-clean-100", "train-clean-360", "train-other-500"),
}
FOLDER = "LibriSpeech"
DOWNLOAD_HINT = "download it from openslr.org/12"
NO_DATA_ROOT = (
    "the full preset reads LibriSpeech from --data-root DIR "
    f"(expects DIR/{FOLDER}/<split>/...); {DOWNLOAD_HINT}"
)


@dataclass(frozen=True)
class FileEntry:
    """One file of a split folder, as it enters the listing hash.

    Attributes:
        relative: path relative to the split folder, ``/``-separated.
        size: size in bytes.
        mtime_ns: modification time in nanoseconds.
    """

    relative: str
    size: int
    mtime_ns: int


#: Bump when the manifest lines change for the same files (2: paths relative to the corpus).
MANIFEST_VERSION = "v2"


def corpus_folder(data_root: Path | None, split: str) -> Path:
    """The ``LibriSpeech`` folder under ``data_root`` (or ``data_root`` itself).

    Args:
        data_root: the ``--data-root`` directory: the parent of ``LibriSpeech/`` or the
            ``LibriSpeech`` folder itself.
        split: the split the caller wants (used to recognise the second form).

    Raises:
        DataError: ``data_root`` is None or not a directory.
    """
    if data_root is None:
        raise DataError(NO_DATA_ROOT)
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root}: --data-root is not a directory; point it at the folder holding "
            f"{FOLDER}/ ({DOWNLOAD_HINT})"
        )
    nested = root / FOLDER
    if nested.is_dir():
        return nested
    if root.name == FOLDER or (root / split).is_dir():
        return root
    return nested


def split_folder(data_root: Path | None, split: str) -> Path:
    """The folder of one split, checked to exist.

    Raises:
        DataError: unknown split name, no ``data_root``, or the split folder is missing.
    """
    if split not in SPLITS:
        known = ", ".join((*SPLITS, *SPLIT_UNIONS))
        raise DataError(f"unknown LibriSpeech split {split!r}; known splits: {known}")
    folder = corpus_folder(data_root, split) / split
    if not folder.is_dir():
        raise DataError(
            f"{folder}: LibriSpeech split folder is missing; unpack {split}.tar.gz into "
            f"{folder.parent} ({DOWNLOAD_HINT})"
        )
    return folder


def list_files(folder: Path) -> list[FileEntry]:
    """Every file under ``folder`` (symlinks followed), sorted by relative path."""
    entries: list[FileEntry] = []
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        with os.scandir(current) as scan:
            for entry in scan:
                relative = f"{prefix}{entry.name}"
                if entry.is_dir():
                    pending.append((Path(entry.path), f"{relative}/"))
                elif entry.is_file():
                    stat = entry.stat()
                    entries.append(FileEntry(relative, stat.st_size, stat.st_mtime_ns))
    return sorted(entries, key=lambda e: e.relative)


def listing_hash(folder: Path, entries: list[FileEntry]) -> str:
    """16 hex digits of sha256 over the folder's location and its files' paths/sizes/mtimes."""
    digest = hashlib.sha256(f"librispeech-v{RECIPE_VERSION}\n{folder.resolve()}\n".encode())
    for entry in entries:
        digest.update(f"{entry.relative}\t{entry.size}\t{entry.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _chapters(folder: Path, entries: list[FileEntry]) -> dict[tuple[str, str], list[str]]:
    """Group file names by ``(speaker, chapter)``; every chapter folder appears, even empty."""
    chapters: dict[tuple[str, str], list[str]] = {}
    for speaker in sorted(p for p in folder.iterdir() if p.is_dir()):
        for chapter in sorted(p for p in speaker.iterdir() if p.is_dir()):
            chapters[(speaker.name, chapter.name)] = []
    for entry in entries:
        parts = entry.relative.split("/")
        if len(parts) == 3 and (parts[0], parts[1]) in chapters:
            chapters[(parts[0], parts[1])].append(parts[2])
        elif not parts[-1].startswith("."):
            logger.debug(
                "%s: ignored (not in a <speaker>/<chapter> folder)", folder / entry.relative
            )
    return chapters


def read_transcripts(path: Path, prefix: str) -> dict[str, str]:
    """Utterance id -> upper-case transcript from one ``.trans.txt`` file.

    Raises:
        DataError: a line that is not UTF-8, a line without text, an id outside the
            chapter, or a repeated id (one line naming ``file:line``).
    """
    transcripts: dict[str, str] = {}
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise DataError(f"{path}: cannot read transcripts ({exc.strerror or exc})") from None
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{where}: transcript line is not UTF-8 (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); restore the file from the LibriSpeech archive"
            ) from None
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) < 2 or not fields[1].strip():
            raise DataError(f"{where}: transcript line has no text; expected '<id> TEXT'")
        utterance_id, text = fields[0], " ".join(fields[1].split())
        if not utterance_id.startswith(prefix):
            raise DataError(
                f"{where}: utterance id {utterance_id!r} does not belong to this chapter "
                f"(expected {prefix}<utt>); restore the file from the LibriSpeech archive"
            )
        if utterance_id in transcripts:
            raise DataError(f"{where}: utterance id {utterance_id!r} appears twice")
        transcripts[utterance_id] = text
    return transcripts


def _chapter_utterances(
    chapter_dir: Path, speaker: str, chapter: str, names: list[str], corpus_root: Path
) -> list[Utterance]:
    """The utterances of one chapter folder, checked against its transcript file.

    Paths are stored relative to ``corpus_root`` (the ``LibriSpeech`` folder), so the same
    corpus mounted elsewhere gives the same manifest lines.
    """
    trans_name = f"{speaker}-{chapter}.trans.txt"
    trans_path = chapter_dir / trans_name
    if trans_name not in names:
        raise DataError(
            f"{trans_path}: transcript file is missing for chapter {chapter_dir}; restore it "
            "from the LibriSpeech archive or remove the chapter folder"
        )
    transcripts = read_transcripts(trans_path, f"{speaker}-{chapter}-")
    audio = {name[: -len(".flac")] for name in names if name.endswith(".flac")}
    no_audio = sorted(set(transcripts) - audio)
    if no_audio:
        raise DataError(
            f"{chapter_dir / (no_audio[0] + '.flac')}: audio file is missing for a line of "
            f"{trans_path} ({len(no_audio)} missing in this chapter); restore it from the "
            "LibriSpeech archive"
        )
    no_text = sorted(audio - set(transcripts))
    if no_text:
        raise DataError(
            f"{chapter_dir / (no_text[0] + '.flac')}: audio file has no line in {trans_path} "
            f"({len(no_text)} such files in this chapter); restore the transcript or remove "
            "the file"
        )
    utterances = []
    for utterance_id in sorted(transcripts):
        path = chapter_dir / f"{utterance_id}.flac"
        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile raises several types
            reason = " ".join(str(exc).split())
            raise DataError(f"{path}: cannot read audio header ({reason})") from None
        if info.frames <= 0 or info.samplerate <= 0:
            raise DataError(f"{path}: audio file is empty (0 samples)")
        utterances.append(
            Utterance(
                id=utterance_id,
                path=path.relative_to(corpus_root).as_posix(),
                duration=info.frames / info.samplerate,
                sample_rate=int(info.samplerate),
                text=transcripts[utterance_id].lower(),
                speaker=speaker,
            )
        )
    return utterances


def build_utterances(
    folder: Path, entries: list[FileEntry], progress: bool = True
) -> list[Utterance]:
    """Every utterance of a split folder, sorted by id.

    Args:
        folder: the split folder (``.../LibriSpeech/<split>``), absolute.
        entries: its listing from :func:`list_files`.
        progress: show a tqdm bar over chapters.

    Raises:
        DataError: a chapter without transcript, a transcript line without audio, audio
            without a transcript line, an unreadable file, or no utterance at all.
    """
    chapters = _chapters(folder, entries)
    if not chapters:
        raise DataError(
            f"{folder}: split folder holds no <speaker>/<chapter> folders; unpack the "
            f"{folder.name} archive again ({DOWNLOAD_HINT})"
        )
    utterances: list[Utterance] = []
    bar = tqdm(
        sorted(chapters.items()),
        desc=f"LibriSpeech {folder.name}",
        unit="chapter",
        disable=not progress,
    )
    for (speaker, chapter), names in bar:
        chapter_dir = folder / speaker / chapter
        utterances.extend(_chapter_utterances(chapter_dir, speaker, chapter, names, folder.parent))
    if not utterances:
        raise DataError(f"{folder}: split has no utterances; unpack it again ({DOWNLOAD_HINT})")
    return sorted(utterances, key=lambda u: u.id)


def librispeech_manifest(
    data_root: Path | None, split: str, cache_dir: Path, progress: bool = True
) -> Manifest:
    """The manifest of one LibriSpeech split, built once per state of the split folder.

    Args:
        data_root: the ``--data-root`` directory holding ``LibriSpeech/`` (or the
            ``LibriSpeech`` folder itself).
        split: one of :data:`SPLITS` (``train-clean-100``, ``dev-clean``, ``test-clean``, ...)
            or a union of :data:`SPLIT_UNIONS` (``train-960``).
        cache_dir: where manifests are cached (``<cache_dir>/librispeech/<split>-<hash>.jsonl``).
        progress: show a tqdm bar over chapters while building.

    Returns:
        The manifest, sorted by utterance id: FLAC paths relative to the ``LibriSpeech``
        folder (the manifest's ``root``), durations in seconds,
        sample rates in Hz, lower-cased transcripts in ``text``, speaker ids in ``speaker``.

    Raises:
        DataError: no ``data_root``, an unknown or missing split, or a broken layout.
    """
    if split in SPLIT_UNIONS:
        parts = [
            librispeech_manifest(data_root, part, cache_dir, progress)
            for part in SPLIT_UNIONS[split]
        ]
        utterances = tuple(u for part in parts for u in part.utterances)
        return Manifest(utterances, root=parts[0].root, source=None)
    folder = split_folder(data_root, split).resolve()
    entries = list_files(folder)
    name = f"{split}-{MANIFEST_VERSION}-{listing_hash(folder, entries)}.jsonl"
    path = Path(cache_dir) / "librispeech" / name
    manifest = read_cached_manifest(path, root=folder.parent)
    if manifest is not None:
        logger.debug("LibriSpeech %s: cached manifest %s", split, path)
        return manifest
    logger.info("LibriSpeech %s: building manifest from %s", split, folder)
    utterances = build_utterances(folder, entries, progress=progress)
    write_manifest(path, utterances)
    hours = sum(u.duration for u in utterances) / 3600
    logger.info("LibriSpeech %s: %d utterances, %.2f h -> %s", split, len(utterances), hours, path)
    return Manifest(tuple(utterances), root=folder.parent, source=path)

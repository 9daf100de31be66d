"""The VoiceBank-DEMAND recipe (Valentini-Botinhao et al. 2016): noisy/clean pair manifests.

The corpus (datashare.ed.ac.uk/handle/10283/2791, 28-speaker version) unpacks to::

    <data_root>/clean_trainset_28spk_wav/p226_001.wav ...   (11572 files, 28 speakers)
    <data_root>/noisy_trainset_28spk_wav/p226_001.wav ...
    <data_root>/clean_testset_wav/p232_001.wav ...          (824 files, p232 and p257)
    <data_root>/noisy_testset_wav/p232_001.wav ...
    <data_root>/trainset_28spk_txt/p226_001.txt ...         (transcripts, optional)
    <data_root>/testset_txt/p232_001.txt ...

(``<data_root>`` may also hold them in a ``VoiceBank-DEMAND`` subfolder.) Files are 48 kHz;
the audio loader resamples. Splits: ``test`` is the official test set; ``valid`` holds out
two of the 28 training speakers, :data:`VALID_SPEAKERS` (``p226`` and ``p287``, the choice
speechbrain's VoiceBank recipe makes), so validation is speaker-disjoint from training;
``train`` is the other 26 speakers.

Each manifest line has the shape of the mini ``enhance`` subset's: the *noisy* file is the
utterance's ``path``, its clean twin ``extra.clean_path`` (absolute), ``speaker`` the file
name's prefix, ``text`` the transcript when the transcript folder is present. Manifests are
cached as ``<cache_dir>/voicebank/<split>-<listing hash>.jsonl``; the hash covers the
folders' locations and every file's name, size and modification time.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import soundfile as sf
from tqdm.auto import tqdm

from benchmark.data.librispeech import FileEntry, list_files
from benchmark.data.manifest import Manifest, Utterance, read_manifest, write_manifest
from benchmark.errors import DataError

logger = logging.getLogger(__name__)

RECIPE_VERSION = "1"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
SUBFOLDER = "VoiceBank-DEMAND"
#: (clean folder, noisy folder, transcript folder) of the official train and test sets.
FOLDERS: dict[str, tuple[str, str, str]] = {
    "train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "trainset_28spk_txt"),
    "test": ("clean_testset_wav", "noisy_testset_wav", "testset_txt"),
}
#: Training speakers held out for validation (speaker-disjoint), fixed.
VALID_SPEAKERS: tuple[str, ...] = ("p226", "p287")
DOWNLOAD_HINT = "download VoiceBank-DEMAND (28 speakers) from datashare.ed.ac.uk/handle/10283/2791"


def corpus_folder(data_root: Path | None) -> Path:
    """The folder holding the corpus's ``*_wav`` folders (``data_root`` or its subfolder).

    Raises:
        DataError: ``data_root`` is None or not a directory.
    """
    if data_root is None:
        raise DataError(
            f"the full preset reads VoiceBank-DEMAND from --data-root DIR (expects "
            f"DIR/{FOLDERS['train'][0]}/ ...); {DOWNLOAD_HINT}"
        )
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: --data-root is not a directory; {DOWNLOAD_HINT}")
    nested = root / SUBFOLDER
    return nested if nested.is_dir() and not (root / FOLDERS["train"][0]).is_dir() else root


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise DataError(f"{folder}: VoiceBank-DEMAND folder is missing; unzip {name}.zip there")
    return folder


def _wavs(folder: Path, entries: list[FileEntry]) -> dict[str, FileEntry]:
    """Utterance id -> entry of the ``.wav`` files directly in ``folder``."""
    out = {e.relative[: -len(".wav")]: e for e in entries if e.relative.endswith(".wav")}
    out = {k: v for k, v in out.items() if "/" not in k}
    if not out:
        raise DataError(f"{folder}: holds no .wav files; unzip the archive again ({DOWNLOAD_HINT})")
    return out


def _transcript(folder: Path | None, utterance_id: str) -> str | None:
    if folder is None:
        return None
    path = folder / f"{utterance_id}.txt"
    if not path.is_file():
        raise DataError(
            f"{path}: transcript is missing while its folder exists; restore it or remove "
            f"{folder} to build manifests without text"
        )
    return " ".join(path.read_text(encoding="utf-8", errors="replace").split()).lower()


def _listing(root: Path, official: str) -> tuple[Path, Path, Path | None, str]:
    """The split's folders and the hash of their listings."""
    clean_name, noisy_name, text_name = FOLDERS[official]
    clean, noisy = _folder(root, clean_name), _folder(root, noisy_name)
    text = root / text_name if (root / text_name).is_dir() else None
    digest = hashlib.sha256(f"voicebank-v{RECIPE_VERSION}\n{root.resolve()}\n".encode())
    for folder in (clean, noisy, text):
        if folder is None:
            continue
        digest.update(f"[{folder.name}]\n".encode())
        for entry in list_files(folder):
            digest.update(f"{entry.relative}\t{entry.size}\t{entry.mtime_ns}\n".encode())
    return clean, noisy, text, digest.hexdigest()[:16]


def build_utterances(
    clean: Path, noisy: Path, text: Path | None, progress: bool = True
) -> list[Utterance]:
    """The noisy/clean pairs of one official split, sorted by id.

    Raises:
        DataError: a noisy file without clean twin (or the reverse), an unreadable or empty
            file, twins with different rates, or a missing transcript.
    """
    noisy_files, clean_files = _wavs(noisy, list_files(noisy)), _wavs(clean, list_files(clean))
    for have, lack, folder in (
        (noisy_files, clean_files, clean),
        (clean_files, noisy_files, noisy),
    ):
        missing = sorted(set(have) - set(lack))
        if missing:
            raise DataError(
                f"{folder / (missing[0] + '.wav')}: file is missing ({len(missing)} files of "
                f"one folder have no twin in {folder}); unzip the archive again"
            )
    utterances = []
    for utterance_id in tqdm(sorted(noisy_files), desc="VoiceBank", disable=not progress):
        noisy_path, clean_path = noisy / f"{utterance_id}.wav", clean / f"{utterance_id}.wav"
        infos = []
        for path in (noisy_path, clean_path):
            try:
                info = sf.info(str(path))
            except Exception as exc:  # libsndfile raises several types
                reason = " ".join(str(exc).split())
                raise DataError(f"{path}: cannot read audio header ({reason})") from None
            if info.frames <= 0:
                raise DataError(f"{path}: audio file is empty (0 samples)")
            infos.append(info)
        if infos[0].samplerate != infos[1].samplerate:
            raise DataError(
                f"{noisy_path}: {infos[0].samplerate} Hz but its clean twin is "
                f"{infos[1].samplerate} Hz; restore both from the archive"
            )
        utterances.append(
            Utterance(
                id=utterance_id,
                path=str(noisy_path),
                duration=infos[0].frames / infos[0].samplerate,
                sample_rate=int(infos[0].samplerate),
                text=_transcript(text, utterance_id),
                speaker=utterance_id.split("_", 1)[0],
                extra={"clean_path": str(clean_path)},
            )
        )
    return utterances


def voicebank_manifest(
    data_root: Path | None, split: str, cache_dir: Path, progress: bool = True
) -> Manifest:
    """The manifest of one VoiceBank-DEMAND split, built once per state of its folders.

    Args:
        data_root: the ``--data-root`` directory holding the corpus folders.
        split: ``train`` (26 speakers), ``valid`` (:data:`VALID_SPEAKERS`) or ``test``.
        cache_dir: where manifests are cached (``<cache_dir>/voicebank/...``).
        progress: show a tqdm bar while building.

    Returns:
        The manifest, sorted by id: noisy file as ``path``, ``extra.clean_path`` its clean
        twin (absolute paths), ``speaker``, ``text`` when transcripts are present.

    Raises:
        DataError: unknown split, no data root, a missing folder (named), a broken layout.
    """
    if split not in SPLITS:
        raise DataError(f"unknown VoiceBank-DEMAND split {split!r}; known: {', '.join(SPLITS)}")
    root = corpus_folder(data_root)
    official = "test" if split == "test" else "train"
    clean, noisy, text, digest = _listing(root, official)
    path = Path(cache_dir) / "voicebank" / f"{official}-{digest}.jsonl"
    manifest = None
    if path.is_file():
        try:
            manifest = read_manifest(path)
        except DataError as exc:
            logger.warning("rebuilding unreadable cached manifest: %s", exc)
    if manifest is None:
        logger.info("VoiceBank-DEMAND %s: building manifest from %s", official, noisy)
        utterances = build_utterances(clean, noisy, text, progress)
        write_manifest(path, utterances)
        manifest = Manifest(tuple(utterances), root=path.parent, source=path)
    if split == "test":
        return manifest
    held_out = set(VALID_SPEAKERS)
    kept = tuple(u for u in manifest if (u.speaker in held_out) == (split == "valid"))
    if not kept:
        raise DataError(
            f"{noisy}: no utterance of the {split} speakers "
            f"({'' if split == 'valid' else 'not '}{', '.join(VALID_SPEAKERS)}); is this the "
            "28-speaker training set?"
        )
    return Manifest(kept, root=manifest.root, source=manifest.source)

"""The IEMOCAP recipe: 4-class emotion recognition from the standard release layout.

IEMOCAP (Busso et al. 2008, sail.usc.edu/iemocap) unpacks to::

    IEMOCAP_full_release/SessionN/sentences/wav/<dialog>/<utterance>.wav
    IEMOCAP_full_release/SessionN/dialog/EmoEvaluation/<dialog>.txt

for N = 1..5. Each evaluation file holds one summary line per utterance,
``[START - END]<TAB><utterance><TAB><code><TAB>[V, A, D]``, followed by the annotators'
lines (``C-E1:``, ``A-F1:``, ...), which the reader skips. The 4-class protocol of the
literature (and of DASB's IEMOCAP task): ``neu`` -> neutral, ``hap`` and ``exc`` -> happy,
``sad`` -> sad, ``ang`` -> angry; the other IEMOCAP codes (``fru``, ``sur``, ``fea``,
``dis``, ``oth``, ``xxx``: no majority) are dropped. A code that is not an IEMOCAP code at
all is dropped too, counted, and reported in a warning naming the first file and line.

Splits (leave-one-session-out, fold "session 5"): ``test`` = Session 5 (its two speakers are
never seen in training); ``valid`` = the female speaker of Session 4 (``Ses04F``), so model
selection also happens on an unseen speaker, as speechbrain's ``iemocap_prepare``
(``different_speakers=True``) does with a whole held-out session; we hold out one speaker
rather than a session to keep 7 of the 8 speakers of sessions 1-4 for training; ``train`` =
every other utterance of sessions 1-4. Speakers are ``Ses0N`` + the utterance's gender
letter (``Ses01F_impro01_M003`` -> ``Ses01M``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmark.api import BuildContext
from benchmark.data.corpus_files import cached_manifest, corpus_folder, first_missing, headers
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

log = logging.getLogger(__name__)

RECIPE_VERSION = "1"
FOLDER = "IEMOCAP_full_release"
HINT = "IEMOCAP is licensed by USC SAIL (sail.usc.edu/iemocap); unpack IEMOCAP_full_release"
SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
TEST_SESSION = 5
VALID_SPEAKER = "Ses04F"
#: the 4-class protocol: IEMOCAP code -> class
CLASSES: dict[str, str] = {
    "neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry",
}  # fmt: skip
#: every categorical code of the IEMOCAP release (those outside CLASSES are dropped)
CODES: frozenset[str] = frozenset({*CLASSES, "fru", "sur", "fea", "dis", "oth", "xxx"})
_SUMMARY = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)\s+\[")
_UTTERANCE = re.compile(r"^Ses0(\d)[FM]_\S*_([FM])\d+$")


@dataclass(frozen=True)
class IemocapIndex:
    """What the label files say, before any audio is read.

    Attributes:
        rows: split -> ``(wav path, utterance id, speaker, class)`` in id order.
        label_files: every evaluation file read (they enter the cache key).
        codes: how many utterances carried each IEMOCAP code (kept and dropped).
        unknown: how many carried a code outside :data:`CODES` (dropped).
    """

    rows: dict[str, list[tuple[Path, str, str, str]]]
    label_files: list[Path]
    codes: Counter
    unknown: int

    @property
    def dropped(self) -> int:
        """Utterances left out: codes outside the 4 classes, known or not."""
        return sum(n for code, n in self.codes.items() if code not in CLASSES) + self.unknown


def iemocap_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    """One split of IEMOCAP under ``--data-root`` (4 classes; see the module docstring).

    Args:
        subset: ``iemocap`` (the only subset).
        split: ``train``, ``valid`` or ``test``.
        context: data root, workdir (the manifest cache) and the progress switch.

    Raises:
        DataError: unknown subset or split, no data root, a session folder, label file or
            listed WAV missing, or a split left empty.
    """
    if subset != "iemocap":
        raise DataError(f"unknown IEMOCAP subset {subset!r}; use subset: iemocap")
    if split not in SPLITS:
        raise DataError(f"IEMOCAP has splits {list(SPLITS)}, not {split!r}")
    folder = corpus_folder(context, FOLDER, "Session1", HINT)
    index = read_iemocap(folder)
    rows = index.rows[split]
    first_missing([row[0] for row in rows], "labelled in dialog/EmoEvaluation", HINT)
    cache = Path(context.workdir) / "manifests" / "iemocap"
    return cached_manifest(
        cache, f"iemocap-{split}", folder, [*index.label_files, *(row[0] for row in rows)],
        lambda: headers(folder, rows, f"IEMOCAP {split}: audio headers", context.progress),
        salt=RECIPE_VERSION,
    )  # fmt: skip


def read_iemocap(folder: Path) -> IemocapIndex:
    """Parse every session's evaluation files into the three splits' rows.

    Raises:
        DataError: a session's ``sentences/wav`` or ``dialog/EmoEvaluation`` folder is
            missing or holds no label file; an utterance id of an unexpected form; no
            utterance of the 4 classes in some split.
    """
    folder = Path(folder)
    rows: dict[str, list[tuple[Path, str, str, str]]] = {split: [] for split in SPLITS}
    label_files: list[Path] = []
    codes: Counter = Counter()
    unknown: list[str] = []
    for session in SESSIONS:
        base = folder / f"Session{session}"
        for expected in (base / "sentences" / "wav", base / "dialog" / "EmoEvaluation"):
            if not expected.is_dir():
                raise DataError(
                    f"{expected}: IEMOCAP session folder not found (sessions 1-5 are all "
                    f"needed: 1-4 train/valid, 5 test); {HINT}"
                )
        files = sorted((base / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not files:
            raise DataError(f"{base / 'dialog' / 'EmoEvaluation'}: no <dialog>.txt label files")
        label_files += files
        for label_file in files:
            for number, (utterance, code) in _summary_lines(label_file):
                if code not in CODES:
                    unknown.append(f"{label_file}:{number}: {code!r}")
                    continue
                codes[code] += 1
                if code not in CLASSES:
                    continue
                speaker = _speaker(utterance, label_file, number)
                if int(speaker[4]) != session:
                    raise DataError(
                        f"{label_file}:{number}: utterance {utterance!r} is not of Session{session}"
                    )
                split = _split_of(session, speaker)
                wav = base / "sentences" / "wav" / label_file.stem / f"{utterance}.wav"
                rows[split].append((wav, utterance, speaker, CLASSES[code]))
    if unknown:
        log.warning(
            "IEMOCAP: dropped %d utterances whose label is not an IEMOCAP code (known: %s); "
            "first: %s", len(unknown), ", ".join(sorted(CODES)), unknown[0],
        )  # fmt: skip
    for split, split_rows in rows.items():
        if not split_rows:
            raise DataError(f"{folder}: IEMOCAP {split} split has no neu/hap/exc/sad/ang utterance")
        split_rows.sort(key=lambda row: row[1])
    return IemocapIndex(rows, label_files, codes, len(unknown))


def _summary_lines(label_file: Path):
    """``(line number, (utterance id, code))`` of each summary line of an evaluation file."""
    try:
        lines = label_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{label_file}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        match = _SUMMARY.match(line)
        if match:
            yield number, (match.group(1), match.group(2))


def _speaker(utterance: str, label_file: Path, number: int) -> str:
    match = _UTTERANCE.match(utterance)
    if match is None:
        raise DataError(
            f"{label_file}:{number}: utterance id {utterance!r} is not of the IEMOCAP form "
            "Ses0<N><F|M>_<dialog>_<F|M><nnn>"
        )
    return f"Ses0{match.group(1)}{match.group(2)}"


def _split_of(session: int, speaker: str) -> str:
    if session == TEST_SESSION:
        return "test"
    return "valid" if speaker == VALID_SPEAKER else "train"

"""The VoxCeleb1 identification recipe: closed-set speaker ID over 1251 celebrities.

VoxCeleb1 (Nagrani et al. 2017, robots.ox.ac.uk/~vgg/data/voxceleb) unpacks (the dev and
test WAV archives together) to::

    VoxCeleb1/wav/<speaker id>/<video id>/<nnnnn>.wav
    VoxCeleb1/iden_split.txt

where each line of ``iden_split.txt`` is ``<set> <speaker id>/<video id>/<nnnnn>.wav`` with
set ``1`` = train, ``2`` = valid, ``3`` = test: the official identification split, in which
every speaker appears in all three sets (138,361 / 6,904 / 8,251 utterances). The speaker id
is the class; the utterance id is the relative path without ``.wav``, slashes turned into
dashes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from benchmark.api import BuildContext
from benchmark.data.corpus_files import cached_manifest, corpus_folder, first_missing, headers
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

log = logging.getLogger(__name__)

RECIPE_VERSION = "1"
FOLDER = "VoxCeleb1"
SPLIT_FILE = "iden_split.txt"
HINT = (
    "unpack vox1_dev_wav and vox1_test_wav into VoxCeleb1/wav/ and put iden_split.txt "
    "(robots.ox.ac.uk/~vgg/data/voxceleb) beside it"
)
#: iden_split.txt set number -> split
SETS: dict[str, str] = {"1": "train", "2": "valid", "3": "test"}
SPEAKERS = 1251


def voxceleb1_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    """One split of VoxCeleb1 identification under ``--data-root``.

    Args:
        subset: ``identification`` (the only subset).
        split: ``train``, ``valid`` or ``test``.
        context: data root, workdir (the manifest cache) and the progress switch.

    Raises:
        DataError: unknown subset or split, no data root, a missing ``iden_split.txt`` or
            ``wav/`` folder, a malformed line or set number, or a listed WAV missing.
    """
    if subset != "identification":
        raise DataError(f"unknown VoxCeleb1 subset {subset!r}; use subset: identification")
    if split not in SETS.values():
        raise DataError(f"VoxCeleb1 identification has splits {list(SETS.values())}, not {split!r}")
    folder = corpus_folder(context, FOLDER, SPLIT_FILE, HINT)
    rows = read_iden_split(folder)[split]
    first_missing([row[0] for row in rows], f"listed in {SPLIT_FILE}", HINT)
    cache = Path(context.workdir) / "manifests" / "voxceleb1"
    return cached_manifest(
        cache, f"voxceleb1-iden-{split}", folder, [folder / SPLIT_FILE, *(row[0] for row in rows)],
        lambda: headers(folder, rows, f"VoxCeleb1 {split}: audio headers", context.progress),
        salt=RECIPE_VERSION,
    )  # fmt: skip


def read_iden_split(folder: Path) -> dict[str, list[tuple[Path, str, str, None]]]:
    """``iden_split.txt`` as split -> ``(wav path, utterance id, speaker, None)`` rows.

    Raises:
        DataError: the file or the ``wav/`` folder is missing, a line is not
            ``<1|2|3> <speaker>/<video>/<file>.wav``, or a path is listed twice.
    """
    folder = Path(folder)
    split_file = folder / SPLIT_FILE
    if not split_file.is_file():
        raise DataError(f"{split_file}: not found; {HINT}")
    if not (folder / "wav").is_dir():
        raise DataError(f"{folder / 'wav'}: folder not found; {HINT}")
    rows: dict[str, list[tuple[Path, str, str, None]]] = {split: [] for split in SETS.values()}
    seen: set[str] = set()
    lines = split_file.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        relative = parts[1] if len(parts) == 2 else ""
        pieces = relative.split("/")
        if len(pieces) != 3 or not relative.endswith(".wav"):
            raise DataError(
                f"{split_file}:{number}: {line.strip()!r} is not '<set> <speaker>/<video>/<n>.wav'"
            )
        if parts[0] not in SETS:
            raise DataError(
                f"{split_file}:{number}: set {parts[0]!r} is not one of 1 (train), 2 (valid), "
                "3 (test)"
            )
        if relative in seen:
            raise DataError(f"{split_file}:{number}: {relative} is listed twice")
        seen.add(relative)
        uid = relative[: -len(".wav")].replace("/", "-")
        rows[SETS[parts[0]]].append((folder / "wav" / relative, uid, pieces[0], None))
    speakers = {row[2] for split_rows in rows.values() for row in split_rows}
    if len(speakers) != SPEAKERS:
        log.warning(
            "%s lists %d speakers; the VoxCeleb1 identification split has %d",
            split_file, len(speakers), SPEAKERS,
        )  # fmt: skip
    for split, split_rows in rows.items():
        if not split_rows:
            raise DataError(f"{split_file}: no line of the {split} set")
    return rows

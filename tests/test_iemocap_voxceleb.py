"""The IEMOCAP and VoxCeleb1 readers on tiny fixtures laid out exactly like the real corpora."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.api import BuildContext
from benchmark.data.corpora import corpus_manifest
from benchmark.data.iemocap import read_iemocap
from benchmark.errors import DataError

RATE = 16000
VAD = "[2.5000, 3.0000, 2.5000]"  # valence, arousal, dominance, as the release writes them


def _write(path: Path, seed: int, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    sf.write(str(path), wave.astype(np.float32), RATE, subtype="PCM_16")


# per session: (dialog, [(utterance suffix, code)]); every session has both speakers
_DIALOGS = {
    "impro01": [("F000", "neu"), ("M000", "ang"), ("F001", "fru"), ("M001", "exc")],
    "script01_1": [("F000", "sad"), ("M000", "hap"), ("F001", "xxx"), ("M001", "neu")],
}


def make_iemocap(root: Path, unknown: str | None = None) -> Path:
    """IEMOCAP_full_release/ with 5 sessions x 2 dialogs x 4 utterances (3 of 4 kept).

    Args:
        root: parent of ``IEMOCAP_full_release``.
        unknown: a code outside IEMOCAP's, on one extra line of each Ses01F label file.
    """
    folder = root / "IEMOCAP_full_release"
    seed = 0
    for session in range(1, 6):
        for dialog, turns in _DIALOGS.items():
            for gender in "FM":
                name = f"Ses0{session}{gender}_{dialog}"
                lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
                extra = [("F009", unknown)] if unknown and session == 1 and gender == "F" else []
                for k, (suffix, code) in enumerate([*turns, *extra]):
                    uid = f"{name}_{suffix}"
                    start = 1.5 * k
                    lines += [
                        f"[{start:.4f} - {start + 1.2:.4f}]\t{uid}\t{code}\t{VAD}",
                        "C-E1:\tNeutral state;\t()",
                        "A-E1:\tval 3; act 2; dom  2;\t()",
                        "",
                    ]
                    wav = folder / f"Session{session}" / "sentences" / "wav" / name / f"{uid}.wav"
                    _write(wav, seed)
                    seed += 1
                evaluation = folder / f"Session{session}" / "dialog" / "EmoEvaluation"
                evaluation.mkdir(parents=True, exist_ok=True)
                (evaluation / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder


def _context(tmp_path: Path, data_root: Path) -> BuildContext:
    return BuildContext(
        preset="full", workdir=tmp_path / "work", data_root=data_root, progress=False
    )


def test_iemocap_four_classes_session_split(tmp_path):
    make_iemocap(tmp_path / "data")
    context = _context(tmp_path, tmp_path / "data")
    splits = {
        s: corpus_manifest("iemocap", "iemocap", s, context) for s in ("train", "valid", "test")
    }
    speakers = {s: {u.speaker for u in m} for s, m in splits.items()}
    assert speakers["test"] == {"Ses05F", "Ses05M"}
    assert speakers["valid"] == {"Ses04F"}
    assert speakers["train"] == {f"Ses0{n}{g}" for n in range(1, 5) for g in "FM"} - {"Ses04F"}
    # 3 of each label file's 4 utterances are 4-class (fru, xxx dropped): 12 per session,
    # 4 of Session 4's spoken by its female speaker
    assert len(splits["test"]) == 12 and len(splits["valid"]) == 4 and len(splits["train"]) == 44
    labels = {u.label for m in splits.values() for u in m}
    assert labels == {"neutral", "happy", "sad", "angry"}
    by_id = splits["train"].by_id()
    assert by_id["Ses01F_impro01_M001"].label == "happy"  # exc merged into happy
    assert by_id["Ses01M_script01_1_M000"].label == "happy"
    assert "Ses01F_impro01_F001" not in by_id  # fru dropped
    utterance = by_id["Ses02M_impro01_F000"]
    assert utterance.speaker == "Ses02F" and abs(utterance.duration - 0.2) < 1e-6
    path = splits["train"].audio_path(utterance)
    assert (
        path
        == tmp_path
        / "data/IEMOCAP_full_release/Session2/sentences/wav/Ses02M_impro01/Ses02M_impro01_F000.wav"
    )
    # built once: the second read hits the cache (same file), a changed folder rebuilds
    again = corpus_manifest("iemocap", "iemocap", "test", context)
    assert again.source == splits["test"].source
    os.utime(
        tmp_path
        / "data/IEMOCAP_full_release/Session5/sentences/wav/Ses05F_impro01/Ses05F_impro01_F000.wav",
        ns=(1, 1),
    )
    assert corpus_manifest("iemocap", "iemocap", "test", context).source != splits["test"].source


def test_iemocap_labels_outside_the_known_set_are_dropped_and_counted(tmp_path, caplog):
    folder = make_iemocap(tmp_path / "data", unknown="happyish")
    with caplog.at_level(logging.WARNING):
        index = read_iemocap(folder)
    assert index.unknown == 2  # one line in each of the two Ses01F label files
    assert index.codes["fru"] == 10 and index.codes["xxx"] == 10 and index.codes["exc"] == 10
    assert index.dropped == 22
    assert "happyish" in caplog.text and "Ses01F_impro01.txt:" in caplog.text
    assert all(r[1] != "Ses01F_impro01_F009" for rows in index.rows.values() for r in rows)


def test_iemocap_missing_session_names_the_expected_path(tmp_path):
    folder = make_iemocap(tmp_path / "data")
    for path in sorted((folder / "Session5").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (folder / "Session5").rmdir()
    with pytest.raises(DataError) as error:
        corpus_manifest("iemocap", "iemocap", "train", _context(tmp_path, tmp_path / "data"))
    message = str(error.value)
    assert "\n" not in message and str(folder / "Session5" / "sentences" / "wav") in message


def test_iemocap_missing_wav_and_no_data_root(tmp_path):
    folder = make_iemocap(tmp_path / "data")
    wav = folder / "Session5/sentences/wav/Ses05M_script01_1/Ses05M_script01_1_M000.wav"
    wav.unlink()
    with pytest.raises(DataError, match="Ses05M_script01_1_M000.wav: labelled in") as error:
        corpus_manifest("iemocap", "iemocap", "test", _context(tmp_path, tmp_path / "data"))
    assert "1 of 12 files missing" in str(error.value)
    with pytest.raises(DataError, match="--data-root"):
        corpus_manifest("iemocap", "iemocap", "test", _context(tmp_path, None))
    with pytest.raises(DataError, match="IEMOCAP_full_release/ under --data-root"):
        corpus_manifest("iemocap", "iemocap", "test", _context(tmp_path, tmp_path))


# ------------------------------------------------------------------------------ VoxCeleb1

_VOX = {
    "id10001": ("1zcIwhmdeo4", "7gWzIy6yIIk"),
    "id10002": ("0_laIeN-Q44",),
    "id10003": ("5ablueV_1tw",),
}


def make_voxceleb1(root: Path) -> Path:
    """VoxCeleb1/ with 3 speakers; per video files 00001-00003 in sets 1, 2, 3."""
    folder = root / "VoxCeleb1"
    lines, seed = [], 0
    for speaker, videos in _VOX.items():
        for video in videos:
            for n, split_set in ((1, 1), (2, 2), (3, 3)):
                relative = f"{speaker}/{video}/{n:05d}.wav"
                _write(folder / "wav" / relative, seed)
                lines.append(f"{split_set} {relative}")
                seed += 1
    (folder / "iden_split.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_voxceleb1_identification_splits(tmp_path, caplog):
    folder = make_voxceleb1(tmp_path / "data")
    context = _context(tmp_path, tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        splits = {
            s: corpus_manifest("voxceleb1", "identification", s, context)
            for s in ("train", "valid", "test")
        }
    assert "lists 3 speakers; the VoxCeleb1 identification split has 1251" in caplog.text
    for manifest in splits.values():
        assert {u.speaker for u in manifest} == set(_VOX) and len(manifest) == 4
    test = splits["test"].by_id()
    utterance = test["id10001-7gWzIy6yIIk-00003"]
    assert splits["test"].audio_path(utterance) == folder / "wav/id10001/7gWzIy6yIIk/00003.wav"
    assert utterance.sample_rate == RATE and utterance.label is None
    # the data root may also be the VoxCeleb1 folder itself
    direct = corpus_manifest("voxceleb1", "identification", "valid", _context(tmp_path, folder))
    assert [u.id for u in direct] == [u.id for u in splits["valid"]]


def test_voxceleb1_missing_files_and_bad_lines(tmp_path):
    folder = make_voxceleb1(tmp_path / "data")
    context = _context(tmp_path, tmp_path / "data")
    (folder / "wav/id10002/0_laIeN-Q44/00001.wav").unlink()
    with pytest.raises(DataError) as error:
        corpus_manifest("voxceleb1", "identification", "train", context)
    message = str(error.value)
    assert (
        "\n" not in message and "id10002/0_laIeN-Q44/00001.wav: listed in iden_split.txt" in message
    )
    assert "1 of 4 files missing" in message
    # another split with all its files still reads
    assert len(corpus_manifest("voxceleb1", "identification", "test", context)) == 4
    split_file = folder / "iden_split.txt"
    split_file.write_text(split_file.read_text() + "4 id10001/1zcIwhmdeo4/00009.wav\n")
    with pytest.raises(DataError, match=r"iden_split.txt:13: set '4' is not one of 1 \(train\)"):
        corpus_manifest("voxceleb1", "identification", "test", context)
    split_file.write_text("1 id10001/00001.wav\n")
    with pytest.raises(DataError, match="is not '<set> <speaker>/<video>/<n>.wav'"):
        corpus_manifest("voxceleb1", "identification", "test", context)
    split_file.unlink()
    with pytest.raises(DataError, match="iden_split.txt: not found"):
        corpus_manifest("voxceleb1", "identification", "test", context)
    with pytest.raises(DataError, match="unknown VoxCeleb1 subset"):
        corpus_manifest("voxceleb1", "verification", "test", context)

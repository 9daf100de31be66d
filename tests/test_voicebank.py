"""The VoiceBank-DEMAND recipe on a tiny fixture laid out exactly like the real corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.data.audio import load_audio
from benchmark.data.voicebank import FOLDERS, VALID_SPEAKERS, voicebank_manifest
from benchmark.errors import DataError

RATE = 48000
TRAIN_SPEAKERS = ("p226", "p230", "p231", "p287")
TEST_SPEAKERS = ("p232", "p257")


def _write(path: Path, seed: int, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    sf.write(str(path), wave.astype(np.float32), RATE, subtype="PCM_16")


def make_voicebank(root: Path, transcripts: bool = True) -> Path:
    """Write the fixture under ``root``: 2 utterances per speaker, clean and noisy twins."""
    seed = 0
    for split, speakers in (("train", TRAIN_SPEAKERS), ("test", TEST_SPEAKERS)):
        clean, noisy, text = FOLDERS[split]
        for speaker in speakers:
            for k in (1, 2):
                uid = f"{speaker}_{k:03d}"
                _write(root / clean / f"{uid}.wav", seed)
                _write(root / noisy / f"{uid}.wav", seed + 1)
                seed += 2
                if transcripts and split == "train":
                    (root / text).mkdir(parents=True, exist_ok=True)
                    (root / text / f"{uid}.txt").write_text(f"Please call Stella {uid}.\n")
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_voicebank(tmp_path / "data")


def test_splits_are_disjoint_by_id_and_speaker(corpus, tmp_path):
    splits = {
        s: voicebank_manifest(corpus, s, tmp_path / "cache", False)
        for s in ("train", "valid", "test")
    }
    ids = {s: {u.id for u in m} for s, m in splits.items()}
    speakers = {s: {u.speaker for u in m} for s, m in splits.items()}
    assert speakers["valid"] == set(VALID_SPEAKERS)
    assert speakers["train"] == set(TRAIN_SPEAKERS) - set(VALID_SPEAKERS)
    assert speakers["test"] == set(TEST_SPEAKERS)
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not ids[a] & ids[b] and not speakers[a] & speakers[b]
    assert sum(len(v) for v in ids.values()) == 2 * (len(TRAIN_SPEAKERS) + len(TEST_SPEAKERS))


def test_manifest_shape_matches_the_mini_enhance_subset(corpus, tmp_path):
    train = voicebank_manifest(corpus, "train", tmp_path / "cache", False)
    test = voicebank_manifest(corpus, "test", tmp_path / "cache", False)
    for utterance in train:
        noisy = train.audio_path(utterance)
        clean = train.resolve(utterance.extra["clean_path"])
        assert noisy.parent.name == FOLDERS["train"][1] and clean.parent.name == FOLDERS["train"][0]
        assert noisy.name == clean.name and utterance.sample_rate == RATE
        assert utterance.duration == pytest.approx(0.3)
        assert utterance.text == f"please call stella {utterance.id}."
        assert load_audio(noisy, 16000).shape[0] == int(0.3 * 16000)  # resampled from 48 kHz
    assert all(u.text is None for u in test)  # no transcript folder for the test set here


def test_manifest_is_cached_and_rebuilt_when_a_file_changes(corpus, tmp_path):
    cache = tmp_path / "cache"
    first = voicebank_manifest(corpus, "valid", cache, False)
    again = voicebank_manifest(corpus, "valid", cache, False)
    assert again.source == first.source and again.utterances == first.utterances
    _write(corpus / FOLDERS["train"][1] / "p226_001.wav", 99, seconds=0.5)
    changed = voicebank_manifest(corpus, "valid", cache, False)
    assert changed.source != first.source
    assert changed.by_id()["p226_001"].duration == pytest.approx(0.5)


def test_nested_corpus_folder_is_found(tmp_path):
    make_voicebank(tmp_path / "root" / "VoiceBank-DEMAND")
    manifest = voicebank_manifest(tmp_path / "root", "test", tmp_path / "cache", False)
    assert {u.speaker for u in manifest} == set(TEST_SPEAKERS)


def test_missing_data_is_one_line_naming_the_path(corpus, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="--data-root"):
        voicebank_manifest(None, "train", cache, False)
    with pytest.raises(DataError, match="unknown VoiceBank-DEMAND split"):
        voicebank_manifest(corpus, "dev", cache, False)
    (corpus / FOLDERS["test"][0] / "p257_002.wav").unlink()
    with pytest.raises(DataError, match=r"clean_testset_wav/p257_002\.wav: file is missing"):
        voicebank_manifest(corpus, "test", cache, False)
    (corpus / FOLDERS["train"][2] / "p230_001.txt").unlink()
    with pytest.raises(DataError, match=r"p230_001\.txt: transcript is missing"):
        voicebank_manifest(corpus, "train", cache, False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        voicebank_manifest(empty, "train", cache, False)
    message = str(info.value)
    assert "clean_trainset_28spk_wav" in message and "\n" not in message


def test_registry_reads_voicebank_and_its_clean_view(corpus, tmp_path):
    from benchmark.api import BuildContext, DataRef
    from benchmark.data.corpora import resolve_data

    context = BuildContext(workdir=tmp_path / "work", data_root=corpus, progress=False)
    noisy = resolve_data(DataRef("voicebank", "voicebank", "test"), context)
    clean = resolve_data(DataRef("voicebank", "voicebank:clean", "test"), context)
    assert [u.id for u in noisy] == [u.id for u in clean]
    for n, c in zip(noisy, clean, strict=True):
        assert "noisy_testset_wav" in str(noisy.audio_path(n))
        assert clean.audio_path(c) == Path(n.extra["clean_path"])
    assert noisy.fingerprint() != clean.fingerprint()
    with pytest.raises(DataError, match="use subset: voicebank"):
        resolve_data(DataRef("voicebank", "vb", "test"), context)

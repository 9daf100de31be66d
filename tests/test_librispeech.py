"""The LibriSpeech recipe on a tiny fixture laid out exactly like the real corpus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.api import BuildContext
from benchmark.data.corpora import CORPORA, corpus_manifest
from benchmark.data.librispeech import NO_DATA_ROOT, SPLITS, librispeech_manifest
from benchmark.errors import DataError

RATE = 16000
# split -> speaker -> chapter -> upper-case transcripts (made up, LibriSpeech style)
LAYOUT: dict[str, dict[str, dict[str, list[str]]]] = {
    "train-clean-100": {
        "103": {
            "1240": [
                "THE MORNING WAS GREY AND THE RIVER RAN HIGH UNDER THE BRIDGE",
                "SHE SAID THAT NOBODY IN THE VILLAGE HAD SEEN SUCH A STORM",
                "AND SO THEY WALKED HOME TOGETHER WITHOUT ANOTHER WORD",
            ],
            "1241": [
                "HE OPENED THE LETTER SLOWLY AS IF AFRAID OF WHAT IT MIGHT SAY",
                "THERE WAS NO ANSWER FROM THE HOUSE ON THE HILL",
            ],
        },
        "1034": {
            "121119": [
                "IT IS A LONG ROAD THAT HAS NO TURNING SAID THE OLD MAN",
                "THE CHILDREN LAUGHED AND RAN OUT INTO THE GARDEN",
            ],
            "121120": [
                "WE SHALL SEE WHAT THE MORNING BRINGS HE ANSWERED",
                "THE LAMP BURNED LOW AND THE ROOM GREW COLD",
                "I DON'T KNOW WHY HE LEFT SO SUDDENLY",
            ],
        },
    },
    "dev-clean": {
        "84": {
            "121123": ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED"],
            "121550": ["THE WIND HAD DROPPED BY EVENING", "NO ONE CAME TO THE DOOR"],
        },
        "174": {
            "50561": ["FORGOTTEN TOO THE NAME OF THE SHIP", "A LIGHT SHONE FROM THE WINDOW"],
            "84280": ["HOW LONG HAVE YOU BEEN HERE", "SINCE THE SPRING SHE REPLIED"],
        },
    },
    "test-clean": {
        "1089": {
            "134686": ["HE HOPED THERE WOULD BE STEW FOR DINNER", "THE FIRE CRACKLED"],
            "134691": ["HE COULD WAIT NO LONGER", "THE STREET WAS EMPTY AND WET"],
        },
        "121": {
            "121726": ["ALSO A POPULAR CONTRIVANCE", "THE BELLS RANG ACROSS THE TOWN"],
            "127105": ["IT WAS THIS OBSERVATION THAT DREW FROM DOUGLAS", "SHE SMILED AT LAST"],
        },
    },
}


def _samples(utterance_id: str) -> int:
    """A distinct, deterministic length (0.2-0.5 s) per utterance."""
    return RATE // 5 + (sum(map(ord, utterance_id)) * 37) % (RATE * 3 // 10)


def make_librispeech(root: Path) -> dict[str, dict[str, tuple[str, str, int]]]:
    """Write the fixture under ``root/LibriSpeech``; return split -> id -> (speaker, text, n)."""
    rng = np.random.default_rng(0)
    expected: dict[str, dict[str, tuple[str, str, int]]] = {}
    for split, speakers in LAYOUT.items():
        expected[split] = {}
        for speaker, chapters in speakers.items():
            for chapter, texts in chapters.items():
                folder = root / "LibriSpeech" / split / speaker / chapter
                folder.mkdir(parents=True)
                lines = []
                for index, text in enumerate(texts):
                    utterance_id = f"{speaker}-{chapter}-{index:04d}"
                    n = _samples(utterance_id)
                    t = np.arange(n) / RATE
                    wav = 0.3 * np.sin(2 * np.pi * (120 + 40 * index) * t)
                    wav += 0.01 * rng.standard_normal(n)
                    sf.write(folder / f"{utterance_id}.flac", wav, RATE, subtype="PCM_16")
                    lines.append(f"{utterance_id} {text}\n")
                    expected[split][utterance_id] = (speaker, text, n)
                (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    (root / "LibriSpeech" / "SPEAKERS.TXT").write_text(";ID |SEX| SUBSET\n")
    return expected


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, dict[str, tuple[str, str, int]]]]:
    root = tmp_path / "data"
    return root, make_librispeech(root)


def _cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "librispeech").glob("*.jsonl"))


def _chapter(root: Path) -> Path:
    return root / "LibriSpeech" / "train-clean-100" / "103" / "1240"


@pytest.mark.parametrize("split", list(LAYOUT))
def test_manifest_contents(corpus, tmp_path, split):
    root, expected = corpus
    manifest = librispeech_manifest(root, split, tmp_path / "cache", progress=False)
    ids = [u.id for u in manifest]
    assert ids == sorted(expected[split])
    for utterance in manifest:
        speaker, text, n = expected[split][utterance.id]
        path = Path(utterance.path)
        assert not path.is_absolute() and manifest.audio_path(utterance).is_file()
        assert path == Path(split) / speaker / path.parent.name / f"{utterance.id}.flac"
        assert manifest.audio_path(utterance) == (root / "LibriSpeech").resolve() / path
        assert abs(utterance.duration - n / RATE) < 1e-3
        assert utterance.sample_rate == RATE
        assert utterance.speaker == speaker
        assert utterance.text == text.lower()
        assert utterance.label is None and utterance.extra == {}
    assert manifest.source is not None and manifest.source.parent == tmp_path / "cache" / (
        "librispeech"
    )
    assert manifest.source.name.startswith(f"{split}-")


def test_deterministic_and_cached(corpus, tmp_path):
    root, _ = corpus
    cache = tmp_path / "cache"
    first = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    (written,) = _cache_files(cache)
    stamp = written.stat().st_mtime_ns
    second = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    assert second.source == written and written.stat().st_mtime_ns == stamp
    assert second.fingerprint() == first.fingerprint()
    assert second.utterances == first.utterances
    # a fresh cache folder gives byte-identical lines
    third = librispeech_manifest(root, "train-clean-100", tmp_path / "other", progress=False)
    assert third.source.read_bytes() == written.read_bytes()


def test_cache_reused_without_reading_audio(corpus, tmp_path, monkeypatch):
    root, _ = corpus
    cache = tmp_path / "cache"
    librispeech_manifest(root, "dev-clean", cache, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the cached manifest should be reused")

    monkeypatch.setattr("benchmark.data.librispeech.sf.info", fail)
    assert len(librispeech_manifest(root, "dev-clean", cache, progress=False)) == 8


def test_touching_a_file_rebuilds(corpus, tmp_path):
    root, _ = corpus
    cache = tmp_path / "cache"
    first = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    audio = _chapter(root) / "103-1240-0000.flac"
    stat = audio.stat()
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    assert second.source != first.source
    assert len(_cache_files(cache)) == 2
    assert second.utterances == first.utterances


def test_adding_an_utterance_rebuilds(corpus, tmp_path):
    root, expected = corpus
    cache = tmp_path / "cache"
    first = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    chapter = _chapter(root)
    sf.write(chapter / "103-1240-0003.flac", np.zeros(RATE // 2), RATE, subtype="PCM_16")
    with (chapter / "103-1240.trans.txt").open("a") as handle:
        handle.write("103-1240-0003 A NEW LINE WAS ADDED\n")
    second = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    assert second.source != first.source
    assert len(second) == len(expected["train-clean-100"]) + 1
    added = second.by_id()["103-1240-0003"]
    assert added.text == "a new line was added" and abs(added.duration - 0.5) < 1e-3


def test_data_root_may_be_the_librispeech_folder(corpus, tmp_path):
    root, _ = corpus
    cache = tmp_path / "cache"
    parent = librispeech_manifest(root, "test-clean", cache, progress=False)
    direct = librispeech_manifest(root / "LibriSpeech", "test-clean", cache, progress=False)
    assert direct.source == parent.source
    assert direct.utterances == parent.utterances


def test_data_root_missing():
    with pytest.raises(DataError, match="--data-root") as info:
        librispeech_manifest(None, "test-clean", Path("unused"), progress=False)
    assert str(info.value) == NO_DATA_ROOT
    assert "openslr.org/12" in NO_DATA_ROOT and "DIR/LibriSpeech/<split>" in NO_DATA_ROOT


def test_data_root_not_a_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="not a directory") as info:
        librispeech_manifest(missing, "test-clean", tmp_path / "cache", progress=False)
    assert str(missing) in str(info.value)


def test_unknown_split(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(DataError, match="unknown LibriSpeech split 'test-dirty'") as info:
        librispeech_manifest(root, "test-dirty", tmp_path / "cache", progress=False)
    for split in SPLITS:
        assert split in str(info.value)


@pytest.mark.parametrize("via_parent", [True, False])
def test_split_folder_missing(corpus, tmp_path, via_parent):
    root, _ = corpus
    data_root = root if via_parent else root / "LibriSpeech"
    with pytest.raises(DataError, match="split folder is missing") as info:
        librispeech_manifest(data_root, "test-other", tmp_path / "cache", progress=False)
    message = str(info.value)
    assert str(root / "LibriSpeech" / "test-other") in message
    assert "openslr.org/12" in message and "\n" not in message


def test_chapter_without_transcript(corpus, tmp_path):
    root, _ = corpus
    trans = _chapter(root) / "103-1240.trans.txt"
    trans.unlink()
    with pytest.raises(DataError, match="transcript file is missing") as info:
        librispeech_manifest(root, "train-clean-100", tmp_path / "cache", progress=False)
    assert str(trans.resolve()) in str(info.value)


def test_transcript_line_without_audio(corpus, tmp_path):
    root, _ = corpus
    audio = _chapter(root) / "103-1240-0001.flac"
    audio.unlink()
    with pytest.raises(DataError, match="audio file is missing") as info:
        librispeech_manifest(root, "train-clean-100", tmp_path / "cache", progress=False)
    assert str(audio.resolve()) in str(info.value)
    assert "103-1240.trans.txt" in str(info.value)


def test_audio_without_transcript_line(corpus, tmp_path):
    root, _ = corpus
    extra = _chapter(root) / "103-1240-0009.flac"
    sf.write(extra, np.zeros(RATE // 4), RATE, subtype="PCM_16")
    with pytest.raises(DataError, match="has no line in") as info:
        librispeech_manifest(root, "train-clean-100", tmp_path / "cache", progress=False)
    assert str(extra.resolve()) in str(info.value)


def test_empty_split(tmp_path):
    folder = tmp_path / "LibriSpeech" / "dev-other"
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match="no <speaker>/<chapter> folders") as info:
        librispeech_manifest(tmp_path, "dev-other", tmp_path / "cache", progress=False)
    assert str(folder.resolve()) in str(info.value)


def test_transcript_line_without_text(corpus, tmp_path):
    root, _ = corpus
    trans = _chapter(root) / "103-1240.trans.txt"
    trans.write_text(trans.read_text() + "103-1240-0003\n")
    with pytest.raises(DataError, match="has no text") as info:
        librispeech_manifest(root, "train-clean-100", tmp_path / "cache", progress=False)
    assert f"{trans.resolve()}:4" in str(info.value)


def test_corpus_manifest_through_context(corpus, tmp_path):
    root, expected = corpus
    assert "librispeech" in CORPORA
    context = BuildContext(preset="full", workdir=tmp_path / "work", data_root=root, progress=False)
    manifest = corpus_manifest("librispeech", "librispeech", "dev-clean", context)
    assert [u.id for u in manifest] == sorted(expected["dev-clean"])
    assert manifest.source.parent == tmp_path / "work" / "manifests" / "librispeech"
    with pytest.raises(DataError, match="subset 'asr'"):
        corpus_manifest("librispeech", "asr", "dev-clean", context)
    with pytest.raises(DataError, match="--data-root"):
        corpus_manifest("librispeech", "librispeech", "dev-clean", BuildContext(preset="full"))


def test_asr_task_splits(corpus, tmp_path):
    from benchmark.tasks.asr import ASRTask

    root, expected = corpus
    task = ASRTask(
        name="asr",
        corpus="librispeech",
        subset="librispeech",
        train_split="train-clean-100",
        valid_split="dev-clean",
        test_splits=["test-clean"],
    )
    context = BuildContext(preset="full", workdir=tmp_path / "work", data_root=root, progress=False)
    from benchmark.data.corpora import resolve_data

    splits = {key: resolve_data(ref, context) for key, ref in task.splits(context).items()}
    assert set(splits) == {"train", "valid", "test:test-clean"}
    for key, split in [("train", "train-clean-100"), ("valid", "dev-clean")]:
        assert [u.id for u in splits[key]] == sorted(expected[split])
    assert [u.id for u in splits["test:test-clean"]] == sorted(expected["test-clean"])


def test_train_960_is_the_union_of_its_splits(corpus, tmp_path, monkeypatch):
    from benchmark.data import librispeech

    root, expected = corpus
    with pytest.raises(DataError, match="train-clean-360"):  # absent from the fixture
        librispeech_manifest(root, "train-960", tmp_path / "cache", progress=False)
    monkeypatch.setitem(librispeech.SPLIT_UNIONS, "train-960", ("train-clean-100", "dev-clean"))
    union = librispeech_manifest(root, "train-960", tmp_path / "cache", progress=False)
    assert [u.id for u in union] == sorted(expected["train-clean-100"]) + sorted(
        expected["dev-clean"]
    )


def test_transcript_with_non_utf8_bytes_names_file_and_line(corpus, tmp_path):
    root, _ = corpus
    trans = _chapter(root) / "103-1240.trans.txt"
    lines = trans.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"NOBODY", b"NOB\xd8DY")  # a Latin-1 byte
    trans.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match="not UTF-8") as info:
        librispeech_manifest(root, "train-clean-100", tmp_path / "cache", progress=False)
    message = str(info.value)
    assert f"{trans.resolve()}:2" in message and "\n" not in message and "0xd8" in message


@pytest.mark.parametrize("damage", ["cut", "edit", "no-sidecar"])
def test_cached_manifest_cut_short_is_rebuilt_with_a_warning(corpus, tmp_path, damage, caplog):
    root, _ = corpus
    cache = tmp_path / "cache"
    first = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    (written,) = _cache_files(cache)
    data = written.read_bytes()
    if damage == "cut":  # a whole number of lines, so the file still parses
        written.write_bytes(b"\n".join(data.split(b"\n")[:4]) + b"\n")
    elif damage == "edit":
        written.write_bytes(data.replace(b"morning", b"evening", 1))
    else:
        written.with_name(written.name + ".meta.json").unlink()
    with caplog.at_level("WARNING"):
        second = librispeech_manifest(root, "train-clean-100", cache, progress=False)
    assert len(second) == len(first) == 10
    assert second.utterances == first.utterances
    assert written.read_bytes() == data
    assert any("rebuilding cached manifest" in r.getMessage() and str(written) in r.getMessage()
               for r in caplog.records)  # fmt: skip

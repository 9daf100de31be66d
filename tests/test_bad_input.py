"""Bad manifests and transcripts: each one a single line naming the file, the line, the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.api import TaskRun
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Utterance, read_manifest, write_manifest
from benchmark.errors import DataError
from benchmark.tasks.classification import UtteranceClassificationTask


def _lines(n: int = 8) -> list[dict]:
    return [
        {"id": f"u{i}", "path": f"u{i}.wav", "duration": 0.5, "sample_rate": 16000,
         "label": "a" if i % 2 else "b", "extra": {}}
        for i in range(n)
    ]  # fmt: skip


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_duplicate_ids_are_refused_on_read(tmp_path):
    lines = _lines(8)
    lines[5]["id"] = "u2"
    path = _write(tmp_path / "train.jsonl", lines)
    with pytest.raises(DataError, match="duplicate utterance id 'u2'") as info:
        read_manifest(path)
    message = _one_line(info)
    assert f"{path}:6" in message and "line 3" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("duration", "abc", "a number of seconds"),
        ("duration", -1.0, ">= 0"),
        ("sample_rate", 16000.5, "a positive integer"),
        ("sample_rate", "16000", "a positive integer"),
        ("sample_rate", True, "a positive integer"),
        ("label", 3, "a string or null"),
        ("text", 1.5, "a string or null"),
        ("speaker", ["x"], "a string or null"),
        ("id", 7, "a non-empty string"),
        ("path", None, "a non-empty string"),
        ("extra", "snr=5", "an object"),
    ],
)
def test_wrong_field_types_name_file_line_and_field(tmp_path, field, value, expected):
    lines = _lines(4)
    lines[2][field] = value
    path = _write(tmp_path / "valid.jsonl", lines)
    with pytest.raises(DataError, match=expected) as info:
        read_manifest(path)
    message = _one_line(info)
    assert f"{path}:3" in message and repr(field) in message


def test_label_null_is_legal_in_a_manifest(tmp_path):
    lines = _lines(4)
    lines[1]["label"] = None
    manifest = read_manifest(_write(tmp_path / "m.jsonl", lines))
    assert manifest.utterances[1].label is None and len(manifest) == 4
    assert isinstance(manifest.utterances[0].duration, float)


def test_a_line_that_is_not_an_object_or_not_utf8(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(_lines(1)[0]) + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: expected a JSON object"):
        read_manifest(path)
    path.write_bytes(json.dumps(_lines(1)[0]).encode() + b'\n{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"m.jsonl:2: not UTF-8"):
        read_manifest(path)


def test_written_manifests_round_trip_with_a_sidecar(tmp_path):
    utterances = [Utterance(**line) for line in _lines(3)]
    path = tmp_path / "m.jsonl"
    write_manifest(path, utterances)
    assert read_manifest(path).utterances == tuple(utterances)
    meta = json.loads((tmp_path / "m.jsonl.meta.json").read_text())
    assert meta["lines"] == 3 and len(meta["sha256"]) == 64


def test_classification_names_the_utterance_without_a_label(tmp_path):
    lines = _lines(6)
    lines[4]["label"] = None
    path = _write(tmp_path / "train.jsonl", lines)
    manifest = read_manifest(path)
    n = len(manifest)
    split = TokenSplit(
        manifest=manifest, ids=[u.id for u in manifest], offsets=np.arange(n) * 3,
        lengths=np.full(n, 3), data=np.zeros((3 * n, 1), dtype=np.int64),
        codebook_sizes=(4,), path=tmp_path,
    )  # fmt: skip
    task = UtteranceClassificationTask("style-test", "mini", "style", epochs=1, dim=8, hidden=8)
    run = TaskRun(
        tokenizer_info=None, splits={"train": split, "valid": split, "test": split},
        context=None, seed=0, device="cpu", out_dir=tmp_path, progress=False,
    )  # fmt: skip
    with pytest.raises(DataError, match="has no 'label'") as info:
        task.run(run)
    message = _one_line(info)
    assert str(path) in message and "'u4'" in message and "'style-test'" in message


def test_a_cut_tts_manifest_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    import soundfile as sf

    from benchmark.api import BuildContext
    from benchmark.data.tts_corpora import libritts_manifest

    folder = tmp_path / "LibriTTS" / "dev-clean" / "84" / "121"
    folder.mkdir(parents=True)
    for k in range(4):
        sf.write(folder / f"84_121_{k}.wav", np.zeros(2400, np.float32), 24000)
    context = BuildContext(workdir=tmp_path / "work", data_root=tmp_path, progress=False)
    first = libritts_manifest("libritts", "dev-clean", context)
    (cached,) = (tmp_path / "work" / "manifests" / "vocoder").glob("*.jsonl")
    whole = cached.read_bytes()
    cached.write_bytes(b"".join(whole.splitlines(keepends=True)[:2]))  # killed copy, say
    with caplog.at_level("WARNING"):
        second = libritts_manifest("libritts", "dev-clean", context)
    assert len(second) == len(first) == 4 and cached.read_bytes() == whole
    assert any("rebuilding cached manifest" in r.getMessage() for r in caplog.records)


def test_asr_names_the_test_utterance_without_a_transcript_before_training(tmp_path):
    from benchmark.tasks.asr import ASRTask

    def split(name: str, missing: int | None) -> TokenSplit:
        lines = _lines(4)
        for index, line in enumerate(lines):
            line["text"] = None if index == missing else "hello there"
        manifest = read_manifest(_write(tmp_path / f"{name}.jsonl", lines))
        return TokenSplit(
            manifest=manifest, ids=[u.id for u in manifest], offsets=np.arange(4) * 3,
            lengths=np.full(4, 3), data=np.zeros((12, 1), dtype=np.int64),
            codebook_sizes=(4,), path=tmp_path,
        )  # fmt: skip

    task = ASRTask("asr-test", epochs=1, dim=8, hidden=8, layers=1)
    run = TaskRun(
        tokenizer_info=None, context=None, seed=0, device="cpu", out_dir=tmp_path,
        splits={"train": split("train", None), "valid": split("valid", None),
                "test:test": split("test", 2)}, progress=False,
    )  # fmt: skip
    with pytest.raises(DataError, match="has no transcript") as info:
        task.run(run)  # tokenizer_info=None: it fails before building the model
    message = _one_line(info)
    assert str(tmp_path / "test.jsonl") in message and "'u2'" in message

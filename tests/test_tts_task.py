"""The tts task: its run on in-memory token splits, and one end-to-end run on a shrunk mini corpus.

The end-to-end run uses dMel (which decodes itself) and one cheap judge (DNSMOS), so no
mini judge or vocoder is trained here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.api import BuildContext, TaskRun, TokenizerInfo
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Manifest, Utterance
from benchmark.errors import ContractError, DataError
from benchmark.tasks.tts import TTSTask

SIZES = (6, 4)
TINY = {
    "dim": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "ffn": 32,
    "epochs": 2, "batch_size": 4, "lr": 0.005,
}  # fmt: skip


def _split(root: Path, name: str, n: int, speaker: str = "tts") -> TokenSplit:
    rng = np.random.default_rng(len(name))
    utterances, chunks = [], []
    for index in range(n):
        uid = f"{name}-{index:02d}"
        sf.write(root / f"{uid}.wav", np.zeros(1600, np.float32), 16000)
        utterances.append(Utterance(uid, f"{uid}.wav", 0.1, 16000, f"word {index}", speaker))
        frames = int(rng.integers(4, 9))
        chunks.append(np.stack([rng.integers(0, c, frames) for c in SIZES], axis=1))
    lengths = np.array([len(c) for c in chunks])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    manifest = Manifest(tuple(utterances), root=root, source=root / f"{name}.jsonl")
    return TokenSplit(
        manifest, [u.id for u in utterances], offsets, lengths,
        np.concatenate(chunks).astype(np.int64), SIZES, root / name,
    )  # fmt: skip


def _run(tmp_path: Path, info: TokenizerInfo, test_speaker: str = "tts") -> TaskRun:
    splits = {
        "train": _split(tmp_path, "train", 8),
        "valid": _split(tmp_path, "valid", 2),
        "test": _split(tmp_path, "test", 3, test_speaker),
    }
    return TaskRun(info, splits, BuildContext(progress=False), 0, "cpu", tmp_path, False)


def _info(continuous: bool = False) -> TokenizerInfo:
    if continuous:
        return TokenizerInfo(
            name="feat", sample_rate=16000, frame_rate=50.0,
            layers=(0, 1), can_decode=False, feature_dim=4,
        )  # fmt: skip
    return TokenizerInfo(
        name="toy", sample_rate=16000, frame_rate=50.0,
        codebook_sizes=SIZES, can_decode=True,
    )  # fmt: skip


def test_run_generates_every_test_sentence_with_its_references(tmp_path):
    torch.set_num_threads(1)
    task = TTSTask("tts", metrics=["dnsmos_ovrl"], main_metric="dnsmos_ovrl", **TINY)
    assert task.info.kind == "tts" and task.info.needs_decode
    assert set(task.splits(BuildContext())) == {"train", "valid", "test"}
    out = task.run(_run(tmp_path, _info()))
    assert [u.id for u in out.utterances] == ["test-00", "test-01", "test-02"]
    first = out.utterances[0]
    assert first.reference_audio == tmp_path / "test-00.wav"
    assert first.reference_text == "word 0"
    assert first.speaker_audio == tmp_path / "train-00.wav"  # a training take of the voice
    for utterance in out.utterances:
        tokens = np.asarray(utterance.tokens)
        assert tokens.dtype == np.int64 and tokens.ndim == 2 and tokens.shape[1] == 2
        assert (tokens >= 0).all() and (tokens < np.array(SIZES)).all()
    assert out.baseline_audio == {"ground truth": {u.id: u.reference_audio for u in out.utterances}}
    generation = out.extras["generation"]
    assert generation["stopped_by_gate"] + generation["stopped_by_cap"] == 3
    assert len(out.extras["training"]["history"]) == 2


def test_run_refuses_features_and_unknown_voices(tmp_path):
    task = TTSTask("tts", metrics=["dnsmos_ovrl"], main_metric="dnsmos_ovrl", **TINY)
    with pytest.raises(ContractError, match="continuous features"):
        task.run(_run(tmp_path, _info(continuous=True)))
    with pytest.raises(DataError, match="no training recording"):
        task.run(_run(tmp_path, _info(), test_speaker="someone else"))
    with pytest.raises(ValueError, match="gate_threshold"):
        TTSTask("tts", gate_threshold=1.5)
    with pytest.raises(ValueError, match="main_metric"):
        TTSTask("tts", metrics=["utmos"], main_metric="text_wer")


def test_end_to_end_run_on_a_shrunk_mini_corpus(tmp_path, monkeypatch):
    from benchmark.pipeline.commands import run
    from benchmark.pipeline.config import RunConfig
    from benchmark.pipeline.records import ResultRecord

    card = tmp_path / "quick-tts.yaml"
    card.write_text(
        "name: quick-tts\ndescription: tts with a tiny budget (tests)\n"
        "class: benchmark.tasks.tts:TTSTask\n"
        "params: {corpus: mini, subset: tts, metrics: [dnsmos_ovrl], main_metric: dnsmos_ovrl,"
        " dim: 16, heads: 2, encoder_layers: 1, decoder_layers: 1, ffn: 32, epochs: 1,"
        " batch_size: 8}\n"
    )
    monkeypatch.chdir(tmp_path)  # a relative workdir, as `--workdir work` gives
    config = RunConfig(
        tokenizers=("dmel",), tasks=(str(card),), workdir=Path("work"),
        results_dir=tmp_path / "results", corpus_scale=0.1, progress=False, device="cpu",
        threads=1,
    )  # fmt: skip
    run(config)
    record = ResultRecord.load(tmp_path / "results" / "mini" / "dmel" / "quick-tts" / "seed0.json")
    assert record.status == "ok", record.error
    assert record.main_metric == "dnsmos_ovrl"
    assert set(record.metrics) == {"dnsmos_ovrl"}
    assert set(record.baselines) == {"ground truth"}
    truth = record.baselines["ground truth"]["dnsmos_ovrl"]
    assert truth.status == "ok" and truth.n == 2  # the 2 test sentences of the shrunk subset
    generated = record.metrics["dnsmos_ovrl"]  # a 1-epoch model may stop before 0.5 s
    assert generated.n + generated.skipped == 2
    assert generated.status == "ok" or "shorter than" in generated.reason
    assert record.extras["generation"]["utterances"] == 2

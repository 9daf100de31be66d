"""The harness-trained mini judges on a shrunk mini corpus: training, storage, loading, scoring."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.manifest import Manifest
from benchmark.data.mini import MiniConfig, mini_manifest, prepare_mini
from benchmark.errors import JudgeUnavailableError
from benchmark.metrics.audio_base import AudioItem, evaluate_metric
from benchmark.metrics.dwer import DWER
from benchmark.metrics.judges.mini_asr import (
    load_mini_asr_judge,
    mini_asr_judge_fingerprint,
    train_mini_asr_judge,
)
from benchmark.metrics.judges.mini_common import JudgeBudget, mini_judge_manifests
from benchmark.metrics.judges.mini_speaker import (
    load_mini_speaker_judge,
    mini_speaker_judge_fingerprint,
    train_mini_speaker_judge,
)
from benchmark.metrics.speaker_similarity import SpeakerSimilarity

CONFIG = MiniConfig(n_speakers=8, n_valid_speakers=1, n_test_speakers=1, ood_speakers=2, scale=0.1)
SPEAKER_BUDGET = JudgeBudget(epochs=8, batch_size=16, lr=3e-3)
#: Overfits a handful of utterances: enough steps for CTC to leave the all-blank stage.
ASR_BUDGET = JudgeBudget(epochs=40, batch_size=2, lr=3e-3)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return prepare_mini(tmp_path_factory.mktemp("mini"), CONFIG, progress=False)


@pytest.fixture(scope="module")
def manifests(corpus):
    return mini_judge_manifests(corpus)


@pytest.fixture(scope="module")
def speaker_judge(manifests, tmp_path_factory) -> Path:
    """Trained on the training speakers' asr utterances (more audio than the shrunk
    ``speaker`` subset has), validated on their ``speaker/train`` utterances."""
    out = tmp_path_factory.mktemp("judges") / "speaker"
    train = manifests["asr"][0]
    train_mini_speaker_judge(train, manifests["speaker"][0], out, seed=0, budget=SPEAKER_BUDGET)
    return out


def _few(manifest: Manifest, count: int) -> Manifest:
    return Manifest(manifest.utterances[:count], root=manifest.root)


@pytest.fixture(scope="module")
def asr_judge(manifests, tmp_path_factory) -> tuple[Path, Manifest]:
    few = _few(manifests["asr"][0], 6)
    out = tmp_path_factory.mktemp("judges") / "asr"
    train_mini_asr_judge(few, few, out, seed=0, budget=ASR_BUDGET)
    return out, few


def test_judges_train_on_training_speakers_only(corpus, manifests):
    training = {u.speaker for u in mini_manifest(corpus, "asr", "train")}
    held_out = {u.speaker for s in ("valid", "test") for u in mini_manifest(corpus, "asr", s)}
    assert training and held_out and not training & held_out
    for train, valid in manifests.values():
        assert {u.speaker for u in train} <= training
        assert {u.speaker for u in valid} <= training | (
            held_out if train is manifests["asr"][0] else set()
        )
    speaker_train, speaker_valid = manifests["speaker"]
    assert {u.speaker for u in speaker_train} == training
    assert not {u.id for u in speaker_train} & {u.id for u in speaker_valid}


def test_fingerprints_cover_data_seed_and_budget(manifests):
    train, valid = manifests["speaker"]
    base = mini_speaker_judge_fingerprint(train, valid, 0, SPEAKER_BUDGET)
    assert base == mini_speaker_judge_fingerprint(train, valid, 0, SPEAKER_BUDGET)
    assert base != mini_speaker_judge_fingerprint(train, valid, 1, SPEAKER_BUDGET)
    assert base != mini_speaker_judge_fingerprint(
        train, valid, 0, replace(SPEAKER_BUDGET, epochs=9)
    )
    assert base != mini_speaker_judge_fingerprint(_few(train, 3), valid, 0, SPEAKER_BUDGET)
    assert base != mini_asr_judge_fingerprint(train, valid, 0, SPEAKER_BUDGET)  # another kind


def test_speaker_judge_scores_same_speaker_pairs_above_different_speakers(
    speaker_judge, corpus, manifests
):
    meta = json.loads((speaker_judge / "judge.json").read_text())
    assert meta["fingerprint"] == mini_speaker_judge_fingerprint(
        manifests["asr"][0], manifests["speaker"][0], 0, SPEAKER_BUDGET
    )
    assert not list(speaker_judge.parent.glob(".*partial"))  # written atomically
    # unseen utterances of the training speakers
    training = {u.speaker for u in manifests["speaker"][0]}
    unseen = [
        (m.audio_path(u), u.speaker)
        for split in ("valid", "test")
        for m in [mini_manifest(corpus, "speaker", split)]
        for u in m
        if u.speaker in training
    ]
    pairs = list(itertools.combinations(unseen, 2))
    items = [AudioItem(f"p{i}", a, speaker_audio=b) for i, ((a, _), (b, _)) in enumerate(pairs)]
    result, scores = evaluate_metric(SpeakerSimilarity(mini_judge=speaker_judge), items)
    assert result.status == "ok" and result.judge["fingerprint"] == meta["fingerprint"]
    assert result.judge["kind"] == "harness-trained"
    same = [s for s, ((_, x), (_, y)) in zip(scores, pairs, strict=True) if x == y]
    other = [s for s, ((_, x), (_, y)) in zip(scores, pairs, strict=True) if x != y]
    assert same and other and np.mean(same) > np.mean(other)
    # ranking quality: a same-speaker pair beats a different-speaker pair most of the time
    auc = np.mean([a > b for a in same for b in other])
    assert auc > 0.75, (auc, np.mean(same), np.mean(other))
    embedder = load_mini_speaker_judge(speaker_judge)
    assert embedder.embed([torch.randn(16000)]).shape == (1, meta["architecture"]["lin_neurons"])


def test_asr_judge_learns_and_dwer_is_zero_for_identical_audio(asr_judge):
    folder, few = asr_judge
    recognizer = load_mini_asr_judge(folder)
    identity = recognizer.identity()
    assert (
        identity["name"] == "mini CTC character recogniser" and len(identity["fingerprint"]) == 64
    )
    assert identity["valid_cer"] < 60.0  # it overfits the utterances it saw
    items = [AudioItem(u.id, few.audio_path(u), reference_audio=few.audio_path(u)) for u in few]
    result, scores = evaluate_metric(DWER(mini_judge=folder), items)
    assert result.status == "ok", result
    assert scores == [0.0] * len(items) and result.value == 0.0
    other = [AudioItem("x", items[0].audio, reference_audio=items[1].audio)]
    assert DWER(mini_judge=folder).score(other)[0] > 0.0


def test_missing_mini_judge_is_unavailable(tmp_path, asr_judge):
    folder, few = asr_judge
    item = AudioItem("u", few.audio_path(few.utterances[0]), speaker_audio=folder / "x.wav")
    result, _ = evaluate_metric(SpeakerSimilarity(mini_judge=tmp_path / "none"), [item])
    assert result.status == "unavailable" and "train_mini_speaker_judge" in result.reason
    with pytest.raises(JudgeUnavailableError, match="not a 'speaker'"):
        load_mini_speaker_judge(folder)  # an ASR judge's folder

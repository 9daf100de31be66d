"""Loading the full preset's judges (Whisper, WavLM x-vector, UTMOS) through the real code path.

No weights can be downloaded here, so the tests save tiny randomly initialised models of the
same architectures with ``save_pretrained`` and load them exactly as the pinned checkpoints
load; the pinned hub ids resolve offline to ``unavailable`` with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.audio import save_wav
from benchmark.metrics.audio_base import AudioItem, evaluate_metric
from benchmark.metrics.dwer import DWER
from benchmark.metrics.judges.utmos import UTMOS_HUB
from benchmark.metrics.judges.wavlm_sv import WAVLM_BASE_SV, tiny_wavlm_sv_dir
from benchmark.metrics.judges.whisper import WHISPER_SMALL, tiny_whisper_dir
from benchmark.metrics.speaker_similarity import SpeakerSimilarity
from benchmark.metrics.utmos import UTMOS

SR = 16000


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No hub, empty Hugging Face cache: only local folders can load."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def waves(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("waves")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    out = {}
    for name, f0 in {"low": 120.0, "high": 260.0}.items():
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        wave = 0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(
            t.size
        )
        out[name] = folder / f"{name}.wav"
        save_wav(out[name], wave / np.abs(wave).max() * 0.5, SR)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def test_whisper_loads_from_a_folder_and_dwer_is_zero_for_identical_audio(models, waves):
    folder = tiny_whisper_dir(models)
    metric = DWER(weights={"path": str(folder)})
    items = [
        AudioItem("a", waves["low"], reference_audio=waves["low"]),
        AudioItem("b", waves["high"], reference_audio=waves["high"]),
    ]
    result, scores = evaluate_metric(metric, items)
    assert result.status == "ok", result
    assert scores == [0.0, 0.0] and result.value == 0.0 and result.n == 2
    judge = result.judge
    assert judge["name"] == "whisper" and judge["source"] == "path"
    assert len(judge["config_sha256"]) == 64 and judge["weights_sha256"]
    transcripts = metric.recognizer().transcribe([torch.zeros(SR)])
    assert isinstance(transcripts[0], str)


def test_whisper_folder_without_processor_is_unavailable(models, tmp_path):
    folder = tiny_whisper_dir(models)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (bare / name).write_bytes((folder / name).read_bytes())
    result, _ = evaluate_metric(DWER(weights={"path": str(bare)}), [])
    assert result.status == "unavailable" and "processor files" in result.reason


def test_wavlm_sv_loads_from_a_folder_and_scores_cosines(models, waves):
    folder = tiny_wavlm_sv_dir(models)
    metric = SpeakerSimilarity(weights={"path": str(folder)})
    items = [
        AudioItem("same", waves["low"], speaker_audio=waves["low"]),
        AudioItem("other", waves["low"], speaker_audio=waves["high"]),
    ]
    result, scores = evaluate_metric(metric, items)
    assert result.status == "ok", result
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and -1.0 <= scores[1] < scores[0]
    assert result.judge["name"] == "wavlm x-vector" and len(result.judge["config_sha256"]) == 64
    embedding = metric.embedder().embed([torch.randn(SR)])
    assert embedding.shape == (1, 24) and torch.linalg.norm(embedding) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("metric", "names"),
    [
        (lambda: DWER(), WHISPER_SMALL["hub"]),
        (lambda: SpeakerSimilarity(), WAVLM_BASE_SV["hub"]),
        (lambda: UTMOS(), UTMOS_HUB["hub"]),
    ],
)
def test_pinned_hub_judges_offline_are_unavailable_with_the_reason(metric, names, waves):
    item = AudioItem("u", waves["low"], reference_audio=waves["low"], speaker_audio=waves["low"])
    result, scores = evaluate_metric(metric(), [item])
    assert scores == [None] and result.status == "unavailable"
    assert names in result.reason and "cannot be reached" in result.reason


def test_pinned_revisions_are_commit_hashes():
    for weights in (WHISPER_SMALL, WAVLM_BASE_SV, UTMOS_HUB):
        revision = weights["revision"]
        assert len(revision) == 40 and int(revision, 16) >= 0


def test_utmos_missing_or_foreign_checkpoint_is_unavailable(tmp_path, waves):
    item = AudioItem("u", waves["low"])
    result, _ = evaluate_metric(UTMOS(weights={"path": str(tmp_path / "none")}), [item])
    assert result.status == "unavailable" and "do not exist" in result.reason
    foreign = tmp_path / "utmos_state_dict.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    result, _ = evaluate_metric(UTMOS(weights={"path": str(tmp_path)}), [item])
    assert result.status == "unavailable" and "not a UTMOS strong-learner" in result.reason

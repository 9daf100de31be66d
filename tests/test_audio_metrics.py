"""Per-utterance audio metrics: known answers, skips, failed and unavailable judges."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.api import MetricValue
from benchmark.data.audio import load_audio, save_wav
from benchmark.errors import JudgeUnavailableError
from benchmark.metrics.audio_base import (
    AudioItem,
    AudioMetric,
    AudioMetricValue,
    Skip,
    aggregate,
    evaluate_metric,
)
from benchmark.metrics.dnsmos import DNSMOSP808, DNSMOSBak, DNSMOSOvrl, DNSMOSSig
from benchmark.metrics.intrusive import PESQ, STOI
from benchmark.registry import Entry, Source

SR = 16000
#: The registry strings the metric registry gets (benchmark.registry.BUILTIN_METRICS).
AUDIO_METRICS = {
    "pesq": "benchmark.metrics.intrusive:PESQ",
    "stoi": "benchmark.metrics.intrusive:STOI",
    "dnsmos_sig": "benchmark.metrics.dnsmos:DNSMOSSig",
    "dnsmos_bak": "benchmark.metrics.dnsmos:DNSMOSBak",
    "dnsmos_ovrl": "benchmark.metrics.dnsmos:DNSMOSOvrl",
    "dnsmos_p808": "benchmark.metrics.dnsmos:DNSMOSP808",
    "dwer": "benchmark.metrics.dwer:DWER",
    "dcer": "benchmark.metrics.dwer:DCER",
    "text_wer": "benchmark.metrics.dwer:TextWER",
    "text_cer": "benchmark.metrics.dwer:TextCER",
    "speaker_similarity": "benchmark.metrics.speaker_similarity:SpeakerSimilarity",
    "utmos": "benchmark.metrics.utmos:UTMOS",
}


def _speech(folder: Path, name: str, text: str, voice: str = "en-us") -> Path:
    """An espeak-ng utterance saved as 16 kHz WAV."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is installed by scripts/install.sh")
    raw = folder / f"{name}.raw.wav"
    subprocess.run([espeak, "-v", voice, "-w", str(raw), text], check=True, timeout=60)
    path = folder / f"{name}.wav"
    save_wav(path, load_audio(raw, SR), SR)
    return path


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    clean = _speech(folder, "clean", "the quick brown fox jumps over the lazy dog near the bank")
    wave = load_audio(clean, SR).numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(wave.shape[0])
    paths = {"clean": clean}
    for name, signal in {
        "noise": 0.1 * noise,
        "noisy": wave + noise * np.sqrt(np.mean(wave**2) / 10 ** (5 / 10)),  # 5 dB SNR
        "silent": np.zeros_like(wave),
        "short": wave[: int(0.2 * SR)],
    }.items():
        paths[name] = folder / f"{name}.wav"
        save_wav(paths[name], np.clip(signal, -1, 1), SR)
    return paths


def _item(audio: dict[str, Path], generated: str, uid: str = "u") -> AudioItem:
    return AudioItem(uid, audio[generated], reference_audio=audio["clean"])


def test_pesq_and_stoi_known_answers(audio):
    pesq, stoi = PESQ(), STOI()
    names = ("clean", "noisy", "noise")
    p = pesq.score([_item(audio, n) for n in names])
    s = stoi.score([_item(audio, n) for n in names])
    assert p[0] > 4.4 and s[0] > 0.99  # a signal against itself
    assert p[2] < 1.5 and s[2] < 0.5  # noise against speech
    assert p[2] < p[1] < p[0] and s[2] < s[1] < s[0]  # 5 dB noisy speech in between
    assert pesq.judge()["package"] == "pesq" and stoi.judge()["package"] == "pystoi"


def test_too_short_and_silent_audio_are_skipped_and_counted(audio):
    items = [_item(audio, "clean", "a"), _item(audio, "short", "b"), _item(audio, "silent", "c")]
    result, scores = evaluate_metric(PESQ(), items)
    assert scores[0] > 4.4 and scores[1] is None and scores[2] is None
    assert isinstance(result, AudioMetricValue) and result.status == "ok"
    assert result.n == 1 and result.skipped == 2 and result.value == pytest.approx(scores[0])
    assert set(result.skipped_reasons) == {
        "generated audio shorter than 0.25 s",
        "generated audio is silent (PESQ is undefined)",
    }
    assert result.to_dict()["skipped"] == 2
    # STOI: too short; every item skipped -> unavailable with the reasons, never a number
    only_short, scores = evaluate_metric(STOI(), [_item(audio, "short")])
    assert scores == [None] and only_short.status == "unavailable" and only_short.value is None
    assert "shorter than 0.4 s" in only_short.reason and only_short.skipped == 1


def test_dnsmos_equals_a_direct_speechmos_call(audio):
    from speechmos import dnsmos

    dnsmos.dnsmos = None  # speechmos's own sessions, not the harness's single-thread ones
    direct = dnsmos.run(load_audio(audio["noisy"], SR).double().numpy(), SR)
    metrics = {
        "sig_mos": DNSMOSSig(),
        "bak_mos": DNSMOSBak(),
        "ovrl_mos": DNSMOSOvrl(),
        "p808_mos": DNSMOSP808(),
    }
    for key, metric in metrics.items():
        result, scores = evaluate_metric(metric, [AudioItem("u", audio["noisy"])])
        assert scores[0] == pytest.approx(float(direct[key]), abs=1e-6), key
        assert result.value == pytest.approx(float(direct[key]), abs=1e-6)
        assert len(result.judge["models_sha256"]) == 64 and result.judge["package"] == "speechmos"
    clean = DNSMOSBak().score([AudioItem("c", audio["clean"])])[0]
    assert clean > metrics["bak_mos"].score([AudioItem("n", audio["noisy"])])[0]
    # the harness scored through its own sessions, at the run's thread count
    assert dnsmos.dnsmos.harness_threads == torch.get_num_threads()
    assert dnsmos.dnsmos.onnx_sess.get_session_options().intra_op_num_threads == (
        torch.get_num_threads()
    )


class _Raising(AudioMetric):
    name, direction = "raising", "higher"

    def judge(self):
        return {"name": "a judge that breaks"}

    def _score(self, items):
        raise RuntimeError("the judge crashed on purpose")


class _Missing(AudioMetric):
    name, direction = "missing", "lower"

    def judge(self):
        raise JudgeUnavailableError("judge weights /nowhere/model.pt do not exist")

    def _score(self, items):  # pragma: no cover - never reached
        return [0.0 for _ in items]


class _Constant(AudioMetric):
    name, direction = "constant", "higher"

    def __init__(self, values):
        self.values = values

    def judge(self):
        return {"name": "constant"}

    def _score(self, items):
        return list(self.values)


def test_failed_and_unavailable_judges_are_recorded_not_numbers(audio):
    items = [AudioItem("u", audio["clean"])]
    failed, scores = evaluate_metric(_Raising(), items)
    assert scores == [None] and isinstance(failed, dict)
    assert failed["status"] == "failed" and failed["value"] is None
    assert failed["error"]["type"] == "RuntimeError"
    assert "crashed on purpose" in failed["error"]["message"]
    assert failed["judge"] == {"name": "a judge that breaks"}
    missing, scores = evaluate_metric(_Missing(), items)
    assert scores == [None] and isinstance(missing, MetricValue)
    assert missing.status == "unavailable" and "/nowhere/model.pt" in missing.reason
    # a judge returning NaN or the wrong count fails, it is not averaged
    for values in ([math.nan], [1.0, 2.0]):
        result, _ = evaluate_metric(_Constant(values), items)
        assert isinstance(result, dict) and result["status"] == "failed"
    # a metric missing an input it needs fails with the field named
    result, _ = evaluate_metric(PESQ(), [AudioItem("x", audio["clean"])])
    assert result["status"] == "failed" and "reference_audio" in result["reason"]


def test_aggregate_mean_ci_and_skips():
    scores = [1.0, 2.0, None, 3.0, 4.0]
    reasons = [None, None, "too short", None, None]
    result = aggregate("m", "higher", scores, {"name": "j"}, reasons)
    assert result.value == pytest.approx(2.5) and result.n == 4 and result.skipped == 1
    assert result.ci_low <= 2.5 <= result.ci_high and result.ci_level == 0.95
    assert result.skipped_reasons == {"too short": 1}
    single = aggregate("m", "lower", [7.0], None)
    assert single.value == 7.0 and single.ci_low is None and single.n == 1
    skipped = aggregate("m", "lower", [None, None], None)
    assert skipped.status == "unavailable" and skipped.skipped == 2


def test_constant_scores_and_skip_objects_pass_through(audio):
    items = [AudioItem("a", audio["clean"]), AudioItem("b", audio["clean"])]
    result, scores = evaluate_metric(_Constant([0.5, Skip("judge says no")]), items)
    assert scores == [0.5, None] and result.skipped_reasons == {"judge says no": 1}


@pytest.mark.parametrize("name", sorted(AUDIO_METRICS))
def test_registry_strings_load_as_metrics(name):
    entry = Entry(name, "metric", Source("builtin", "benchmark.metrics"), "", AUDIO_METRICS[name])
    cls = entry.load()  # checks the Metric contract
    assert cls.name == name and issubclass(cls, AudioMetric)
    assert cls.direction in ("higher", "lower") and set(cls.needs) >= {"audio"}


def test_vocoder_dnsmos_uses_the_same_judge(audio):
    from benchmark.vocoders.evaluation import dnsmos_metric

    wave = load_audio(audio["noisy"], SR)
    result = dnsmos_metric([wave], SR)
    per_utterance = DNSMOSOvrl().score([AudioItem("n", audio["noisy"])])[0]
    assert result.value == pytest.approx(per_utterance, abs=1e-6)
    assert result.judge == DNSMOSOvrl().judge()

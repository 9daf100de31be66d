"""Profiles (the ``profile`` command, called directly) and token statistics, on weight-free
tokenizers that need no fit (``dummy``, and ``dmel`` with a fixed range)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from benchmark.cache import TokenCache
from benchmark.conformance import synthetic_batch
from benchmark.data.audio import save_wav
from benchmark.data.batching import iter_audio_batches
from benchmark.data.manifest import Utterance, read_manifest, write_manifest
from benchmark.leaderboard.command import add_profile_parser, cmd_profile
from benchmark.pipeline.records import ResultRecord, record_path
from benchmark.profiles import PROFILE_METRICS, ProfileSettings, count_parameters, profile_tokenizer
from benchmark.profiling import measure_call
from benchmark.token_stats import (
    StatsSettings,
    TokenStatsError,
    token_stability,
    token_stats_record,
)
from benchmark.tokenizers.continuous import LogMelReference
from benchmark.tokenizers.dmel import DMelTokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer


def _profile_args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    add_profile_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(
        [
            "profile",
            "--tokenizer",
            "dummy",
            "--device",
            "cpu",
            "--seconds",
            "1",
            "--batch",
            "2",
            "--runs",
            "2",
            "--results",
            str(tmp_path / "results"),
            "--workdir",
            str(tmp_path / "w"),
            "--quiet",
            *extra,
        ]
    )


def test_profile_command_writes_a_record_and_skips_when_up_to_date(tmp_path, capsys):
    assert cmd_profile(_profile_args(tmp_path)) == 0
    path = record_path(tmp_path / "results", "mini", "dummy", "profile", 0)
    record = ResultRecord.load(path)
    assert record.kind == "profile" and record.status == "ok" and record.fingerprint
    assert set(record.metrics) == set(PROFILE_METRICS)
    assert all(m.direction == "lower" for m in record.metrics.values())
    for name in ("encode_seconds", "decode_seconds", "encode_batch_seconds"):
        metric = record.metrics[name]
        assert metric.status == "ok" and metric.value > 0 and metric.n == 2
        spread = record.extras["spread"][name]
        assert spread["min"] <= metric.value <= spread["max"] and len(spread["runs"]) == 2
    rtf = record.metrics["encode_rtf"].value
    assert rtf == pytest.approx(record.metrics["encode_seconds"].value / 1.0)
    batch_rtf = record.metrics["encode_batch_rtf"].value
    assert batch_rtf == pytest.approx(record.metrics["encode_batch_seconds"].value / 2.0)
    assert record.metrics["bitrate_bps"].value == pytest.approx(50 * 8 * 5)
    assert record.metrics["encode_peak_mib"].value >= 0
    assert record.extras["device"]["device"] == "cpu" and record.extras["device"]["cpu_model"]
    assert record.tokenizer_info["description"].startswith("Quantised log-mel")
    assert "-> " in capsys.readouterr().out
    assert cmd_profile(_profile_args(tmp_path)) == 0
    assert "up to date, skipped" in capsys.readouterr().out
    assert ResultRecord.load(path).fingerprint == record.fingerprint
    # other settings are another key: measured again
    assert cmd_profile(_profile_args(tmp_path, "--runs", "1")) == 0
    assert "skipped" not in capsys.readouterr().out
    assert ResultRecord.load(path).fingerprint != record.fingerprint


def test_a_tokenizer_that_cannot_decode_has_unavailable_decode_metrics():
    class EncodeOnly(MelBandTokenizer):
        def __init__(self):
            super().__init__()
            self.info = type(self.info)(**{**self.info.__dict__, "can_decode": False})

    torch.set_num_threads(1)
    settings = ProfileSettings(seconds=0.5, batch=2, runs=1, warmup=0)
    outcome = profile_tokenizer(EncodeOnly(), "cpu", settings)
    assert outcome.metrics["decode_seconds"].status == "unavailable"
    assert "cannot decode" in outcome.metrics["decode_seconds"].reason
    assert outcome.metrics["decode_seconds"].value is None
    dmel = DMelTokenizer(min_db=-80.0, max_db=20.0)
    assert not dmel.needs_fit
    outcome = profile_tokenizer(dmel, "cpu", settings)
    assert outcome.metrics["bitrate_bps"].value == pytest.approx(80 * 80 * 4)
    assert outcome.metrics["encode_seconds"].value > 0


def test_measure_call_and_parameter_count():
    calls = []
    measured = measure_call(lambda: calls.append(bytearray(8 << 20)), "cpu", runs=3, warmup=2)
    assert len(calls) == 5 and len(measured.wall_s) == 3
    assert measured.peak_kind == "rss-delta" and measured.max_peak_mib >= 4
    with pytest.raises(ValueError):
        measure_call(lambda: None, "cpu", runs=0)

    class Holder:
        def __init__(self):
            self.model = torch.nn.Linear(4, 3)  # 15 parameters
            self.same = self.model
            self.centroids = [torch.zeros(10, 2)]  # 20 values
            self.ids = torch.zeros(7, dtype=torch.int64)  # not counted

    assert count_parameters(Holder()) == {"modules": 15, "tensors": 20, "total": 35}


@pytest.fixture
def split(tmp_path):
    utterances = []
    for i in range(6):
        wav, _ = synthetic_batch(16000, seed=i, durations=(0.6 + 0.1 * i,))
        save_wav(tmp_path / f"u{i}.wav", wav[0], 16000)
        utterances.append(Utterance(f"u{i}", f"u{i}.wav", wav.shape[1] / 16000, 16000))
    write_manifest(tmp_path / "test.jsonl", utterances)
    manifest = read_manifest(tmp_path / "test.jsonl")
    tokenizer = MelBandTokenizer()
    cached = TokenCache(tmp_path / "tokens").build(
        tokenizer, "fp", manifest.fingerprint(), manifest, iter_audio_batches(manifest, 16000)
    )
    return tokenizer, cached


def test_token_stats_from_the_cache_and_a_small_re_encode(split):
    tokenizer, cached = split
    record = token_stats_record(
        tokenizer, "dummy", "mini", {"style/test": cached}, StatsSettings(stability_utterances=4)
    )
    assert record.kind == "token-stats" and record.status == "ok"
    data = np.asarray(cached.data)
    rows = record.extras["per_codebook"]
    for k, row in enumerate(rows):
        used = len(np.unique(data[:, k]))
        assert row["used"] == used and row["usage"] == pytest.approx(100 * used / 32)
        _, counts = np.unique(data[:, k], return_counts=True)
        p = counts / counts.sum()
        assert row["entropy_bits"] == pytest.approx(float(-(p * np.log2(p)).sum()))
        assert 0 <= row["stability_shift"] <= 100
    usage = record.metrics["codebook_usage"]
    assert usage.value == pytest.approx(np.mean([r["usage"] for r in rows]))
    shift = record.metrics["stability_shift"]
    assert shift.n == 4 and shift.ci["low"] <= shift.value <= shift.ci["high"]
    noise = record.per_utterance["stability_noise"]
    assert len(noise.ids) == 4 and all(d > 0 for d in noise.den)
    assert "12 utterance encodes" in record.config["extra_encoding"]


def test_token_stats_refuse_what_has_no_tokens(split):
    tokenizer, _ = split
    with pytest.raises(TokenStatsError, match="at least one"):
        token_stats_record(tokenizer, "dummy", "mini", {})
    reference = LogMelReference()
    with pytest.raises(TokenStatsError, match="continuous reference"):
        token_stability(reference, {"u": torch.zeros(1600)})

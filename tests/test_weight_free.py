"""The weight-free baselines: dMel and k-means on log-mel.

Both are fitted on a few seconds of synthetic harmonic/noise audio (no corpus, no download),
then must keep the tokenizer contract, compute the bitrate they stand for, save and reload
what they learnt bit for bit, and decode to the length their frames stand for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmark.api import BuildContext, FitData, construct
from benchmark.cards import load_card
from benchmark.conformance import check_tokenizer, failed_checks, format_results, synthetic_batch
from benchmark.errors import BenchmarkError, DataError
from benchmark.models.kmeans import KMeansQuantizer, QuantizerError
from benchmark.registry import REPO_ROOT
from benchmark.tokenizers.dmel import (
    RANGE_FILENAME,
    DMelTokenizer,
    WeightFreeConfigError,
)
from benchmark.tokenizers.kmeans_logmel import (
    FrameReservoir,
    KMeansLogMelTokenizer,
    quantizer_filename,
)

SR = 16000


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add contention on a busy 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fit_data(with_ids: bool = True) -> FitData:
    """About 7 s of chirps, harmonic tones and noise in two batches (the harness's form)."""
    batches = [
        synthetic_batch(SR, seed=11, durations=(1.5, 0.8, 2.0)),
        synthetic_batch(SR, seed=12, durations=(1.2, 1.6)),
    ]

    def iterate() -> Iterator[tuple]:
        for wav, lengths in batches:
            ids = [f"u{i}" for i in range(len(lengths))]
            yield (ids, wav, lengths) if with_ids else (wav, lengths)

    return FitData(name="synthetic", batches=iterate, num_utterances=5)


def _quiet() -> BuildContext:
    return BuildContext(progress=False)


def _assert_conforms(tokenizer) -> None:
    results = check_tokenizer(tokenizer)
    assert failed_checks(results) == [], "\n".join(format_results(results))
    assert not any(r.skipped for r in results), "\n".join(format_results(results))


@pytest.fixture(scope="module")
def dmel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dmel")
    DMelTokenizer(context=_quiet()).fit(_fit_data(), out)
    return out


@pytest.fixture(scope="module")
def kmeans_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kmeans")
    KMeansLogMelTokenizer(num_clusters=16, context=_quiet()).fit(_fit_data(), out)
    return out


def _loaded_dmel(folder: Path) -> DMelTokenizer:
    tokenizer = DMelTokenizer(context=_quiet())
    tokenizer.load_fitted(folder)
    return tokenizer


# ---------------------------------------------------------------------- dMel


def test_dmel_fitted_passes_every_check_at_the_papers_bitrate(dmel_dir: Path) -> None:
    tokenizer = _loaded_dmel(dmel_dir)
    assert tokenizer.needs_fit
    _assert_conforms(tokenizer)
    info = tokenizer.info
    assert info.frame_rate == 80.0 and info.codebook_sizes == (16,) * 80
    assert info.bitrate == pytest.approx(80 * math.log2(16) * 80.0)  # 25.6 kbit/s
    assert info.tier == "high"


def test_dmel_range_is_the_min_and_max_log_mel_of_the_fit_data(dmel_dir: Path) -> None:
    tokenizer = _loaded_dmel(dmel_dir)
    low, high = math.inf, -math.inf
    for _, wav, lengths in _fit_data():
        mel, frames = tokenizer.log_mel_db(wav, lengths)
        for b, n in enumerate(frames.tolist()):
            low, high = min(low, float(mel[b, :n].min())), max(high, float(mel[b, :n].max()))
    assert tokenizer.range_db == (low, high)
    saved = json.loads((dmel_dir / RANGE_FILENAME).read_text())
    assert saved["data"] == "synthetic" and saved["frames"] > 500
    assert len(saved["channel_min_db"]) == 80 and min(saved["channel_min_db"]) == low


def test_dmel_bare_wav_batches_fit_the_same_range(dmel_dir: Path, tmp_path: Path) -> None:
    DMelTokenizer(context=_quiet()).fit(_fit_data(with_ids=False), tmp_path)
    assert _loaded_dmel(tmp_path).range_db == _loaded_dmel(dmel_dir).range_db


def test_dmel_fit_changes_fingerprint_and_reload_gives_identical_tokens(
    dmel_dir: Path, tmp_path: Path
) -> None:
    fitted = DMelTokenizer(context=_quiet())
    before = dict(fitted.state_fingerprint())
    fitted.fit(_fit_data(), tmp_path)  # fit alone leaves the tokenizer unfitted...
    fitted.load_fitted(tmp_path)  # ...the harness loads what it saved
    reloaded = _loaded_dmel(tmp_path)
    assert before["range_db"] is None
    assert fitted.state_fingerprint() != before
    assert fitted.state_fingerprint() == reloaded.state_fingerprint()
    wav, lengths = synthetic_batch(SR, seed=3)
    first, first_lengths = fitted.encode(wav, lengths)
    second, second_lengths = reloaded.encode(wav, lengths)
    assert torch.equal(first, second) and torch.equal(first_lengths, second_lengths)


def test_dmel_quantisation_error_is_at_most_half_a_bin(dmel_dir: Path) -> None:
    tokenizer = _loaded_dmel(dmel_dir)
    low, high = tokenizer.range_db
    step = tokenizer.step_db
    assert step == pytest.approx((high - low) / 15)
    wav, lengths = synthetic_batch(SR, seed=4)
    wav = torch.cat([wav, 4.0 * wav, 1e-4 * wav])  # also louder and quieter than the fit data
    lengths = lengths.repeat(3)
    tokens, frames = tokenizer.encode(wav, lengths)
    mel, _ = tokenizer.log_mel_db(wav, lengths)
    values = tokenizer.dequantize(tokens)
    valid = torch.arange(tokens.shape[1]) < frames.unsqueeze(1)
    mel, values, ids = mel[valid], values[valid], tokens[valid]
    inside = (mel >= low) & (mel <= high)
    assert bool(inside.any()) and bool((~inside).any())
    assert float((mel - values)[inside].abs().max()) <= step / 2 + 1e-3
    assert bool((ids[mel < low] == 0).all()) and bool((ids[mel > high] == 15).all())
    ends = tokenizer.dequantize(torch.tensor([0, 15]))
    assert ends.tolist() == pytest.approx([low, high], abs=1e-3)


def test_dmel_decode_lengths_and_vocoder_seam(dmel_dir: Path) -> None:
    tokenizer = _loaded_dmel(dmel_dir)
    wav, lengths = synthetic_batch(SR, seed=5)
    tokens, frames = tokenizer.encode(wav, lengths)
    audio, audio_lengths = tokenizer.decode(tokens, frames)
    assert torch.equal(audio_lengths, frames * 200) and audio.shape[1] == int(audio_lengths.max())
    assert bool(torch.isfinite(audio).all()) and float(audio.abs().max()) > 0

    seen = {}

    def vocoder(mel_db: torch.Tensor, frame_lengths: torch.Tensor):
        seen["mel"], seen["frames"] = mel_db, frame_lengths
        return torch.zeros(mel_db.shape[0], 7), torch.full((mel_db.shape[0],), 7)

    tokenizer.vocoder = vocoder
    out, out_lengths = tokenizer.decode(tokens, frames)
    assert out.shape == (3, 7) and out_lengths.tolist() == [7, 7, 7]
    assert seen["mel"].shape == (3, tokens.shape[1], 80) and torch.equal(seen["frames"], frames)
    for b, n in enumerate(frames.tolist()):
        assert torch.equal(seen["mel"][b, :n], tokenizer.dequantize(tokens[b, :n]))


class _TokenVocoder:
    """Stands for the harness's ScalableVocoder: decodes the ids themselves."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def decode(self, tokens, token_lengths, codebooks=None):
        self.calls.append((tokens, token_lengths, codebooks))
        return torch.zeros(len(token_lengths), 5), torch.full((len(token_lengths),), 5)


def test_token_vocoders_get_the_ids(dmel_dir: Path, kmeans_dir: Path) -> None:
    kmeans = KMeansLogMelTokenizer(num_clusters=16, vocoder=_TokenVocoder())
    kmeans.load_fitted(kmeans_dir)
    for tokenizer in (_loaded_dmel(dmel_dir), kmeans):
        tokenizer.vocoder = _TokenVocoder()
        tokens, frames = tokenizer.encode(*synthetic_batch(SR, seed=8))
        _, lengths = tokenizer.decode(tokens, frames, codebooks=[0])
        assert lengths.tolist() == [5, 5, 5]
        ((seen, seen_frames, codebooks),) = tokenizer.vocoder.calls
        assert seen is tokens and seen_frames is frames and codebooks == [0]
    with pytest.raises(WeightFreeConfigError, match="vocoder must"):
        DMelTokenizer(vocoder="hifigan")


def test_dmel_fixed_range_needs_no_fit_and_unfitted_refuses_to_encode() -> None:
    wav, lengths = synthetic_batch(SR)
    fixed = DMelTokenizer(min_db=-120.0, max_db=0.0)
    assert not fixed.needs_fit and fixed.state_fingerprint()["range_db"] == [-120.0, 0.0]
    tokens, _ = fixed.encode(wav, lengths)
    assert tokens.shape[2] == 80
    with pytest.raises(BenchmarkError, match="no dMel bin range"):
        DMelTokenizer().encode(wav, lengths)
    with pytest.raises(WeightFreeConfigError, match="both min_db and max_db"):
        DMelTokenizer(min_db=-100.0)
    with pytest.raises(WeightFreeConfigError, match="min_db < max_db"):
        DMelTokenizer(min_db=0.0, max_db=-10.0)


def test_dmel_refuses_a_range_fitted_for_another_analysis(dmel_dir: Path) -> None:
    with pytest.raises(DataError, match="fitted for"):
        DMelTokenizer(n_mels=40).load_fitted(dmel_dir)
    with pytest.raises(DataError, match="cannot be read"):
        DMelTokenizer().load_fitted(dmel_dir / "missing")


# ---------------------------------------------------------------------- k-means on log-mel


def test_kmeans_logmel_fitted_passes_every_check(kmeans_dir: Path) -> None:
    tokenizer = KMeansLogMelTokenizer(num_clusters=16)
    assert tokenizer.needs_fit and tokenizer.embeddings() is None
    tokenizer.load_fitted(kmeans_dir)
    _assert_conforms(tokenizer)
    assert tokenizer.info.bitrate == pytest.approx(50.0 * math.log2(16))
    table = tokenizer.embeddings()
    assert table.shape == (1, 16, 80)
    assert torch.equal(table[0], tokenizer.quantizer.centroids)


def test_kmeans_logmel_reload_and_fingerprint(kmeans_dir: Path) -> None:
    fitted = KMeansLogMelTokenizer(num_clusters=16, context=_quiet())
    assert fitted.state_fingerprint()["codebook_sha256"] is None
    before = dict(fitted.state_fingerprint())
    fitted.load_fitted(kmeans_dir)
    assert fitted.state_fingerprint() != before
    saved = KMeansQuantizer.load(kmeans_dir / quantizer_filename(16))
    assert saved.provenance["data"] == "synthetic"
    assert saved.provenance["kmeans_data"] == {"corpus": "mini", "subset": "ood", "split": "train"}
    again = KMeansLogMelTokenizer(num_clusters=16)
    again.load_fitted(kmeans_dir)
    assert again.state_fingerprint() == fitted.state_fingerprint()
    wav, lengths = synthetic_batch(SR, seed=6)
    first, first_lengths = fitted.encode(wav, lengths)
    second, second_lengths = again.encode(wav, lengths)
    assert torch.equal(first, second) and torch.equal(first_lengths, second_lengths)
    audio, audio_lengths = again.decode(first, first_lengths)
    assert torch.equal(audio_lengths, first_lengths * 320)
    assert audio.shape[1] == int(audio_lengths.max()) and bool(torch.isfinite(audio).all())


def test_decode_rejects_bad_tokens(dmel_dir: Path, kmeans_dir: Path) -> None:
    kmeans = KMeansLogMelTokenizer(num_clusters=16)
    kmeans.load_fitted(kmeans_dir)
    frames = torch.tensor([3])
    with pytest.raises(ValueError, match="ids must lie"):
        kmeans.decode(torch.full((1, 3, 1), 16), frames)
    with pytest.raises(ValueError, match="codebooks"):
        kmeans.decode(torch.zeros(1, 3, 1, dtype=torch.int64), frames, codebooks=[1])
    with pytest.raises(ValueError, match="tokens must be"):
        kmeans.decode(torch.zeros(1, 3, 2, dtype=torch.int64), frames)
    with pytest.raises(ValueError):
        _loaded_dmel(dmel_dir).mel_db(torch.full((1, 3, 80), 16), frames)


def test_kmeans_logmel_refuses_a_codebook_for_other_settings(kmeans_dir: Path) -> None:
    with pytest.raises(QuantizerError):
        KMeansLogMelTokenizer(num_clusters=32).load_fitted(kmeans_dir)
    other = KMeansLogMelTokenizer(num_clusters=16, stack_neighbours=1)
    with pytest.raises(QuantizerError, match="stack1"):
        other.set_quantizer(KMeansQuantizer.load(kmeans_dir / quantizer_filename(16)))
    with pytest.raises(BenchmarkError, match="no k-means codebook"):
        other.encode(*synthetic_batch(SR))


def test_kmeans_logmel_stacked_neighbours(tmp_path: Path) -> None:
    single = KMeansLogMelTokenizer(num_clusters=8)
    stacked = KMeansLogMelTokenizer(num_clusters=8, stack_neighbours=1, context=_quiet())
    wav, lengths = synthetic_batch(SR, seed=7)
    flat, frames = single.features(wav, lengths)
    patches, _ = stacked.features(wav, lengths)
    assert stacked.dim == patches.shape[2] == 240
    n = int(frames[0])
    assert torch.equal(patches[0, :n, 80:160], flat[0, :n])  # centre frame
    assert torch.equal(patches[0, 1:n, :80], flat[0, : n - 1])  # previous frame
    assert torch.equal(patches[0, 0, :80], flat[0, 0])  # edge repeats the first frame
    assert torch.equal(patches[0, n - 1, 160:], flat[0, n - 1])  # ... and the last one
    stacked.fit(_fit_data(), tmp_path)
    _assert_conforms(stacked)


def test_kmeans_logmel_needs_more_frames_than_clusters(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="K=2000"):
        KMeansLogMelTokenizer(num_clusters=2000, context=_quiet()).fit(_fit_data(), tmp_path)


def test_frame_reservoir_keeps_a_bounded_deterministic_sample() -> None:
    frames = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    small = FrameReservoir(capacity=200, dim=1, seed=0)
    small.add(frames[:60])
    small.add(frames[60:])
    assert small.filled == 100 and torch.equal(torch.cat(list(small.chunks())), frames)
    samples = []
    for _ in range(2):
        reservoir = FrameReservoir(capacity=30, dim=1, seed=1)
        for start in range(0, 100, 7):
            reservoir.add(frames[start : start + 7])
        samples.append(torch.cat(list(reservoir.chunks())))
        assert reservoir.filled == 30 and reservoir.seen == 100
    assert torch.equal(samples[0], samples[1])
    assert len(set(samples[0].flatten().tolist())) == 30


# ---------------------------------------------------------------------- cards


@pytest.mark.parametrize(
    ("card", "preset", "subset", "spec"),
    [
        ("dmel.yaml", "mini", "asr", "range_data"),
        ("dmel.yaml", "full", "librispeech", "range_data"),
        ("kmeans-logmel.yaml", "mini", "ood", "kmeans_data"),
        ("kmeans-logmel.yaml", "full", "librispeech", "kmeans_data"),
    ],
)
def test_cards_build_with_their_fit_data(card: str, preset: str, subset: str, spec: str) -> None:
    resolved = load_card(REPO_ROOT / "tokenizers" / card).resolve(preset)
    tokenizer = construct(
        _class(resolved.card.target), resolved.params, _quiet(), resolved.card.name
    )
    assert tokenizer.needs_fit and tokenizer.info.name == resolved.card.name
    assert tokenizer.fit_data_spec()["subset"] == subset
    assert tokenizer.fit_data_spec() == {"corpus": "mini", "split": "train"} | dict(
        resolved.params[spec]
    )


def _class(target: str) -> type:
    module, attr = target.split(":")
    return getattr(__import__(module, fromlist=[attr]), attr)

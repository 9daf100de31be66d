"""The conformance suite and the ``dummy`` tokenizer it is calibrated on.

The dummy must pass every check; each deliberately broken tokenizer below breaks one
property and must fail exactly the check that covers it (checks that build on a failed one
are skipped, which is not a failure).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch

from benchmark.api import TokenizerInfo
from benchmark.conformance import (
    CHECK_NAMES,
    CheckResult,
    check_tokenizer,
    failed_checks,
    format_results,
    synthetic_batch,
)
from benchmark.tokenizers.dummy import MelBandTokenizer


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add contention on a busy 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _by_name(results: Sequence[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


# ---------------------------------------------------------------------- the dummy passes


def test_dummy_passes_every_check() -> None:
    results = check_tokenizer(MelBandTokenizer())
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert failed_checks(results) == [], "\n".join(format_results(results))
    assert not any(r.skipped for r in results), "\n".join(format_results(results))


@pytest.mark.parametrize(
    "params",
    [
        {"n_bands": 1, "levels": 2},
        {"n_bands": 4, "levels": 256, "sample_rate": 24000, "hop_length": 320},
        {"n_bands": 16, "levels": 16, "hop_length": 160},
    ],
)
def test_dummy_variants_pass(params: dict) -> None:
    results = check_tokenizer(MelBandTokenizer(**params), seed=3)
    assert failed_checks(results) == [], "\n".join(format_results(results))


def test_format_results_lines() -> None:
    lines = format_results(check_tokenizer(MelBandTokenizer()))
    assert lines[0] == (
        "PASS metadata: 16000 Hz, 50.0 frames/s, 8 codebooks, 2000.0 bit/s (medium tier)"
    )
    assert len(lines) == len(CHECK_NAMES)
    line = format_results([CheckResult("padding-invariance", False, "item 1 differs")])
    assert line == ["FAIL padding-invariance: item 1 differs"]
    skipped = CheckResult("decode", True, "cannot decode", skipped=True)
    assert skipped.status == "SKIP" and format_results([skipped]) == ["SKIP decode: cannot decode"]


def test_synthetic_batch_is_seeded() -> None:
    wav, lengths = synthetic_batch(16000, seed=1)
    again, _ = synthetic_batch(16000, seed=1)
    other, _ = synthetic_batch(16000, seed=2)
    assert lengths.tolist() == [16000, 10080, 21920]
    assert wav.shape == (3, 21920) and wav.dtype == torch.float32
    assert torch.equal(wav, again) and not torch.equal(wav, other)
    assert float(wav.abs().max()) <= 1.0
    assert float(wav[1, 10080:].abs().max()) == 0.0  # zero-padded


# ---------------------------------------------------------------------- broken tokenizers


class OffByOneTop(MelBandTokenizer):
    """Clips loud bands to ``levels`` instead of ``levels - 1``."""

    def __init__(self) -> None:
        super().__init__(max_db=-20.0)

    def quantize(self, energies_db: torch.Tensor) -> torch.Tensor:
        position = (energies_db - self.min_db) / self.step_db
        return position.round().clamp(0, self.levels).to(torch.int64)


class PaddingLeak(MelBandTokenizer):
    """Normalises each row's RMS over the whole padded row, padding included."""

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rms = wav.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)
        return super().encode(0.1 * wav / rms, lengths)


class Nondeterministic(MelBandTokenizer):
    """Adds unseeded random jitter to the ids."""

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, token_lengths = super().encode(wav, lengths)
        jitter = torch.randint(0, 2, tokens.shape)
        return (tokens + jitter).clamp(0, self.levels - 1), token_lengths


class HalfFrameRate(MelBandTokenizer):
    """Declares 50 frames/s, produces 25."""

    def __init__(self) -> None:
        super().__init__(hop_length=640)
        self.info = dataclasses.replace(self.info, frame_rate=50.0)


class SlightlySlowFrames(MelBandTokenizer):
    """Declares 50 frames/s, produces 47.6: inside per-item slack, 4% off in bitrate."""

    def __init__(self) -> None:
        super().__init__(hop_length=336)
        self.info = dataclasses.replace(self.info, frame_rate=50.0, can_decode=False)


class MutatesWav(MelBandTokenizer):
    """Normalises its input in place."""

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = super().encode(wav, lengths)
        wav.mul_(0.5)
        return out


class MutatesTokens(MelBandTokenizer):
    """Zeroes the tokens it decodes."""

    def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
        out = super().decode(tokens, token_lengths, codebooks)
        tokens.zero_()
        return out


class ShortDecode(MelBandTokenizer):
    """Returns half the audio the frames stand for."""

    def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
        wav, lengths = super().decode(tokens, token_lengths, codebooks)
        return wav[:, : wav.shape[1] // 2], lengths // 2


class NonFiniteDecode(MelBandTokenizer):
    """Decodes to NaN."""

    def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
        wav, lengths = super().decode(tokens, token_lengths, codebooks)
        return torch.full_like(wav, math.nan), lengths


class SubsetIndexError(MelBandTokenizer):
    """Crashes on a codebook subset instead of refusing it clearly."""

    def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
        if codebooks is not None:
            raise IndexError("index 7 is out of bounds")
        return super().decode(tokens, token_lengths, codebooks)


class RaisesInEncode(MelBandTokenizer):
    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("boom: CUDA kernel failed")


class ListOutput(MelBandTokenizer):
    def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
        return list(super().encode(wav, lengths))


class NumpyTokens(MelBandTokenizer):
    def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
        tokens, token_lengths = super().encode(wav, lengths)
        return tokens.numpy(), token_lengths


class FloatTokens(MelBandTokenizer):
    def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
        tokens, token_lengths = super().encode(wav, lengths)
        return tokens.float(), token_lengths


class TooManyCodebooks(MelBandTokenizer):
    def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
        tokens, token_lengths = super().encode(wav, lengths)
        return torch.cat([tokens, tokens[..., :1]], dim=2), token_lengths


class LengthsBeyondFrames(MelBandTokenizer):
    def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
        tokens, token_lengths = super().encode(wav, lengths)
        return tokens, token_lengths + 5


class NumpyDecode(MelBandTokenizer):
    def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
        wav, lengths = super().decode(tokens, token_lengths, codebooks)
        return wav.numpy(), lengths


class InfoNotMetadata(MelBandTokenizer):
    def __init__(self) -> None:
        super().__init__()
        self.info = {"name": "dict", "sample_rate": 16000}  # type: ignore[assignment]


class InfoLayersMismatch(MelBandTokenizer):
    """Metadata that skipped TokenizerInfo's own validation."""

    def __init__(self) -> None:
        super().__init__()
        info = object.__new__(TokenizerInfo)
        for key, value in dataclasses.asdict(self.info).items():
            object.__setattr__(info, key, value)
        object.__setattr__(info, "layers", (3, 7))
        self.info = info


class WrongEmbeddings(MelBandTokenizer):
    def embeddings(self) -> torch.Tensor:
        return torch.zeros(self.n_bands, self.levels + 1, 4)


class RaisingEmbeddings(MelBandTokenizer):
    def embeddings(self) -> torch.Tensor:
        raise RuntimeError("centroids not loaded")


BROKEN = [
    pytest.param(OffByOneTop, {"token-range"}, "outside [0, 32)", id="ids-out-of-range"),
    pytest.param(PaddingLeak, {"padding-invariance"}, "differs on", id="padding-leak"),
    pytest.param(Nondeterministic, {"determinism"}, "second encode differs", id="nondeterministic"),
    pytest.param(HalfFrameRate, {"frame-rate"}, "at 50 frames/s", id="half-frame-rate"),
    pytest.param(SlightlySlowFrames, {"bitrate"}, "declared 2000.0 bit/s", id="bitrate-mismatch"),
    pytest.param(MutatesWav, {"no-mutation"}, "encode modified its input wav", id="mutates-wav"),
    pytest.param(
        MutatesTokens, {"no-mutation"}, "decode modified its input tokens", id="mutates-tokens"
    ),
    pytest.param(ShortDecode, {"decode"}, "decoded 8000 samples for 50 frames", id="short-decode"),
    pytest.param(NonFiniteDecode, {"decode"}, "non-finite", id="nan-decode"),
    pytest.param(SubsetIndexError, {"decode"}, "IndexError", id="subset-crash"),
    pytest.param(RaisesInEncode, {"encode-shape"}, "raised RuntimeError: boom", id="encode-raises"),
    pytest.param(ListOutput, {"encode-shape"}, "must return a tuple", id="encode-list"),
    pytest.param(NumpyTokens, {"encode-shape"}, "got ndarray", id="encode-numpy"),
    pytest.param(
        FloatTokens, {"encode-shape"}, "must be int64, got tensor float32", id="float-ids"
    ),
    pytest.param(TooManyCodebooks, {"encode-shape"}, "K=8", id="extra-codebook"),
    pytest.param(LengthsBeyondFrames, {"encode-shape"}, "must lie in [0, N=69]", id="lengths-gt-n"),
    pytest.param(NumpyDecode, {"decode"}, "got ndarray", id="decode-numpy"),
    pytest.param(
        InfoNotMetadata, {"metadata"}, "must be a TokenizerInfo, got dict", id="info-dict"
    ),
    pytest.param(InfoLayersMismatch, {"metadata"}, "2 layers for 8 codebooks", id="info-layers"),
    pytest.param(WrongEmbeddings, {"embeddings"}, "33 rows per codebook", id="embeddings-shape"),
    pytest.param(RaisingEmbeddings, {"embeddings"}, "raised RuntimeError", id="embeddings-raise"),
]


@pytest.mark.parametrize(("cls", "expected", "detail"), BROKEN)
def test_broken_tokenizer_fails_exactly_its_check(
    cls: type[MelBandTokenizer], expected: set[str], detail: str
) -> None:
    results = check_tokenizer(cls())
    report = "\n".join(format_results(results))
    assert set(failed_checks(results)) == expected, report
    assert [r.name for r in results] == list(CHECK_NAMES)  # every check still reported
    (failure,) = [r for r in results if r.name in expected]
    assert detail in failure.detail, report


def test_failed_prerequisite_skips_dependents() -> None:
    results = _by_name(check_tokenizer(RaisesInEncode()))
    assert results["metadata"].status == "PASS" and results["embeddings"].status == "PASS"
    for name in ("token-range", "frame-rate", "determinism", "padding-invariance", "decode"):
        assert results[name].status == "SKIP"
        assert "needs encode-shape" in results[name].detail
    assert _by_name(check_tokenizer(Nondeterministic()))["padding-invariance"].skipped


def test_padding_tolerance_absorbs_few_differences() -> None:
    class LastFrameLeak(MelBandTokenizer):
        """Flips the last valid frame of every item shorter than the batch."""

        def encode(self, wav, lengths):  # type: ignore[no-untyped-def]
            tokens, token_lengths = super().encode(wav, lengths)
            for b, n in enumerate(token_lengths.tolist()):
                if n < tokens.shape[1]:
                    tokens[b, n - 1] = (tokens[b, n - 1] + 1) % self.levels
            return tokens, token_lengths

    strict = _by_name(check_tokenizer(LastFrameLeak()))["padding-invariance"]
    assert not strict.passed and "item 0 differs on 1 of 50" in strict.detail
    loose = _by_name(check_tokenizer(LastFrameLeak(), tolerance=0.05))["padding-invariance"]
    assert loose.passed and "2 of 151" in loose.detail


def test_decode_skipped_when_tokenizer_cannot_decode() -> None:
    class EncodeOnly(MelBandTokenizer):
        def __init__(self) -> None:
            super().__init__()
            self.info = dataclasses.replace(self.info, can_decode=False)

    results = _by_name(check_tokenizer(EncodeOnly()))
    assert results["decode"].skipped and "cannot decode" in results["decode"].detail
    assert failed_checks(list(results.values())) == []


def test_subset_refusal_with_value_error_passes() -> None:
    class AllOrNothing(MelBandTokenizer):
        def decode(self, tokens, token_lengths, codebooks=None):  # type: ignore[no-untyped-def]
            if codebooks is not None:
                raise ValueError(f"codebooks={list(codebooks)}: this vocoder needs all 8")
            return super().decode(tokens, token_lengths)

    decode = _by_name(check_tokenizer(AllOrNothing()))["decode"]
    assert decode.passed and not decode.skipped
    assert "subset [0] refused: ValueError: codebooks=[0]" in decode.detail


# ---------------------------------------------------------------------- the dummy itself


def test_dummy_metadata() -> None:
    info = MelBandTokenizer().info
    assert info.name == "dummy" and info.sample_rate == 16000 and info.frame_rate == 50.0
    assert info.codebook_sizes == (32,) * 8 and info.can_decode
    assert info.bitrate == pytest.approx(50 * 8 * 5)
    assert MelBandTokenizer(n_bands=2, levels=4, name="tiny").info.bitrate == pytest.approx(200)


def test_dummy_encode_shapes_and_padding() -> None:
    tokenizer = MelBandTokenizer()
    wav, lengths = synthetic_batch(16000, seed=0, durations=(0.5, 0.01, 0.01, 0.2))
    lengths[2] = 0  # an empty item
    wav[:, 3000:] += 0.7  # garbage beyond the valid samples must not matter
    tokens, token_lengths = tokenizer.encode(wav, lengths)
    assert token_lengths.tolist() == [25, 1, 0, 10]  # ceil(L / 320)
    assert tokens.shape == (4, 25, 8) and tokens.dtype == torch.int64
    assert token_lengths.dtype == torch.int64
    assert int(tokens[1:, 10:].abs().sum()) == 0  # padded frames hold id 0
    alone, _ = tokenizer.encode(wav[3:, :3200].clone(), lengths[3:])
    assert torch.equal(alone[0], tokens[3, :10])


def test_dummy_quantisation_round_trip() -> None:
    tokenizer = MelBandTokenizer(levels=64, min_db=-100.0, max_db=20.0)
    wav, lengths = synthetic_batch(16000, seed=5)
    energies, frame_lengths = tokenizer.band_db(wav, lengths)
    tokens, token_lengths = tokenizer.encode(wav, lengths)
    assert torch.equal(frame_lengths, token_lengths)
    for b, n in enumerate(token_lengths.tolist()):
        restored = tokenizer.dequantize(tokens[b, :n])
        clipped = energies[b, :n].clamp(tokenizer.min_db, tokenizer.max_db)
        error = (restored - clipped).abs().max()
        assert float(error) <= tokenizer.step_db / 2 + 1e-4
    ramp = torch.linspace(-130.0, 40.0, 1000)
    ids = tokenizer.quantize(ramp)
    assert int(ids.min()) == 0 and int(ids.max()) == 63
    assert torch.equal(tokenizer.quantize(tokenizer.dequantize(torch.arange(64))), torch.arange(64))


def test_dummy_decode_shapes_and_reencode() -> None:
    tokenizer = MelBandTokenizer()
    wav, lengths = synthetic_batch(16000, seed=2)
    tokens, token_lengths = tokenizer.encode(wav, lengths)
    audio, audio_lengths = tokenizer.decode(tokens, token_lengths)
    assert audio_lengths.tolist() == (token_lengths * 320).tolist()
    assert audio.shape == (3, int(audio_lengths.max())) and audio.dtype == torch.float32
    assert bool(torch.isfinite(audio).all())
    assert float(audio[1, int(audio_lengths[1]) :].abs().max()) == 0.0
    again, _ = tokenizer.decode(tokens, token_lengths)
    assert torch.equal(audio, again)  # zero-phase Griffin-Lim: deterministic
    # Re-encoding the decoded audio lands near the original ids (interior frames).
    recoded, _ = tokenizer.encode(audio, audio_lengths)
    gap = (recoded[:, 2:30] - tokens[:, 2:30]).abs().float().mean()
    assert float(gap) < 2.0
    subset, subset_lengths = tokenizer.decode(tokens, token_lengths, codebooks=[0, 3])
    assert subset.shape == audio.shape and torch.equal(subset_lengths, audio_lengths)


def test_dummy_embeddings() -> None:
    table = MelBandTokenizer(n_bands=3, levels=5).embeddings()
    assert table.shape == (3, 5, 1)
    assert torch.allclose(table[2, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_bands": 0}, "n_bands must be an int >= 1"),
        ({"levels": 1}, "levels must be an int >= 2"),
        ({"levels": 32.0}, "levels must be an int"),
        ({"hop_length": True}, "hop_length must be an int"),
        ({"sample_rate": -16000}, "sample_rate must be an int >= 1"),
        ({"name": ""}, "name must be a non-empty str"),
        ({"min_db": 0.0, "max_db": 0.0}, "must be below max_db"),
        ({"max_db": math.inf}, "finite"),
        ({"n_bands": 200}, "too many"),
    ],
)
def test_dummy_rejects_bad_params(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MelBandTokenizer(**params)


def test_dummy_rejects_bad_inputs() -> None:
    tokenizer = MelBandTokenizer()
    wav = torch.zeros(2, 800)
    with pytest.raises(ValueError, match=r"wav must be a float tensor \[B, T\]"):
        tokenizer.encode(wav[0], torch.tensor([800]))
    with pytest.raises(ValueError, match="wav must be a float tensor"):
        tokenizer.encode(np.zeros((2, 800)), torch.tensor([800, 800]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"lengths must be an integer tensor \[B\]"):
        tokenizer.encode(wav, torch.tensor([800.0, 800.0]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=800\]"):
        tokenizer.encode(wav, torch.tensor([801, 10]))
    tokens = torch.zeros(1, 3, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 32\)"):
        tokenizer.decode(tokens + 32, torch.tensor([3]))
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor \[B, N, 8\]"):
        tokenizer.decode(tokens[..., :4], torch.tensor([3]))
    with pytest.raises(ValueError, match=r"token_lengths must lie in \[0, N=3\]"):
        tokenizer.decode(tokens, torch.tensor([4]))
    for bad in ([], [8], [1, 1], [0.0]):
        with pytest.raises(ValueError, match="codebooks must be distinct band indices"):
            tokenizer.decode(tokens, torch.tensor([3]), codebooks=bad)  # type: ignore[arg-type]

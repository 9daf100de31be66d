"""The codec tokenizers (EnCodec, DAC, Mimi) on tiny random models, and the resampling helper."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmark.api import BuildContext, construct
from benchmark.conformance import check_tokenizer, failed_checks, format_results, synthetic_batch
from benchmark.data.resampling import resampled_length, to_rate
from benchmark.errors import WeightsUnavailableError
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.plan import Planner
from benchmark.registry import build_registries
from benchmark.tokenizers.codec_loading import FAMILIES, load_codec, tiny_codec_dir
from benchmark.tokenizers.codecs import CodecError, CodecTokenizer

ENCODEC_CARDS = {  # card -> (codebooks, bit/s, DASB tier)
    "encodec-1.5kbps": (2, 1500.0, "low"),
    "encodec-3kbps": (4, 3000.0, "medium"),
    "encodec-6kbps": (8, 6000.0, "medium"),
    "encodec-12kbps": (16, 12000.0, "high"),
    "encodec-24kbps": (32, 24000.0, "high"),
}
CODEC_CARDS = (*ENCODEC_CARDS, "dac-24khz", "mimi")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and timing stays sane on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("codecs")


@pytest.fixture(scope="module")
def registries():
    return build_registries()


def _card_tokenizer(registries, name: str, workdir: Path, preset: str = "mini") -> CodecTokenizer:
    entry = registries.tokenizer.get(name)
    card = entry.card.resolve(preset)
    context = BuildContext(workdir=workdir, weights=card.weights, progress=False)
    return construct(entry.load(), card.params, context, name)


def _tiny(family: str, workdir: Path, **params) -> CodecTokenizer:
    return CodecTokenizer(family, tiny_model=True, context=BuildContext(workdir=workdir), **params)


@pytest.mark.parametrize("name", CODEC_CARDS)
def test_card_passes_conformance(registries, workdir, name):
    tokenizer = _card_tokenizer(registries, name, workdir)
    results = check_tokenizer(tokenizer)
    assert failed_checks(results) == [], "\n".join(format_results(results))


def test_mimi_bitrate_check_allows_one_partial_frame_per_item(registries, workdir):
    """Mimi at 12.5 Hz rounds each item's partial last frame up: +4 % on the probe batch."""
    results = {r.name: r for r in check_tokenizer(_card_tokenizer(registries, "mimi", workdir))}
    assert results["bitrate"].passed and "gap 4.0%" in results["bitrate"].detail


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tiny_model_reloads_to_identical_codes(workdir, tmp_path, family):
    wav, lengths = synthetic_batch(24000, seed=5)
    tokenizer = _tiny(family, workdir, num_codebooks=4)
    tokens, token_lengths = tokenizer.encode(wav, lengths)
    assert len(set(tokens[0, : int(token_lengths[0]), 0].tolist())) > 1, "degenerate codebook"
    # the in-memory model saved and loaded back through the {path} route
    tokenizer.model.save_pretrained(tmp_path / "saved")
    reloaded = CodecTokenizer(
        family, num_codebooks=4, context=BuildContext(weights={"path": str(tmp_path / "saved")})
    )
    assert torch.equal(reloaded.encode(wav, lengths)[0], tokens)
    # a tiny model built afresh elsewhere is the same model (seeded, content-addressed)
    fresh = _tiny(family, tmp_path / "fresh", num_codebooks=4)
    assert fresh.state_fingerprint() == tokenizer.state_fingerprint()
    assert torch.equal(fresh.encode(wav, lengths)[0], tokens)


def test_tiny_folder_is_created_once(workdir):
    folder = tiny_codec_dir("dac", workdir / "models")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert tiny_codec_dir("dac", workdir / "models") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert folder.name.startswith("dac-tiny-") and (folder / "TINY_COMPLETE").is_file()
    assert not list((workdir / "models").glob(".*.partial"))


def test_uncached_hub_weights_offline_is_one_clear_line(registries, workdir, monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    card = registries.tokenizer.get("encodec-6kbps").card.resolve("full")
    hub, revision = card.weights["hub"], card.weights["revision"]
    if isinstance(try_to_load_from_cache(hub, "config.json", revision=revision), str):
        pytest.skip(f"{hub}@{revision} is in this machine's Hugging Face cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as caught:
        _card_tokenizer(registries, "encodec-6kbps", workdir, preset="full")
    message = str(caught.value)
    assert "\n" not in message
    assert hub in message and revision in message
    assert "huggingface-cli download" in message and "weights: {path:" in message


def test_bad_weights_are_weights_errors(workdir, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no weights given"):
        CodecTokenizer("dac", context=BuildContext(workdir=workdir))
    with pytest.raises(WeightsUnavailableError, match="missing or lacks config.json"):
        load_codec({"path": str(tmp_path / "nowhere")}, "mimi")
    folder = tiny_codec_dir("dac", workdir / "models")
    with pytest.raises(WeightsUnavailableError, match="holds a 'dac' model"):
        load_codec({"path": str(folder)}, "encodec")
    with pytest.raises(WeightsUnavailableError, match="unknown codec family"):
        CodecTokenizer("opus", context=BuildContext(workdir=workdir))


@pytest.mark.parametrize(
    ("family", "params", "needle"),
    [
        ("encodec", {"num_codebooks": 33}, "num_codebooks 33 exceeds the codec's maximum of 32"),
        ("dac", {"num_codebooks": 8, "max_codebooks": 40}, "max_codebooks 40 exceeds"),
        ("mimi", {"num_codebooks": 64}, "num_codebooks 64 exceeds the codec's maximum of 32"),
        ("encodec", {"num_codebooks": 8, "max_codebooks": 4}, "exceeds max_codebooks 4"),
        ("encodec", {"num_codebooks": 0}, "positive int, got 0"),
        ("encodec", {"num_codebooks": 2.0}, "positive int, got 2.0"),
    ],
)
def test_bad_codebook_counts_are_one_line_errors(workdir, family, params, needle):
    with pytest.raises(CodecError) as caught:
        _tiny(family, workdir, **params)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ENCODEC_CARDS)
def test_encodec_bitrates_and_tiers_come_from_metadata(registries, workdir, name):
    codebooks, bits, tier = ENCODEC_CARDS[name]
    info = _card_tokenizer(registries, name, workdir).info
    assert info.num_codebooks == codebooks and info.codebook_sizes == (1024,) * codebooks
    assert info.frame_rate == 75.0 and info.sample_rate == 24000
    assert info.bitrate == bits and info.tier == tier


def test_other_codec_metadata(registries, workdir):
    dac = _card_tokenizer(registries, "dac-24khz", workdir).info
    assert (dac.bitrate, dac.tier, dac.frame_rate) == (6000.0, "medium", 75.0)
    mimi = _card_tokenizer(registries, "mimi", workdir).info
    assert (mimi.bitrate, mimi.tier, mimi.frame_rate) == (1100.0, "low", 12.5)
    assert mimi.codebook_sizes == (2048,) * 8


@pytest.mark.parametrize("name", CODEC_CARDS)
def test_extraction_variants_keep_leading_codebooks_of_one_extraction(registries, workdir, name):
    tokenizer = _card_tokenizer(registries, name, workdir)
    params, kept = tokenizer.extraction_variant()
    if name not in ENCODEC_CARDS:  # single-card codecs extract exactly what they use
        assert kept == params["num_codebooks"] == tokenizer.info.num_codebooks
        return
    assert kept == ENCODEC_CARDS[name][0]
    assert dict(params) == {
        "family": "encodec",
        "num_codebooks": 32,
        "max_codebooks": 32,
        "tiny_model": True,
    }
    full = CodecTokenizer(**params, context=BuildContext(workdir=workdir))
    assert full.extraction_variant() == (params, 32)
    wav, lengths = synthetic_batch(24000, seed=2)
    mine, mine_lengths = tokenizer.encode(wav, lengths)
    shared, shared_lengths = full.encode(wav, lengths)
    assert torch.equal(mine_lengths, shared_lengths)
    assert torch.equal(mine, shared[:, :, :kept]), "residual prefix property broken"


def test_planner_shares_one_extraction_across_encodec_bitrates(registries, tmp_path):
    config = RunConfig(tokenizers=(), tasks=(), workdir=tmp_path, device="cpu", progress=False)
    planner = Planner(StepEnv(config, registries))
    toks = [
        planner._tokenizer(registries.tokenizer.get(name))
        for name in ("encodec-1.5kbps", "encodec-6kbps", "encodec-24kbps")
    ]
    low, mid, top = toks
    assert (low.kept, mid.kept, top.kept) == (2, 8, 32)
    assert low.encoder_spec["params"]["num_codebooks"] == 32
    assert low.encoder_key == mid.encoder_key == top.encoder_key  # one shared cache...
    assert len({low.key, mid.key, top.key}) == 3  # ...but three tokenizers with own results
    assert low.gate_id == mid.gate_id == top.gate_id  # the gate checks the shared encoder


def test_decode_subsets_must_be_leading_prefixes(workdir):
    tokenizer = _tiny("encodec", workdir, num_codebooks=4, max_codebooks=32)
    wav, lengths = synthetic_batch(24000, seed=1, durations=(0.2, 0.1))
    tokens, token_lengths = tokenizer.encode(wav, lengths)
    audio, samples = tokenizer.decode(tokens, token_lengths, codebooks=[0, 1])
    assert samples.tolist() == (token_lengths * 320).tolist() and audio.shape[1] == max(samples)
    for subset in ([1], [0, 2], [1, 0], [], [0, 1, 2, 3, 4]):
        with pytest.raises(CodecError, match=r"cannot decode codebooks \["):
            tokenizer.decode(tokens, token_lengths, codebooks=subset)
    with pytest.raises(CodecError, match="sequence of ints"):
        tokenizer.decode(tokens, token_lengths, codebooks=[0.5])


def test_decode_refuses_out_of_range_ids_and_bad_shapes(workdir):
    tokenizer = _tiny("mimi", workdir, num_codebooks=2)
    tokens = torch.zeros(2, 3, 2, dtype=torch.int64)
    lengths = torch.tensor([3, 1])
    bad = tokens.clone()
    bad[1, 0, 1] = 2048
    with pytest.raises(CodecError, match=r"token id 2048 in codebook 1 \(item 1, frame 0\)"):
        tokenizer.decode(bad, lengths)
    padded = tokens.clone()
    padded[1, 2, 0] = 4096  # a padded frame is not decoded, so not checked
    assert tokenizer.decode(padded, lengths)[1].tolist() == [3 * 1920, 1920]
    with pytest.raises(CodecError, match=r"tokens \[B, N, K=2\]"):
        tokenizer.decode(tokens[:, :, :1], lengths)
    with pytest.raises(CodecError, match="length 4 frames outside"):
        tokenizer.decode(tokens, torch.tensor([4, 1]))


def test_encode_handles_empty_and_tiny_items(workdir):
    tokenizer = _tiny("dac", workdir, num_codebooks=2)
    wav = torch.zeros(3, 700)
    wav[1, :1] = 0.5
    wav[2] = torch.randn(700, generator=torch.Generator().manual_seed(0)) * 0.1
    tokens, token_lengths = tokenizer.encode(wav, torch.tensor([0, 1, 700]))
    assert token_lengths.tolist() == [0, 1, 3] and tokens.shape == (3, 3, 2)
    with pytest.raises(CodecError, match="length 701 samples outside"):
        tokenizer.encode(wav, torch.tensor([0, 1, 701]))


def _tone(rate: int, seconds: float, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(round(rate * seconds), dtype=torch.float64) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t)).to(torch.float32)


def test_resampling_round_trip_keeps_a_tone():
    long, short = _tone(16000, 1.0), _tone(16000, 0.5)
    wav = torch.zeros(2, long.numel())
    wav[0], wav[1, : short.numel()] = long, short
    lengths = torch.tensor([long.numel(), short.numel()])
    up, up_lengths = to_rate(wav, lengths, 16000, 24000)
    assert up_lengths.tolist() == [24000, 12000] and up.shape == (2, 24000)
    assert torch.allclose(up[0, 2000:-2000], _tone(24000, 1.0)[2000:-2000], atol=1e-3)
    assert not bool(up[1, 12000:].any())
    back, back_lengths = to_rate(up, up_lengths, 24000, 16000)
    assert torch.equal(back_lengths, lengths)
    interior = slice(800, 15200)
    error = back[0, interior] - long[interior]
    snr = 10 * math.log10(float(long[interior].pow(2).mean()) / float(error.pow(2).mean()))
    assert snr > 40.0, f"round trip SNR {snr:.1f} dB"


def test_resampling_ignores_what_the_padding_holds():
    tone = _tone(16000, 0.3)
    clean = torch.zeros(1, 8000)
    clean[0, : tone.numel()] = tone
    dirty = clean.clone()
    dirty[0, tone.numel() :] = 1.0
    lengths = torch.tensor([tone.numel()])
    before = dirty.clone()
    out_clean, n_clean = to_rate(clean, lengths, 16000, 24000)
    out_dirty, n_dirty = to_rate(dirty, lengths, 16000, 24000)
    assert torch.equal(dirty, before), "to_rate modified its input"
    assert torch.equal(n_clean, n_dirty) and torch.allclose(out_clean, out_dirty, atol=1e-6)
    assert resampled_length(4801, 16000, 24000) == 7202
    with pytest.raises(ValueError, match="from_rate must be a positive int"):
        to_rate(clean, lengths, 0, 16000)

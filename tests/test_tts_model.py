"""The TTS model, its vocabulary, the LJSpeech reader and the text-WER metric (no corpus build).

Tiny models on toy data: each test runs in seconds on one CPU thread.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.api import BuildContext
from benchmark.errors import DataError
from benchmark.models.tts_text import ALPHABET, TextVocabulary, normalise_tts_text
from benchmark.models.tts_training import (
    cap_ratio,
    generate_tokens,
    train_tts,
    tts_examples,
    validation_loss,
)
from benchmark.models.tts_transformer import (
    LossWeights,
    TextToTokens,
    TTSModelConfig,
    guided_attention_weights,
    tts_losses,
)
from benchmark.tasks.training import TrainConfig

TINY = TTSModelConfig(
    dim=32, heads=2, encoder_layers=1, decoder_layers=1, ffn=64, dropout=0.0, input_dropout=0.0
)
SIZES = (5, 7)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _toy(n: int = 6) -> list:
    """Utterances whose tokens follow the characters: frame 2i, 2i+1 <- character i."""
    rng = np.random.default_rng(0)
    items = []
    for index in range(n):
        chars = rng.integers(1, 6, size=int(rng.integers(3, 6))).tolist()
        frames = np.repeat(np.array(chars), 2)
        tokens = np.stack([frames % SIZES[0], (frames * 3) % SIZES[1]], axis=1)
        items.append((f"u{index}", tokens, chars))
    return tts_examples(items)


def test_vocabulary_normalises_and_reports_characters_outside_the_alphabet(caplog):
    vocabulary = TextVocabulary()
    assert (
        normalise_tts_text("  Caf\u00e9\u2019s   \u201cMenu\u201d\u2014OK ") == 'cafe\'s "menu"-ok'
    )
    assert normalise_tts_text("[Sic]") == "(sic)"
    with caplog.at_level(logging.WARNING, logger="benchmark.models.tts_text"):
        ids = vocabulary.encode("Caf\u00e9 #7, ok", "LJ001-0001")
    assert vocabulary.decode(ids) == "cafe , ok"
    warning = [r.getMessage() for r in caplog.records]
    assert len(warning) == 1 and "LJ001-0001" in warning[0]
    assert "'#'" in warning[0] and "'7'" in warning[0]
    assert dict(vocabulary.dropped) == {"#": 1, "7": 1}
    assert len(vocabulary) == len(ALPHABET) + 1
    assert vocabulary.encode("123") == [vocabulary.index[" "]]  # never an empty input


def test_guided_attention_penalty_is_zero_on_the_diagonal_and_masks_padding():
    penalty, valid = guided_attention_weights(
        torch.tensor([4, 2]), torch.tensor([8, 4]), n=8, length=4, sigma=0.2
    )
    assert penalty.shape == valid.shape == (2, 8, 4)
    assert penalty[0, 0, 0] == 0 and penalty[0, 4, 2] == 0
    assert penalty[0, 7, 0] > 0.9
    assert valid[1].sum() == 4 * 2 and not valid[1, 4:].any() and not valid[1, :, 2:].any()


def test_loss_goes_down_and_the_valid_loss_picks_the_epoch():
    torch.manual_seed(0)
    examples = _toy()
    model = TextToTokens(len(ALPHABET) + 1, SIZES, TINY)
    weights = LossWeights(guided_attention=1.0)
    before = validation_loss(model, examples, weights, "cpu")
    result = train_tts(
        model, examples, examples, weights, TrainConfig(epochs=12, batch_size=3, lr=5e-3),
        "cpu", 0, False,
    )  # fmt: skip
    after = validation_loss(model, examples, weights, "cpu")
    scores = [h["valid_loss_nats"] for h in result.history]
    assert after < 0.6 * before
    assert result.best_epoch == int(np.argmin(scores))
    assert after == pytest.approx(min(scores), rel=1e-4)
    batch_text = torch.tensor([[1, 2, 0]])
    losses = tts_losses(model, batch_text, examples[0].tokens[None, :4], torch.tensor([4]), weights)
    assert set(losses) == {"tokens", "gate", "attention", "total"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_generation_stops_by_the_gate_respects_the_cap_and_stays_in_range():
    torch.manual_seed(0)
    examples = _toy()
    model = TextToTokens(len(ALPHABET) + 1, SIZES, TINY)
    train_tts(
        model, examples, examples, LossWeights(guided_attention=1.0),
        TrainConfig(epochs=40, batch_size=6, lr=1e-2), "cpu", 0, False,
    )  # fmt: skip
    texts = {e.id: e.target for e in examples}
    ratio = cap_ratio(examples, 1.5)
    assert ratio == pytest.approx(3.0)  # two frames per character, times 1.5
    out = generate_tokens(model, texts, ratio, "cpu")
    stopped = [g for g in out.values() if g.stopped]
    assert stopped, "the trained gate never fired"
    for uid, generated in out.items():
        assert 1 <= generated.tokens.shape[0] <= generated.cap
        assert generated.cap == int(np.ceil(ratio * len(texts[uid])))
        assert generated.tokens.dtype == np.int64 and generated.tokens.shape[1] == len(SIZES)
        assert (generated.tokens >= 0).all() and (generated.tokens < np.array(SIZES)).all()
        if not generated.stopped:
            assert generated.tokens.shape[0] == generated.cap
    capped = generate_tokens(model, texts, 0.5, "cpu")  # caps far below the real lengths
    for uid, generated in capped.items():
        assert generated.tokens.shape[0] <= int(np.ceil(0.5 * len(texts[uid])))
    sampled = generate_tokens(model, texts, ratio, "cpu", top_k=3, seed=1)
    again = generate_tokens(model, texts, ratio, "cpu", top_k=3, seed=1)
    assert all(np.array_equal(sampled[u].tokens, again[u].tokens) for u in texts)


def test_untrained_generation_is_capped_and_caps_are_checked():
    torch.manual_seed(0)
    model = TextToTokens(len(ALPHABET) + 1, SIZES, TINY).eval()
    text = torch.tensor([[1, 2, 3], [4, 5, 0]])
    tokens, lengths, stopped = model.generate(text, torch.tensor([3, 5]), gate_threshold=0.999)
    assert lengths.tolist() == [3, 5] and not stopped.any()
    assert tokens.shape == (2, 5, 2) and (tokens[0, 3:] == 0).all()
    with pytest.raises(ValueError, match="caps"):
        model.generate(text, torch.tensor([0, 3]))


def _ljspeech(root, n: int = 60, chapters: int = 2):
    folder = root / "LJSpeech-1.1"
    (folder / "wavs").mkdir(parents=True)
    rows = []
    for chapter in range(1, chapters + 1):
        for index in range(1, n + 1):
            uid = f"LJ{chapter:03d}-{index:04d}"
            sf.write(folder / "wavs" / f"{uid}.wav", np.zeros(2205, np.float32), 22050)
            rows.append(f"{uid}|Mr. Smith {index}.|Mister Smith {index}.")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_ljspeech_reader_splits_per_chapter_90_5_5_from_the_standard_layout(tmp_path):
    from benchmark.data.tts_corpora import ljspeech_manifest

    folder = _ljspeech(tmp_path)
    context = BuildContext(workdir=tmp_path / "work", data_root=tmp_path, progress=False)
    splits = {s: ljspeech_manifest("ljspeech", s, context) for s in ("train", "valid", "test")}
    assert {s: len(m) for s, m in splits.items()} == {"train": 108, "valid": 6, "test": 6}
    ids = [u.id for m in splits.values() for u in m]
    assert len(set(ids)) == 120
    for m in splits.values():  # every chapter in every split
        assert {u.id[:5] for u in m} == {"LJ001", "LJ002"}
    first = splits["test"].utterances[0]
    assert first.text == f"Mister Smith {int(first.id[-4:])}."  # the normalized column
    assert (first.speaker, first.duration, first.sample_rate) == ("LJ", 0.1, 22050)
    assert splits["test"].audio_path(first) == folder / "wavs" / f"{first.id}.wav"
    again = ljspeech_manifest("ljspeech", "test", context)
    assert [u.id for u in again] == [u.id for u in splits["test"]]  # deterministic
    with pytest.raises(DataError, match="not 'dev'"):
        ljspeech_manifest("ljspeech", "dev", context)


def test_ljspeech_reader_names_what_is_missing_or_malformed(tmp_path):
    from benchmark.data.tts_corpora import ljspeech_manifest

    folder = _ljspeech(tmp_path, n=3, chapters=1)
    context = BuildContext(workdir=tmp_path / "work", data_root=tmp_path, progress=False)
    (folder / "wavs" / "LJ001-0002.wav").unlink()
    with pytest.raises(DataError, match=r"LJ001-0002\.wav: listed in metadata.csv but missing"):
        ljspeech_manifest("ljspeech", "train", context)
    (folder / "metadata.csv").write_text("LJ001-0001|only two fields\n")
    with pytest.raises(DataError, match=r"metadata.csv:1: expected 'id\|transcription"):
        ljspeech_manifest("ljspeech", "train", context)
    (folder / "metadata.csv").unlink()
    with pytest.raises(DataError, match="metadata.csv: not found"):
        ljspeech_manifest("ljspeech", "train", context)
    with pytest.raises(DataError, match="--data-root"):
        ljspeech_manifest("ljspeech", "train", BuildContext(workdir=tmp_path / "work"))


class _Echo:
    """A recogniser that 'hears' a fixed transcript per file (the metric's logic only)."""

    sample_rate = 16000

    def __init__(self, heard: list[str]) -> None:
        self.heard = heard

    def transcribe(self, waves):
        return self.heard[: len(waves)]

    def identity(self):
        return {"name": "echo"}


def test_text_wer_and_cer_score_the_transcript_against_the_input_text(tmp_path):
    from benchmark.metrics.audio_base import AudioItem, evaluate_metric
    from benchmark.metrics.dwer import TextCER, TextWER
    from benchmark.registry import build_registries

    paths = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.wav"
        sf.write(path, np.zeros(8000, np.float32), 16000)
        paths.append(path)
    items = [
        AudioItem("a", paths[0], reference_text="The cat sat."),
        AudioItem("b", paths[1], reference_text="a dog"),
        AudioItem("c", paths[2], reference_text="?!"),  # nothing left after normalisation
    ]
    wer, cer = TextWER(mini_judge=tmp_path), TextCER(mini_judge=tmp_path)
    for metric in (wer, cer):
        metric._recognizer = _Echo(["the cat sat", "a fog", "x"])
    value, scores = evaluate_metric(wer, items)
    assert scores == [0.0, 50.0, None]
    assert value.value == pytest.approx(25.0) and value.skipped == 1
    assert value.judge["reference"] == "the input text"
    _, char_scores = evaluate_metric(cer, items)
    assert char_scores[:2] == [0.0, pytest.approx(100 / 5)]
    failed, _ = evaluate_metric(wer, [AudioItem("a", paths[0])])  # no reference text
    assert failed["status"] == "failed" and "reference_text" in failed["reason"]
    registries = build_registries()
    assert registries.metric.get("text_wer").load() is TextWER
    assert registries.metric.get("text_cer").load() is TextCER


@pytest.mark.parametrize("sizes", [(5, 7, 5), (6, 6)])
def test_grouped_token_loss_equals_the_per_codebook_mean(sizes):
    torch.manual_seed(0)
    model = TextToTokens(len(ALPHABET) + 1, sizes, TINY)
    tokens = torch.stack([torch.randint(0, c, (2, 6)) for c in sizes], dim=-1)
    text, lengths = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([6, 4])
    losses = tts_losses(model, text, tokens, lengths, LossWeights())
    logits, _, _ = model(text, tokens)
    valid = torch.arange(6)[None] < lengths[:, None]
    expected = sum(
        torch.nn.functional.cross_entropy(part[valid], tokens[..., k][valid])
        for k, part in enumerate(model.split_logits(logits))
    ) / len(sizes)
    assert losses["tokens"].item() == pytest.approx(expected.item(), rel=1e-5)
    out, lengths, _ = model.eval().generate(text, torch.tensor([4, 4]), 1 - 1e-6, top_k=2)
    assert out.shape == (2, 4, len(sizes)) and (out < torch.tensor(sizes)).all()
    assert lengths.tolist() == [4, 4]

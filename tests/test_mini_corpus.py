"""The synthetic mini corpus: layout, splits, labels, SNRs, determinism, caching, errors."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import benchmark.data.mini as mini
from benchmark.data.audio import load_audio
from benchmark.data.mini import (
    SPLITS,
    SUBSETS,
    MiniConfig,
    corpus_name,
    mini_manifest,
    prepare_mini,
)
from benchmark.data.mini_text import FAMILIES, VOCABULARY, generate_sentences
from benchmark.data.noise import NOISE_KINDS, mix_at_snr, pink_noise, snr_db
from benchmark.errors import DataError, MissingDependencyError

SMALL = MiniConfig(scale=0.01)  # 20 speakers, ~190 files, a few seconds
TINY = MiniConfig(n_speakers=6, n_valid_speakers=1, n_test_speakers=1, ood_speakers=2, scale=0.01)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return prepare_mini(tmp_path_factory.mktemp("mini"), SMALL, progress=False)


def _manifests(corpus: Path, subset: str):
    splits = ("train",) if subset == "ood" else SPLITS
    return {split: mini_manifest(corpus, subset, split) for split in splits}


def _speakers(manifest) -> set[str]:
    return {u.speaker for u in manifest}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_layout_audio_format_and_fields(corpus):
    assert corpus.name == corpus_name(SMALL) and corpus.name.startswith("mini-v")
    ids: set[str] = set()
    for subset in SUBSETS:
        for split, manifest in _manifests(corpus, subset).items():
            assert len(manifest) > 0, (subset, split)
            for u in manifest:
                path = manifest.audio_path(u)
                info = sf.info(str(path))
                assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
                assert u.sample_rate == 16000 and u.duration == info.frames / 16000
                assert not Path(u.path).is_absolute() and path.is_relative_to(corpus / subset)
                assert re.fullmatch(r"[a-z]+( [a-z]+)*", u.text), u.text
                assert u.speaker and u.id not in ids
                ids.add(u.id)
    assert not list(corpus.rglob("*.tmp*")) and not (corpus / "_raw").exists()
    marker = json.loads((corpus / "COMPLETE").read_text())
    assert marker["config"] == json.loads(SMALL.to_json())


def test_asr_splits_are_speaker_disjoint(corpus):
    splits = _manifests(corpus, "asr")
    train, valid, test = (_speakers(splits[s]) for s in SPLITS)
    assert len(train | valid | test) >= 20
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert all(u.label is None for m in splits.values() for u in m)


def test_held_out_speakers_have_voice_variants_seen_in_training():
    plan = mini._Plan(MiniConfig())
    variant = {spk.id: spk.variant for spk in plan.speakers}
    accent = {spk.id: (spk.accent, spk.pitch, spk.rate) for spk in plan.speakers}
    train = {spk for spk, split in plan.split_of.items() if split == "train"}
    held_out = {spk for spk, split in plan.split_of.items() if split != "train"}
    assert len(held_out) == 4 and len(train) == 16
    for spk in held_out:  # a new speaker, not a new synthesiser
        twins = [t for t in train if variant[t] == variant[spk]]
        assert twins and all(accent[t] != accent[spk] for t in twins)


def test_speaker_subset_shares_speakers_across_splits(corpus):
    splits = _manifests(corpus, "speaker")
    speaker_sets = [_speakers(m) for m in splits.values()]
    assert len(speaker_sets[0]) >= 20 and all(s == speaker_sets[0] for s in speaker_sets)
    assert all(u.label == u.speaker for m in splits.values() for u in m)
    ids = [{u.id for u in m} for m in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_style_classes_balanced_speaker_disjoint_and_audible(corpus):
    splits = _manifests(corpus, "style")
    labels = set()
    for manifest in splits.values():
        counts = Counter(u.label for u in manifest)
        assert len(counts) >= 4 and len(set(counts.values())) == 1, counts
        assert all(u.extra == {"synthetic_style": True} for u in manifest)
        labels |= set(counts)
    train, valid, test = (_speakers(splits[s]) for s in SPLITS)
    assert not (train & valid) and not (train & test) and not (valid & test)
    # the styles differ in speaking rate and loudness, not only in name
    train_set = splits["train"]
    seconds_per_word, rms = Counter(), Counter()
    for u in train_set:
        wav = load_audio(train_set.audio_path(u), 16000).numpy()
        seconds_per_word[u.label] += u.duration / len(u.text.split())
        rms[u.label] += float(np.sqrt(np.mean(wav**2)))
    assert seconds_per_word["fast_urgent"] < seconds_per_word["neutral"]
    assert seconds_per_word["neutral"] < seconds_per_word["low_sad"]
    assert rms["low_sad"] < rms["neutral"] < rms["high_excited"]


def test_enhance_pairs_have_the_recorded_snr(corpus):
    kinds: Counter = Counter()
    for manifest in _manifests(corpus, "enhance").values():
        for u in manifest:
            assert set(u.extra) == {"clean_path", "snr_db", "noise"}
            assert 0.0 <= u.extra["snr_db"] <= 15.0 and u.extra["noise"] in NOISE_KINDS
            kinds[u.extra["noise"]] += 1
            noisy = load_audio(manifest.audio_path(u), 16000).numpy().astype(np.float64)
            clean = load_audio(manifest.resolve(u.extra["clean_path"]), 16000).numpy()
            assert clean.shape == noisy.shape and np.max(np.abs(noisy)) < 1.0
            assert abs(snr_db(clean, noisy) - u.extra["snr_db"]) < 0.1
    assert set(kinds) == set(NOISE_KINDS)


def test_tts_single_voice_and_ood_train_only(corpus):
    tts = _manifests(corpus, "tts")
    assert {s for m in tts.values() for s in _speakers(m)} == {"tts"}
    ood = mini_manifest(corpus, "ood", "train")
    asr_texts = {u.text for m in _manifests(corpus, "asr").values() for u in m}
    assert len(ood) >= 4 and not ({u.text for u in ood} & asr_texts)
    assert not (_speakers(ood) & {u.speaker for u in mini_manifest(corpus, "asr", "train")})
    with pytest.raises(DataError, match="no split 'valid'"):
        mini_manifest(corpus, "ood", "valid")
    with pytest.raises(DataError, match="unknown mini subset"):
        mini_manifest(corpus, "emotion", "train")


def test_default_config_plan_sizes_and_voices():
    plan = mini._Plan(MiniConfig()).build()  # planning only: no audio
    jobs, mixes, items = plan.jobs, plan.mixes, plan.items
    per_subset = Counter(i.subset for i in items)
    assert 1200 <= per_subset["asr"] <= 1500 and per_subset["ood"] == 200
    assert len({i.utterance.speaker for i in items if i.subset == "speaker"}) >= 20
    asr_train_voices = {
        j.voice for j, i in zip(jobs, items, strict=True) if (i.subset, i.split) == ("asr", "train")
    }
    ood_voices = {j.voice for j, i in zip(jobs, items, strict=True) if i.subset == "ood"}
    assert not (asr_train_voices & ood_voices)
    assert len(mixes) == per_subset["enhance"]
    assert len({i.utterance.text for i in items}) == len(items)  # every sentence is unique


def test_cached_corpus_is_reused_without_synthesis(corpus, monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise AssertionError("synthesis must not run for a complete corpus")

    monkeypatch.setattr(mini, "synthesize_job", boom)
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng either
    started = time.perf_counter()
    assert prepare_mini(corpus.parent, MiniConfig(scale=0.01), progress=False) == corpus
    assert time.perf_counter() - started < 1.0


def test_missing_espeak_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        prepare_mini(tmp_path / "data", TINY, progress=False)
    assert "\n" not in str(info.value) and "apt-get install espeak-ng" in str(info.value)


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mini, "mix_job", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_mini(tmp_path, TINY, progress=False)
    # only the (empty, hidden) lock file stays: no corpus, no temp build
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_same_config_is_byte_identical_and_seed_matters(tmp_path):
    stale = tmp_path / "a" / f".{corpus_name(TINY)}.999999999-1-x.partial"  # a killed build
    stale.mkdir(parents=True)
    first = prepare_mini(tmp_path / "a", TINY, progress=False)
    second = prepare_mini(tmp_path / "b", TINY, workers=1, progress=False)
    visible = sorted(p.name for p in first.parent.iterdir() if not p.name.startswith("."))
    assert not stale.exists() and visible == [first.name]
    tree_a, tree_b = _tree(first), _tree(second)
    assert first.name == second.name and sorted(tree_a) == sorted(tree_b)
    assert sum(name.endswith(".wav") for name in tree_a) > 50
    assert all(tree_a[name] == tree_b[name] for name in tree_a)

    other = prepare_mini(tmp_path / "c", dataclasses.replace(TINY, seed=1), progress=False)
    assert other.name != first.name
    tree_c = _tree(other)
    assert tree_c["asr/train.jsonl"] != tree_a["asr/train.jsonl"]
    shared = [n for n in tree_a if n.endswith(".wav") and n in tree_c]
    assert sum(tree_a[n] != tree_c[n] for n in shared) > 0.9 * len(shared)


def test_config_validation():
    assert MiniConfig(scale=1).fingerprint() == MiniConfig().fingerprint()
    for bad in ({"n_speakers": 3}, {"scale": 0}, {"n_valid_speakers": 0}, {"seed": -1}):
        with pytest.raises(ValueError):
            MiniConfig(**bad)


def test_sentence_generator_is_seeded_real_english():
    assert len(VOCABULARY) >= 300
    for family in FAMILIES:
        a = generate_sentences(np.random.default_rng(7), 50, family)
        assert a == generate_sentences(np.random.default_rng(7), 50, family)
        assert a != generate_sentences(np.random.default_rng(8), 50, family)
        assert len(set(a)) == 50
        assert all(4 <= len(s.split()) <= 11 and set(s.split()) <= VOCABULARY for s in a)


def test_noise_mixing_is_exact_and_guards_clipping():
    rng = np.random.default_rng(0)
    clean = 0.9 * np.sin(np.linspace(0, 200, 8000))
    noise = rng.standard_normal(8000)
    scaled_clean, noisy = mix_at_snr(clean, noise, 3.0)
    assert np.max(np.abs(noisy)) <= 0.95 + 1e-12 and np.max(np.abs(scaled_clean)) < 0.9
    assert abs(snr_db(scaled_clean, noisy) - 3.0) < 1e-9
    spectrum = np.abs(np.fft.rfft(pink_noise(rng, 1 << 15))) ** 2
    assert spectrum[100:200].mean() > 5 * spectrum[4000:8000].mean()  # 1/f: low > high

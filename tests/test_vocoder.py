"""The scalable vocoder: shapes, layer dropout, subset decoding, training, kill-and-resume."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.registry import REPO_ROOT
from benchmark.tokenizers.dummy import MelBandTokenizer
from benchmark.vocoders.data import PairItem, VocoderPairs, layer_dropout
from benchmark.vocoders.model import (
    ScalableVocoder,
    VocoderConfig,
    VocoderError,
    VocoderMismatchError,
    load_vocoder,
    save_vocoder,
)
from benchmark.vocoders.presets import PRESETS, vocoder_config
from benchmark.vocoders.speechbrain_vocoder import (
    load_speechbrain_unit_hifigan,
    open_vocoder,
    write_speechbrain_unit_hifigan,
)
from benchmark.vocoders.training import train_vocoder

SIZES = (16, 16, 16, 16)
TINY = {
    "embedding_dim": 16,
    "attn_dim": 16,
    "upsample_initial_channel": 32,
    "upsample_factors": (8, 5, 4, 2),
    "upsample_kernel_sizes": (16, 11, 8, 4),
    "resblock_type": "2",
    "resblock_kernel_sizes": (3,),
    "resblock_dilation_sizes": ((1, 3),),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and bit-reproducibly, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _vocoder(layers=(0, 1, 2, 3), dropout=True, seed=0) -> ScalableVocoder:
    torch.manual_seed(seed)
    config = VocoderConfig(SIZES, layers, dropout, **TINY)
    return ScalableVocoder(config).eval()


def _synthetic_items(count: int, seed: int) -> list[PairItem]:
    """Gliding harmonic tones with amplitude envelopes, tokenised by the dummy tokenizer."""
    tokenizer = MelBandTokenizer(n_bands=4, levels=16)
    rng = np.random.default_rng(seed)
    items = []
    for index in range(count):
        seconds = 0.8 + 0.1 * (index % 4)
        t = np.arange(int(16000 * seconds)) / 16000
        f0 = rng.uniform(110, 220) * (1 + 0.2 * t)
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        wave = sum(np.sin(h * phase) / h for h in (1, 2, 3))
        wave *= 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        wav = torch.from_numpy(wave.astype(np.float32))
        tokens, _ = tokenizer.encode(wav[None], torch.tensor([wav.shape[0]]))
        items.append(PairItem(f"u{index}", tokens[0].numpy(), wav))
    return items


def _pairs(items) -> VocoderPairs:
    return VocoderPairs(items, 16000, 320)


def _preset(**changes):
    base = PRESETS["mini"].replace(
        architecture=TINY,
        batch_size=2,
        segment_frames=8,
        valid_utterances=2,
        dnsmos_utterances=0,
        adversarial_steps=0,
        cpu_threads=1,
    )
    return base.replace(**changes)


# ---------------------------------------------------------------------- model


def test_forward_and_decode_shapes_and_lengths():
    vocoder = _vocoder()
    tokens = torch.randint(0, 16, (2, 9, 4))
    assert vocoder(tokens).shape == (2, 1, 9 * 320)
    original = tokens.clone()
    wav, lengths = vocoder.decode(tokens, torch.tensor([9, 4]))
    assert wav.shape == (2, 9 * 320) and wav.dtype == torch.float32
    assert lengths.tolist() == [9 * 320, 4 * 320]
    assert torch.all(wav[1, 4 * 320 :] == 0) and torch.isfinite(wav).all()
    assert torch.equal(tokens, original)  # inputs are never modified


def test_layer_dropout_keeps_at_least_one_and_drops_a_uniform_count():
    k, rows = 5, 6000
    trained = (0, 2, 3, 4)
    absent = torch.tensor([16] * k)
    ids = torch.randint(0, 16, (rows, 3, k))
    before = ids.clone()
    out = layer_dropout(ids, absent, trained, torch.Generator().manual_seed(0))
    assert torch.equal(ids, before)
    kept = out[:, 0] != absent  # [rows, K]
    assert torch.equal(kept, (out != absent).all(dim=1))  # the same layers at every frame
    assert not kept[:, 1].any()  # an untrained codebook is always absent
    counts = kept.sum(dim=1)
    assert int(counts.min()) >= 1 and int(counts.max()) <= len(trained)
    dropped = len(trained) - counts
    frequency = torch.bincount(dropped, minlength=len(trained)).float() / rows
    assert torch.allclose(frequency, torch.full((len(trained),), 1 / len(trained)), atol=0.03)
    per_layer = kept[:, list(trained)].float().mean(dim=0)
    assert float(per_layer.max() - per_layer.min()) < 0.05  # no layer is favoured
    assert torch.equal(out[kept.unsqueeze(1).expand_as(out)], ids[kept.unsqueeze(1).expand_as(ids)])
    no_dropout = layer_dropout(ids, absent, trained, None)
    assert torch.equal((no_dropout[:, 0] != absent)[:, list(trained)], torch.ones(rows, 4).bool())


def test_scalable_vocoder_decodes_every_subset_from_those_codebooks_only():
    vocoder = _vocoder()
    tokens = torch.randint(0, 16, (1, 6, 4))
    lengths = torch.tensor([6])
    for size in range(1, 5):
        for subset in itertools.combinations(range(4), size):
            wav, _ = vocoder.decode(tokens, lengths, codebooks=list(subset))
            others = tokens.clone()
            for c in set(range(4)) - set(subset):
                others[..., c] = (others[..., c] + 7) % 16
            again, _ = vocoder.decode(others, lengths, codebooks=list(subset))
            assert torch.equal(wav, again), subset  # unselected codebooks play no part
    all_wav, _ = vocoder.decode(tokens, lengths)
    assert not torch.equal(all_wav, vocoder.decode(tokens, lengths, codebooks=[0])[0])


def test_single_layer_and_fixed_subset_vocoders_refuse_other_subsets():
    single = _vocoder(layers=(2,))
    tokens = torch.randint(0, 16, (1, 5, 4))
    lengths = torch.tensor([5])
    assert single.decode(tokens, lengths)[0].shape == (1, 1600)
    assert single.decode(tokens, lengths, codebooks=[2])[0].shape == (1, 1600)
    for subset, named in (([0], "codebook 0"), ([1, 2], "codebook 1"), ([7], "codebook 7")):
        with pytest.raises(VocoderError, match=named) as error:
            single.decode(tokens, lengths, codebooks=subset)
        assert "\n" not in str(error.value)
    fixed = _vocoder(layers=(0, 2), dropout=False)
    fixed.decode(tokens, lengths, codebooks=[2, 0])
    with pytest.raises(ValueError, match=r"without layer dropout.*\[0\]"):
        fixed.decode(tokens, lengths, codebooks=[0])


def test_out_of_range_ids_name_the_codebook_and_value():
    vocoder = _vocoder()
    tokens = torch.randint(0, 16, (2, 5, 4))
    tokens[1, 2, 3] = 16
    with pytest.raises(VocoderError, match=r"codebook 3 holds id 16, outside its range \[0, 16\)"):
        vocoder.decode(tokens, torch.tensor([5, 5]))
    vocoder.decode(tokens, torch.tensor([5, 2]))  # on a padded frame it does not matter
    vocoder.decode(tokens, torch.tensor([5, 5]), codebooks=[0, 1])  # nor on an unused codebook
    tokens[0, 0, 0] = -1
    with pytest.raises(VocoderError, match="codebook 0 holds id -1"):
        vocoder.decode(tokens, torch.tensor([5, 5]))
    with pytest.raises(VocoderError, match="tokens must hold integer ids"):
        vocoder.decode(tokens.float(), torch.tensor([5, 5]))


def test_checkpoint_for_another_tokenizer_is_rejected(tmp_path):
    vocoder = _vocoder()
    path = tmp_path / "vocoder.pt"
    save_vocoder(path, vocoder, "wavlm-attn", "a" * 64)
    loaded = load_vocoder(path, expect_fingerprint="a" * 64, expect_codebook_sizes=SIZES)
    tokens = torch.randint(0, 16, (1, 4, 4))
    assert torch.equal(
        loaded.decode(tokens, torch.tensor([4]))[0], vocoder.decode(tokens, torch.tensor([4]))[0]
    )
    with pytest.raises(VocoderMismatchError, match=r"'wavlm-attn'.*aaaaaaaaaaaa.*bbbbbbbbbbbb"):
        load_vocoder(path, expect_fingerprint="b" * 64)
    with pytest.raises(VocoderMismatchError, match=r"\[16, 16, 16, 16\], not \[16, 16, 16\]"):
        load_vocoder(path, expect_codebook_sizes=(16, 16, 16))
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VocoderError, match="cannot be read"):
        load_vocoder(tmp_path / "other.pt")


def test_speechbrain_unit_hifigan_folder_loads_and_decodes(tmp_path):
    params = {
        "in_channels": 16,
        "out_channels": 1,
        "resblock_type": "2",
        "resblock_dilation_sizes": [[1, 3]],
        "resblock_kernel_sizes": [3],
        "upsample_kernel_sizes": [16, 11, 8, 4],
        "upsample_initial_channel": 32,
        "upsample_factors": [8, 5, 4, 2],
        "vocab_size": 1 + 3 * 10,
        "embedding_dim": 16,
        "attn_dim": 8,
    }
    folder = write_speechbrain_unit_hifigan(tmp_path / "sb", params, layers=[3, 7, 12])
    vocoder = open_vocoder({"speechbrain": str(folder)}, codebook_layers=[7, 12])
    tokens = torch.randint(0, 10, (1, 6, 2))
    wav, lengths = vocoder.decode(tokens, torch.tensor([6]))
    # speechbrain's DiscreteSSL layout: slot i holds 1 + i * K + id, 0 = layer left out
    ids = torch.zeros(1, 6, 3, dtype=torch.int64)
    ids[..., 1] = tokens[..., 0] + 1 + 10
    ids[..., 2] = tokens[..., 1] + 1 + 20
    assert torch.allclose(wav, vocoder.generator.inference(ids).squeeze(1))
    assert lengths.tolist() == [6 * 320]
    with pytest.raises(VocoderError, match="not on layer 1 "):
        load_speechbrain_unit_hifigan(folder, codebook_layers=[1, 7])
    with pytest.raises(VocoderError, match=r"codebook 1 holds id 1[0-4], outside .*\[0, 10\)"):
        vocoder.decode(tokens + torch.tensor([0, 5]), torch.tensor([6]))
    (folder / "generator.ckpt").unlink()
    with pytest.raises(VocoderError, match=r"generator\.ckpt not found"):
        load_speechbrain_unit_hifigan(folder)


# ---------------------------------------------------------------------- training


def test_training_a_few_steps_lowers_the_mel_distance(tmp_path):
    items = _synthetic_items(8, seed=0)
    preset = _preset(steps=60, validate_every=30, checkpoint_every=30)
    config = vocoder_config(preset, SIZES, (0, 1, 2, 3), True, 16000, 50.0)
    run = train_vocoder(
        _pairs(items[:6]), _pairs(items[6:]), config, preset, tmp_path / "run", "dummy", "fp",
        progress=False,
    )  # fmt: skip
    curve = [h["mel_distance"] for h in run.history]
    assert [h["step"] for h in run.history] == [0, 30, 60]
    assert curve[-1] < 0.8 * curve[0], curve
    vocoder = load_vocoder(run.vocoder_path, expect_fingerprint="fp")
    assert vocoder.config.kind == "scalable"
    again = train_vocoder(
        _pairs(items[:6]), _pairs(items[6:]), config, preset, tmp_path / "run", "dummy", "fp",
        progress=False,
    )  # fmt: skip
    assert again.skipped and again.history == run.history


def test_adversarial_steps_use_the_discriminator_and_checkpoint_it(tmp_path):
    items = _synthetic_items(3, seed=1)
    preset = _preset(
        steps=2, batch_size=1, segment_frames=6, adversarial_steps=1, discriminator_frames=6,
        validate_every=2, checkpoint_every=2, valid_utterances=1,
    )  # fmt: skip
    config = vocoder_config(preset, SIZES, (0, 1, 2, 3), True, 16000, 50.0)
    run = train_vocoder(
        _pairs(items[:2]), _pairs(items[2:]), config, preset, tmp_path / "gan", "dummy", "fp",
        progress=False,
    )  # fmt: skip
    losses = run.history[-1]["train"]
    assert {"D", "adv", "mel"} <= set(losses) and all(math.isfinite(v) for v in losses.values())
    state = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert {"discriminator", "opt_d", "sched_d"} <= set(state) and state["step"] == 2


_CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from benchmark.vocoders.data import PairItem, VocoderPairs
from benchmark.vocoders.presets import PRESETS, vocoder_config
from benchmark.vocoders.training import train_vocoder
data = torch.load(sys.argv[1], weights_only=False)
pairs = lambda rows: VocoderPairs([PairItem(*row) for row in rows], 16000, 320)
preset = data["preset"]
config = vocoder_config(preset, data["sizes"], data["layers"], True, 16000, 50.0)
def stall(step):
    print("checkpoint", step, flush=True)
    time.sleep(120)  # the parent kills us here
train_vocoder(pairs(data["train"]), pairs(data["valid"]), config, preset, sys.argv[2], "dummy",
              "fp", progress=False, on_checkpoint=stall)
"""


def test_killed_training_resumes_where_it_stopped_and_matches_an_uninterrupted_run(tmp_path):
    items = _synthetic_items(6, seed=2)
    preset = _preset(steps=8, checkpoint_every=3, validate_every=4)
    data = {
        "train": [(i.id, i.tokens, i.audio) for i in items[:4]],
        "valid": [(i.id, i.tokens, i.audio) for i in items[4:]],
        "preset": preset,
        "sizes": SIZES,
        "layers": (0, 1, 2, 3),
    }
    torch.save(data, tmp_path / "data.pt")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", textwrap.dedent(_CHILD), str(tmp_path / "data.pt")]
    child = subprocess.Popen(
        [*command, str(tmp_path / "killed")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = child.stdout.readline()  # blocks until the first checkpoint is on disk
        assert line.strip() == "checkpoint 3", line + child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "COMPLETE").exists()

    config = vocoder_config(preset, SIZES, (0, 1, 2, 3), True, 16000, 50.0)
    train, valid = _pairs(items[:4]), _pairs(items[4:])
    started = time.perf_counter()
    resumed = train_vocoder(
        train, valid, config, preset, tmp_path / "killed", "dummy", "fp", progress=False
    )
    assert resumed.resumed_from == 3 and resumed.steps == 8
    assert time.perf_counter() - started < 60
    straight = train_vocoder(
        train, valid, config, preset, tmp_path / "straight", "dummy", "fp", progress=False
    )
    assert straight.resumed_from is None
    assert (
        [h["step"] for h in resumed.history] == [h["step"] for h in straight.history] == [0, 4, 8]
    )
    a = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert torch.equal(a["rng"], b["rng"])  # the same segments and dropout draws
    for name, tensor in b["vocoder"].items():
        assert torch.equal(a["vocoder"][name], tensor), name
    assert resumed.history[-1]["mel_distance"] == straight.history[-1]["mel_distance"]


def test_run_folder_with_other_settings_is_refused(tmp_path):
    items = _synthetic_items(3, seed=3)
    preset = _preset(steps=2, checkpoint_every=1, validate_every=2)
    config = vocoder_config(preset, SIZES, (0, 1, 2, 3), True, 16000, 50.0)
    train_vocoder(_pairs(items[:2]), _pairs(items[2:]), config, preset, tmp_path, "d", "fp",
                  progress=False)  # fmt: skip
    (tmp_path / "COMPLETE").unlink()
    other = vocoder_config(preset, SIZES, (1,), False, 16000, 50.0)
    with pytest.raises(VocoderError, match="other settings"):
        train_vocoder(_pairs(items[:2]), _pairs(items[2:]), other, preset, tmp_path, "d", "fp",
                      progress=False)  # fmt: skip


def test_vocoder_commands_have_help_without_importing_torch():
    code = (
        "import sys\nfrom benchmark.cli import main\n"
        "for command in ('train-vocoder', 'vocoder-study'):\n"
        "    assert main([command, '--help']) == 0\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("False")
    assert "--layers" in done.stdout and "--adversarial-steps" in done.stdout


def test_cli_trains_a_vocoder_and_runs_the_study_on_the_mini_corpus(tmp_path, capsys):
    from benchmark.cli import main

    card = tmp_path / "dummy-2.yaml"
    card.write_text(
        "name: dummy-2\ndescription: two mel bands (vocoder tests)\n"
        "class: benchmark.tokenizers.dummy:MelBandTokenizer\n"
        "params: {n_bands: 2, levels: 8}\n"
    )
    common = ["--tokenizer", str(card), "--steps", "2", "--adversarial-steps", "0"]
    common += ["--corpus-scale", "0.05", "--workdir", str(tmp_path / "work"), "--quiet"]
    assert main(["train-vocoder", *common, "--layers", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "vocoder: " in out and "step      2  valid mel distance" in out
    path = Path(out.split("vocoder: ")[1].split()[0])
    assert load_vocoder(path).trained_layers == (1,)

    assert main(["vocoder-study", *common, "--out", str(tmp_path / "study.json")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["vocoder", "layer", "0", "layer", "1", "all", "layers"]
    assert table[2].startswith("layer 0 only") and table[2].split()[-2:] == ["-", "-"]
    assert table[4].startswith("scalable") and "-" not in table[4].split()[3:]
    study = json.loads((tmp_path / "study.json").read_text())
    assert [row["trained_layers"] for row in study["rows"][:3]] == [[0], [1], [0, 1]]
    assert study["rows"][1]["cells"]["layer 1"]["status"] == "ok"
    assert main(["train-vocoder", *common, "--layers", "5"]) == 2
    assert "--layers '5'" in capsys.readouterr().err


def test_ljspeech_and_libritts_manifests_from_their_standard_layouts(tmp_path):
    import soundfile as sf

    from benchmark.api import BuildContext
    from benchmark.errors import DataError
    from benchmark.vocoders.data import vocoder_manifests

    lj = tmp_path / "LJSpeech-1.1"
    (lj / "wavs").mkdir(parents=True)
    rows = []
    for index in range(101):
        uid = f"LJ001-{index:04d}"
        sf.write(lj / "wavs" / f"{uid}.wav", np.zeros(2205, dtype=np.float32), 22050)
        rows.append(f"{uid}|Text {index}.|text {index}")
    (lj / "metadata.csv").write_text("\n".join(rows) + "\n")
    for split, speaker in (("train-clean-100", "19"), ("dev-clean", "84")):
        folder = tmp_path / "LibriTTS" / split / speaker / "121"
        folder.mkdir(parents=True)
        for k in range(2):
            sf.write(folder / f"{speaker}_121_{k}.wav", np.zeros(2400, np.float32), 24000)
            (folder / f"{speaker}_121_{k}.normalized.txt").write_text(f"hello {k}")
    context = BuildContext(workdir=tmp_path / "work", data_root=tmp_path, progress=False)

    ljspeech = vocoder_manifests("ljspeech", context)
    assert (len(ljspeech["train"]), len(ljspeech["valid"])) == (90, 5)  # 90 / 5 / 5 %
    first = ljspeech["train"].utterances[0]
    assert first.text == f"text {int(first.id[-4:])}"
    libritts = vocoder_manifests("libritts", context)
    assert [u.id for u in libritts["valid"]] == ["84_121_0", "84_121_1"]
    first = libritts["train"].utterances[0]
    assert (first.speaker, first.text, first.duration) == ("19", "hello 0", 0.1)
    path = libritts["train"].audio_path(first)
    pairs = VocoderPairs([PairItem(first.id, np.zeros((5, 2), np.int64), path)], 16000, 320)
    assert pairs.audio(0).shape == (1600,)  # 24 kHz read back at 16 kHz
    with pytest.raises(DataError, match="--data-root"):
        vocoder_manifests("ljspeech", BuildContext(workdir=tmp_path / "work"))
    with pytest.raises(DataError, match="unknown vocoder corpus 'vctk'"):
        vocoder_manifests("vctk", context)


# ---------------------------------------------------------------------- short inputs, batches


def _sb_unit_vocoder(tmp_path, layers=(3, 7, 12), k=10):
    params = {
        "in_channels": 16,
        "out_channels": 1,
        "resblock_type": "1",
        "resblock_dilation_sizes": [[1, 3, 5]],
        "resblock_kernel_sizes": [11],
        "upsample_kernel_sizes": [16, 11, 8, 4],
        "upsample_initial_channel": 32,
        "upsample_factors": [8, 5, 4, 2],
        "vocab_size": 1 + len(layers) * k,
        "embedding_dim": 16,
        "attn_dim": 8,
    }
    folder = write_speechbrain_unit_hifigan(tmp_path / "sb", params, layers=list(layers))
    return open_vocoder({"speechbrain": str(folder)})


def test_min_frames_is_the_generators_real_limit_and_short_items_decode(tmp_path):
    full = ScalableVocoder(VocoderConfig(SIZES, (0, 1, 2, 3))).eval()  # the full architecture
    from speechbrain.lobes.models.HifiGAN import HifiganGenerator

    cases = [(_vocoder(), 4), (full, 6), (_sb_unit_vocoder(tmp_path), 4)]
    for vocoder, expected in cases:
        assert vocoder.min_frames == expected
        generator = vocoder.generator
        channels = generator.conv_pre.in_channels
        with torch.no_grad():  # the HiFi-GAN stack on pooled frames [1, D, n]
            HifiganGenerator.forward(generator, torch.zeros(1, channels, expected))
            with pytest.raises(RuntimeError):  # one frame less: speechbrain's raw error
                HifiganGenerator.forward(generator, torch.zeros(1, channels, expected - 1))
    sb = cases[2][0]
    for n in range(1, sb.min_frames):
        wav, _ = sb.decode(torch.randint(0, 10, (2, n, 3)), torch.tensor([n, n]))
        assert wav.shape == (2, n * 320) and torch.isfinite(wav).all()
    for vocoder in (_vocoder(), full):
        for n in range(1, vocoder.min_frames):
            tokens = torch.randint(0, 16, (1, n, 4))
            wav, lengths = vocoder.decode(tokens, torch.tensor([n]))
            assert wav.shape == (1, n * 320) and lengths.tolist() == [n * 320]
            assert torch.isfinite(wav).all()
            # the documented rule: repeat the last frame up to min_frames, cut back
            extended = torch.cat([tokens, tokens[:, -1:].expand(-1, vocoder.min_frames - n, -1)], 1)
            with torch.no_grad():
                reference = vocoder(extended)[:, 0, : n * 320]
            assert torch.equal(wav, reference)


def test_batched_decode_is_each_item_decoded_alone(tmp_path):
    torch.manual_seed(3)
    full = ScalableVocoder(VocoderConfig(SIZES, (0, 1, 2, 3))).eval()
    lengths = torch.tensor([40, 25, 3, 25, 0])
    tokens = torch.randint(0, 16, (5, 40, 4))
    for vocoder in (_vocoder(), full):
        wav, out_lengths = vocoder.decode(tokens, lengths)
        assert wav.shape == (5, 40 * 320) and out_lengths.tolist() == (lengths * 320).tolist()
        for b, n in enumerate(lengths.tolist()):
            assert torch.all(wav[b, n * 320 :] == 0)
            if n:
                alone, _ = vocoder.decode(tokens[b : b + 1, :n], lengths[b : b + 1])
                torch.testing.assert_close(wav[b : b + 1, : n * 320], alone, rtol=0, atol=1e-6)
    sb = _sb_unit_vocoder(tmp_path)
    sb_tokens = torch.randint(0, 10, (3, 30, 3))
    sb_lengths = torch.tensor([30, 12, 7])
    wav, _ = sb.decode(sb_tokens, sb_lengths)
    for b, n in enumerate(sb_lengths.tolist()):
        alone, _ = sb.decode(sb_tokens[b : b + 1, :n], sb_lengths[b : b + 1])
        torch.testing.assert_close(wav[b : b + 1, : n * 320], alone, rtol=0, atol=1e-6)

"""Pretraining the mini preset's tiny SSL encoders (tiny budgets, a shrunk mini corpus)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from benchmark.api import BuildContext
from benchmark.data.corpora import corpus_manifest
from benchmark.models.hf_weights import sha256_file
from benchmark.models.ssl_loading import load_ssl_model
from benchmark.models.ssl_mini import (
    PRETRAIN_SPLITS,
    PretrainNotRunError,
    TinyModelError,
    heldout_speakers,
    pretrained_tiny_ssl,
)
from benchmark.models.ssl_pretrain import (
    PretrainConfig,
    PretrainConfigError,
    pretrain_fingerprint,
    pretrain_tiny_ssl,
    record_summary,
    span_mask,
)
from benchmark.models.ssl_pretrain_data import PretrainDataError, frame_features, num_frames

SCALE = 0.01  # 20 speakers, one asr utterance each: a few seconds to synthesise
#: A budget of seconds: 30 steps of 2 0.6-second crops, 8 log-mel clusters.
SMALL = PretrainConfig(
    steps=30,
    batch_size=2,
    crop_frames=30,
    lr=3e-3,
    warmup_steps=5,
    targets=(("logmel", 8),),
    kmeans_max_iter=5,
    log_every=5,
    threads=1,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> BuildContext:
    workdir = tmp_path_factory.mktemp("pretrain")
    return BuildContext(workdir=workdir, corpus_scale=SCALE, progress=False)


@pytest.fixture(scope="module")
def data(context):
    manifests = [corpus_manifest("mini", s, split, context) for s, split in PRETRAIN_SPLITS]
    return manifests, heldout_speakers(context)


@pytest.fixture(scope="module")
def trained(data, context) -> tuple[Path, dict]:
    manifests, heldout = data
    out = Path(context.workdir) / "a"
    summary = pretrain_tiny_ssl("hubert", manifests, out, SMALL, seed=3, heldout_speakers=heldout)
    return out, summary


def test_targets_align_with_the_encoder_frames():
    for samples in (400, 719, 720, 16000, 32123):
        assert frame_features(torch.randn(samples), "logmel").shape == (num_frames(samples), 40)
        assert frame_features(torch.randn(samples), "mfcc").shape == (num_frames(samples), 39)


def test_span_mask_covers_about_the_asked_fraction_within_each_item():
    generator = torch.Generator().manual_seed(0)
    mask = span_mask([200, 120, 30], 200, 0.65, 10, generator)
    assert not mask[1, 120:].any() and not mask[2, 30:].any()
    assert 0.3 < float(mask[0].float().mean()) < 0.8


def test_loss_goes_down_and_the_folder_loads_like_real_weights(trained):
    out, summary = trained
    losses = summary["loss"]
    assert len(losses) == SMALL.steps
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
    assert summary["label"] == "pretrained by the harness on mini, 30 steps"
    assert "logmel (K = 8)" in summary["learned_from"]
    model, info = load_ssl_model({"path": str(out)}, "hubert")
    assert info.source == "path" and info.num_hidden_layers == 24 and info.do_normalize
    assert info.hop == 320 and not model.training
    saved = json.loads((out / "pretrain.json").read_text())
    assert saved["loss"] == losses and saved["seed"] == 3 and saved["cpu_seconds"] > 0
    compact = record_summary(saved, every=10)
    assert compact["label"] == summary["label"] and len(compact["loss_curve"]) == 3
    assert compact["final_loss"] < compact["first_loss"]


def test_the_frozen_front_end_layers_keep_their_initial_weights(trained):
    from benchmark.models.ssl_pretrain_train import _build_model

    out, _ = trained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)  # the fixture's seed: the initial weights of its model
        initial = _build_model("hubert", SMALL).state_dict()
    model, _ = load_ssl_model({"path": str(out)}, "hubert")
    trained_weights = model.state_dict()
    frozen = SMALL.frozen_conv_layers
    assert frozen == 2  # the default
    for index in range(len(model.feature_extractor.conv_layers)):
        name = f"feature_extractor.conv_layers.{index}.conv.weight"
        same = torch.equal(initial[name], trained_weights[name])
        assert same == (index < frozen), name
    last = "encoder.layers.23.feed_forward.output_dense.weight"
    assert not torch.equal(initial[last], trained_weights[last])


def test_same_seed_gives_identical_weights_and_another_seed_does_not(data, context):
    manifests, heldout = data
    short = dataclasses.replace(SMALL, steps=4)
    runs = {}
    for name, seed in (("b", 3), ("c", 3), ("d", 4)):
        folder = Path(context.workdir) / name
        summary = pretrain_tiny_ssl(
            "hubert", manifests, folder, short, seed=seed, heldout_speakers=heldout
        )
        runs[name] = (sha256_file(folder / "model.safetensors"), summary["loss"])
    assert runs["b"] == runs["c"]  # bit for bit
    assert runs["d"][0] != runs["b"][0] and runs["d"][1] != runs["b"][1]


def test_the_second_iteration_clusters_the_models_own_layer_and_trains_on_it(data, context):
    manifests, heldout = data
    base = dataclasses.replace(SMALL, steps=12)
    runs = {}
    for name, config in {
        "one": base,
        "keep": dataclasses.replace(base, relabel_step=6, relabel_layer=3, relabel_clusters=6),
        "new": dataclasses.replace(
            base, relabel_step=6, relabel_layer=3, relabel_clusters=6, relabel_keep=False
        ),
    }.items():
        folder = Path(context.workdir) / f"relabel-{name}"
        runs[name] = pretrain_tiny_ssl(
            "hubert", manifests, folder, config, seed=3, heldout_speakers=heldout
        )
    assert "second_iteration" not in runs["one"]
    second = runs["keep"]["second_iteration"]
    assert second["kind"] == "layer3" and second["K"] == 6 and second["step"] == 6
    assert second["clusters_used"] > 1
    assert "K = 6) of the model's own layer 3" in runs["keep"]["learned_from"]
    # the first iteration is the same run; from step 6 on the loss has the new targets
    assert runs["keep"]["loss"][:6] == runs["one"]["loss"][:6] == runs["new"]["loss"][:6]
    assert runs["keep"]["loss"][6:] != runs["one"]["loss"][6:]
    assert runs["new"]["loss"][6:] != runs["keep"]["loss"][6:]
    accuracies = {
        name: {point["step"]: len(point["masked_accuracy"]) for point in run["curve"]}
        for name, run in runs.items()
    }
    assert accuracies["one"] == {0: 1, 5: 1, 10: 1, 11: 1}
    assert accuracies["keep"] == {0: 1, 5: 1, 10: 2, 11: 2}  # log-mel and layer-3 targets
    assert accuracies["new"] == {0: 1, 5: 1, 10: 1, 11: 1}


def test_the_second_iterations_features_are_the_tokenizers_layer(trained):
    from benchmark.models.ssl_features import full_hidden_states
    from benchmark.models.ssl_pretrain_data import PretrainCorpus
    from benchmark.models.ssl_pretrain_relabel import layer_features

    out, _ = trained
    model, _ = load_ssl_model({"path": str(out)}, "hubert")
    wavs = [torch.randn(4000), torch.randn(6400), torch.randn(4000)]
    frames = [num_frames(w.numel()) for w in wavs]
    corpus = PretrainCorpus(
        audio=torch.cat(wavs).half(),
        sample_offsets=torch.tensor([0, 4000, 10400, 14400]),
        frame_offsets=torch.tensor([0, frames[0], frames[0] + frames[1], sum(frames)]),
        features={},
        speakers=("a",),
        seconds=0.9,
    )
    got = layer_features(model, corpus, 5)
    expected = torch.cat(
        [full_hidden_states(model, w.half().float().unsqueeze(0))[5][0] for w in wavs]
    )
    assert got.shape == (sum(frames), 64)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_fingerprint_covers_settings_data_seed_and_family(data):
    manifests, heldout = data
    base = pretrain_fingerprint("hubert", manifests, SMALL, 3, heldout)
    assert pretrain_fingerprint("hubert", manifests, SMALL, 3, heldout) == base
    changed = [
        pretrain_fingerprint("wavlm", manifests, SMALL, 3, heldout),
        pretrain_fingerprint("hubert", manifests[:1], SMALL, 3, heldout),
        pretrain_fingerprint("hubert", manifests, dataclasses.replace(SMALL, lr=1e-3), 3, heldout),
        pretrain_fingerprint("hubert", manifests, SMALL, 4, heldout),
        pretrain_fingerprint(
            "hubert", manifests, dataclasses.replace(SMALL, frozen_conv_layers=0), 3, heldout
        ),
        pretrain_fingerprint(
            "hubert", manifests, dataclasses.replace(SMALL, steps=30, relabel_step=20), 3, heldout
        ),
    ]
    assert all(fp != base for fp in changed)
    assert {"torch", "transformers", "version"} <= set(base)


def test_valid_and_test_speakers_never_enter_pretraining(data, context, tmp_path):
    manifests, heldout = data
    asr_heldout = {
        u.speaker
        for split in ("valid", "test")
        for u in corpus_manifest("mini", "asr", split, context)
    }
    assert asr_heldout and asr_heldout <= heldout
    assert not {u.speaker for m in manifests for u in m} & heldout
    for split in ("valid", "test"):
        held_out_split = corpus_manifest("mini", "asr", split, context)
        with pytest.raises(PretrainDataError, match=f"is a {split} split"):
            pretrain_tiny_ssl(
                "hubert", [held_out_split], tmp_path / split, SMALL, heldout_speakers=heldout
            )
    a_train_speaker = manifests[0].utterances[0].speaker
    with pytest.raises(PretrainDataError, match="held-out speaker"):
        pretrain_tiny_ssl(
            "hubert", manifests, tmp_path / "x", SMALL, heldout_speakers={a_train_speaker}
        )
    assert not (tmp_path / "x").exists()


def test_bad_settings_are_one_line_errors():
    with pytest.raises(PretrainConfigError, match="unknown pretrain settings"):
        PretrainConfig.from_mapping({"stepz": 3})
    with pytest.raises(PretrainConfigError, match="targets"):
        PretrainConfig(targets=(("spectrogram", 10),))
    with pytest.raises(PretrainConfigError, match="steps"):
        PretrainConfig(steps=0)
    with pytest.raises(PretrainConfigError, match="front end's 7 convolution layers"):
        PretrainConfig(frozen_conv_layers=8)
    with pytest.raises(PretrainConfigError, match="relabel_step=700 must be below steps=700"):
        PretrainConfig(relabel_step=700)
    with pytest.raises(PretrainConfigError, match="relabel_layer must be a layer in 1..24"):
        PretrainConfig(relabel_step=10, relabel_layer=25)


def test_the_tokenizer_trains_nothing_and_loads_its_pretrained_folder(context, monkeypatch):
    from benchmark.models import ssl_pretrain
    from benchmark.tokenizers.discrete_ssl import DiscreteSSLTokenizer

    overrides = {**SMALL.to_dict(), "steps": 4}

    def build(pretrain=overrides):
        return DiscreteSSLTokenizer(family="wavlm", num_clusters=8, tiny_model="pretrained",
                                    pretrain=pretrain, context=context)  # fmt: skip

    def fail(*_args, **_kwargs):
        raise AssertionError("the constructor pretrained")

    with monkeypatch.context() as patch:
        patch.setattr(ssl_pretrain, "pretrain_tiny_ssl", fail)
        tokenizer = build()
    label = "pretrained by the harness on mini, 4 steps"
    assert tokenizer.info.model_label == label and tokenizer.info.frame_rate == 50.0
    assert tokenizer.pretrain_spec()["label"] == label
    names = set(tokenizer.pretrain_spec()["data"])
    assert {"train:asr/train", "train:ood/train", "heldout:asr/test"} <= names
    with pytest.raises(PretrainNotRunError, match="pretrain step"):
        tokenizer.encode(torch.zeros(1, 16000), torch.tensor([16000]))
    state = tokenizer.state_fingerprint()
    assert state["tiny_model"]["kind"] == "pretrained" and state["tiny_model"]["label"] == label
    folder, origin = pretrained_tiny_ssl("wavlm", context, overrides)
    assert pretrained_tiny_ssl("wavlm", context, overrides)[0] == folder  # made once
    tokenizer.load_pretrained(folder)
    assert Path(tokenizer.model_info.folder) == folder.resolve()
    assert tokenizer.state_fingerprint() == state  # the same key before and after loading
    assert origin.summary["steps"] == 4 and tokenizer.origin.summary["steps"] == 4
    with pytest.raises(TinyModelError, match="other settings"):
        build({**overrides, "lr": 1e-3}).load_pretrained(folder)
    random = DiscreteSSLTokenizer(
        family="wavlm", num_clusters=8, tiny_model="random", context=context
    )
    assert random.state_fingerprint()["tiny_model"]["kind"] == "random"
    assert random.model_info.encoder_id != tokenizer.model_info.encoder_id

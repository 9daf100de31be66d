"""The discrete-SSL tokenizer family on tiny random encoders (CPU, offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from benchmark.api import BuildContext, FitData
from benchmark.cards import load_card
from benchmark.conformance import check_tokenizer, failed_checks, format_results, synthetic_batch
from benchmark.errors import DataError, WeightsUnavailableError
from benchmark.models.kmeans import KMeansQuantizer, QuantizerError
from benchmark.models.reservoir import FrameReservoir as _Reservoir
from benchmark.models.ssl_features import SSLLayerExtractor, full_hidden_states
from benchmark.models.ssl_loading import (
    FAMILIES,
    TINY_SPEC,
    load_ssl_model,
    tiny_ssl_model_dir,
)
from benchmark.registry import REPO_ROOT
from benchmark.tokenizers.discrete_ssl import (
    DiscreteSSLTokenizer,
    SSLConfigError,
    quantizer_filename,
)

PINNED = "0123456789abcdef0123456789abcdef01234567"  # a revision no cache holds


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and timing stays sane on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ssl")


def _context(workdir: Path, **kw) -> BuildContext:
    return BuildContext(workdir=workdir, progress=False, **kw)


def _fit_data(utterances: int = 8, seed: int = 10) -> FitData:
    def batches():
        for start in range(0, utterances, 4):
            durations = (2.0, 1.6, 1.2, 0.8)[: utterances - start]
            yield synthetic_batch(16000, seed=seed + start, durations=durations)

    return FitData("synthetic/harmonic", batches, utterances)


def _tokenizer(workdir: Path, **params) -> DiscreteSSLTokenizer:
    params.setdefault("num_clusters", 16)
    return DiscreteSSLTokenizer(tiny_model=True, context=_context(workdir), name="t", **params)


@pytest.fixture(scope="module")
def fitted(workdir) -> tuple[DiscreteSSLTokenizer, Path]:
    tokenizer = _tokenizer(workdir)
    out = workdir / "fit"
    out.mkdir()
    tokenizer.fit(_fit_data(), out)
    tokenizer.load_fitted(out)
    return tokenizer, out


# ------------------------------------------------------------------------ loading


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tiny_model_is_saved_once_and_reloaded_through_the_loader(workdir, family):
    folder = tiny_ssl_model_dir(family, workdir / "models")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert tiny_ssl_model_dir(family, workdir / "models") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    model, info = load_ssl_model({"path": str(folder)}, family)
    assert info.source == "path" and info.num_hidden_layers == TINY_SPEC["num_hidden_layers"]
    assert (info.receptive_field, info.hop, info.do_normalize) == (400, 320, True)
    import transformers

    config_cls, model_cls, _ = FAMILIES[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**TINY_SPEC))
    reference = fresh.state_dict()
    loaded = model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    assert load_ssl_model({"path": str(folder)}, family)[1].encoder_id == info.encoder_id


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def test_offline_hub_weights_are_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as exc:
        load_ssl_model({"hub": "microsoft/wavlm-large", "revision": PINNED}, "wavlm")
    message = _one_line(exc)
    assert f"microsoft/wavlm-large@{PINNED} is not in the Hugging Face cache" in message
    assert f"huggingface-cli download microsoft/wavlm-large --revision {PINNED}" in message
    assert "weights: {path: /local/dir}" in message


def test_unreachable_hub_is_the_same_error(monkeypatch):
    import benchmark.models.hf_weights as loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=2.0: False)
    with pytest.raises(WeightsUnavailableError, match="hub cannot be reached"):
        load_ssl_model({"hub": "facebook/hubert-large-ll60k", "revision": PINNED}, "hubert")


def test_missing_or_invalid_local_folder(tmp_path, workdir):
    with pytest.raises(WeightsUnavailableError) as exc:
        load_ssl_model({"path": str(tmp_path / "nope")}, "wavlm")
    assert "does not exist" in _one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError) as exc:
        load_ssl_model({"path": str(tmp_path / "empty")}, "wavlm")
    assert "lacks config.json" in _one_line(exc)
    wavlm = tiny_ssl_model_dir("wavlm", workdir / "models")
    with pytest.raises(WeightsUnavailableError) as exc:
        load_ssl_model({"path": str(wavlm)}, "hubert")
    assert "holds a 'wavlm' model but the card says family 'hubert'" in _one_line(exc)
    with pytest.raises(WeightsUnavailableError, match="no weights given"):
        load_ssl_model(None, "wavlm")


# ------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("layers", [[3, 25], [0, 3]])
def test_layers_outside_the_model_are_a_one_line_error(workdir, layers):
    with pytest.raises(SSLConfigError) as exc:
        _tokenizer(workdir, layers=layers)
    message = _one_line(exc)
    bad = next(x for x in layers if not 1 <= x <= 24)
    assert f"layer {bad} is outside" in message and "range 1..24" in message
    assert message.split(" is outside ")[1].startswith("wavlm:")  # names the model


@pytest.mark.parametrize(
    "params",
    [
        {"num_clusters": [16, 16]},
        {"num_clusters": 1},
        {"layers": [3, 3]},
        {"dtype": "fp16"},
        {"kmeans_data": {"corpus": "mini"}},
        {"family": "whisper"},
    ],
)
def test_bad_parameters(workdir, params):
    with pytest.raises(SSLConfigError):
        _tokenizer(workdir, **params)


def test_tiny_model_and_card_weights_together_are_an_error(workdir):
    context = _context(workdir, weights={"path": str(workdir)})
    with pytest.raises(SSLConfigError, match="drop one"):
        DiscreteSSLTokenizer(tiny_model=True, context=context)


# ------------------------------------------------------------------------ forward


@pytest.mark.parametrize("family", ["wavlm", "hubert"])
def test_truncated_forward_gives_the_full_models_hidden_states(workdir, family):
    model, info = load_ssl_model(
        {"path": str(tiny_ssl_model_dir(family, workdir / "models"))}, family
    )
    extractor = SSLLayerExtractor(model, info, [7, 1, 24])
    wav, lengths = synthetic_batch(16000, seed=3)
    features, frames = extractor(wav, lengths)
    assert len(model.encoder.layers) == 24  # restored after the truncated call
    assert extractor.per_item  # the tiny front end's group norm: one utterance at a time
    x, effective = extractor.prepare(wav, lengths)
    for b, (n, length) in enumerate(zip(frames.tolist(), effective.tolist(), strict=True)):
        full = full_hidden_states(model, x[b : b + 1, :length])  # untruncated, alone
        for index, layer in enumerate(extractor.layers):
            assert torch.equal(features[index, b, :n], full[layer][0]), (b, layer)
    assert frames.tolist() == [49, 31, 68]


def test_short_clip_rule(workdir):
    model, info = load_ssl_model(
        {"path": str(tiny_ssl_model_dir("wavlm", workdir / "models"))}, "wavlm"
    )
    extractor = SSLLayerExtractor(model, info, [3])
    lengths = torch.tensor([1, 100, 399, 400, 719, 720, 16000])
    assert extractor.num_frames(lengths).tolist() == [1, 1, 1, 1, 1, 2, 49]
    wav = torch.randn(2, 200) * 0.1
    features, frames = extractor(wav, torch.tensor([200, 50]))
    assert frames.tolist() == [1, 1] and features.shape[:3] == (1, 2, 1)
    with pytest.raises(ValueError, match="item 1 has length 0") as exc:
        extractor(wav, torch.tensor([200, 0]))
    _one_line(exc)


def test_group_norm_front_ends_run_per_item_and_stay_padding_invariant(tmp_path):
    import transformers

    spec = {**TINY_SPEC, "feat_extract_norm": "group", "do_stable_layer_norm": False}
    spec["num_hidden_layers"] = 4
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**spec)).save_pretrained(tmp_path)
    model, info = load_ssl_model({"path": str(tmp_path)}, "wav2vec2")
    extractor = SSLLayerExtractor(model, info, [2, 4])
    assert extractor.per_item and not extractor.normalize
    wav, lengths = synthetic_batch(16000, seed=5)
    features, frames = extractor(wav, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_frames = extractor(wav[b : b + 1, :n], lengths[b : b + 1])
        assert int(alone_frames[0]) == int(frames[b])
        assert torch.equal(alone[:, 0], features[:, b, : int(frames[b])])


# ------------------------------------------------------------------------ fit + encode


def test_fit_saves_one_quantizer_per_layer_with_provenance(fitted):
    tokenizer, out = fitted
    assert tokenizer.fit_data_spec() == {"corpus": "mini", "subset": "ood", "split": "train"}
    for layer in tokenizer.layers:
        quantizer = KMeansQuantizer.load(out / quantizer_filename(layer, 16))
        provenance = quantizer.provenance
        assert provenance["encoder"] == tokenizer.model_info.encoder_id
        assert (provenance["layer"], provenance["n_clusters"]) == (layer, 16)
        assert provenance["data"] == "synthetic/harmonic"
        assert provenance["n_frames"] == provenance["frames_available"] == 552
        assert provenance["dim"] == 64 and provenance["family"] == "wavlm"
    assert (out / "fit.json").is_file()
    assert not (out / "_features").exists()


def test_conformance_suite_passes_with_zero_tolerance(fitted):
    tokenizer, _ = fitted
    results = check_tokenizer(tokenizer)
    assert failed_checks(results) == [], format_results(results)
    status = {r.name: r.status for r in results}
    assert status["padding-invariance"] == "PASS" and status["embeddings"] == "PASS"
    assert tokenizer.embeddings().shape == (5, 16, 64)


def test_encode_does_not_need_a_length_sorted_batch_and_is_deterministic(fitted):
    tokenizer, _ = fitted
    wav, lengths = synthetic_batch(16000, seed=8, durations=(0.5, 2.0, 0.02))
    tokens, frames = tokenizer.encode(wav, lengths)
    assert tokens.dtype == torch.int64 and tokens.shape == (3, 99, 5)
    assert frames.tolist() == [24, 99, 1]
    assert bool((tokens[0, 24:] == 0).all())  # padded frames hold 0
    again, _ = tokenizer.encode(wav, lengths)
    assert torch.equal(tokens, again)


def test_encode_before_fitting_is_an_error(workdir):
    with pytest.raises(Exception, match="no k-means codebooks yet"):
        _tokenizer(workdir).encode(*synthetic_batch(16000))


def test_quantizers_for_another_layer_or_encoder_are_rejected(fitted, tmp_path):
    tokenizer, out = fitted
    folder = tmp_path / "swapped"
    shutil.copytree(out, folder)
    shutil.copy(folder / quantizer_filename(7, 16), folder / quantizer_filename(3, 16))
    with pytest.raises(QuantizerError) as exc:
        tokenizer.load_fitted(folder)
    assert "layer=7" in _one_line(exc) and "layer=3 is expected" in str(exc.value)
    centroids = torch.randn(16, 64)
    others = [
        KMeansQuantizer(centroids, {"encoder": "hubert:x", "layer": x}) for x in tokenizer.layers
    ]
    with pytest.raises(QuantizerError, match="encoder='hubert:x'"):
        tokenizer.set_quantizers(others)
    narrow = [
        KMeansQuantizer(
            torch.randn(16, 32), {"encoder": tokenizer.model_info.encoder_id, "layer": x}
        )
        for x in tokenizer.layers
    ]
    with pytest.raises(QuantizerError, match="dim 32"):
        tokenizer.set_quantizers(narrow)
    tokenizer.load_fitted(out)  # the module's fixture keeps working


def test_k_larger_than_the_training_frames_is_the_kmeans_error(workdir, tmp_path):
    tokenizer = _tokenizer(workdir, layers=[3], num_clusters=1000)
    with pytest.raises(DataError, match="K=1000 but only 276 training frames"):
        tokenizer.fit(_fit_data(utterances=4), tmp_path)


def test_unequal_codebook_sizes(workdir, tmp_path):
    tokenizer = _tokenizer(workdir, layers=[3, 12], num_clusters=[8, 16])
    tokenizer.fit(_fit_data(utterances=4), tmp_path)
    tokenizer.load_fitted(tmp_path)
    assert tokenizer.info.codebook_sizes == (8, 16) and tokenizer.embeddings() is None
    tokens, _ = tokenizer.encode(*synthetic_batch(16000))
    assert int(tokens[..., 0].max()) < 8 and int(tokens[..., 1].max()) < 16


def test_reservoir_keeps_a_bounded_uniform_sample(tmp_path):
    reservoir = _Reservoir(tmp_path / "r.npy", capacity=100, dim=2, seed=0)
    frames = torch.arange(1000, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    for start in range(0, 1000, 64):
        reservoir.add(frames[start : start + 64])
    sample = torch.cat(list(reservoir.chunks(size=30)))
    assert reservoir.seen == 1000 and sample.shape == (100, 2)
    assert len(set(sample[:, 0].tolist())) == 100  # no frame twice
    assert 350 < float(sample[:, 0].mean()) < 650  # spread over the stream, not its head
    small = _Reservoir(tmp_path / "s.npy", capacity=100, dim=2, seed=0)
    small.add(frames[:30])
    assert torch.equal(torch.cat(list(small.chunks())), frames[:30])  # all kept, in order


def test_fingerprint_follows_layers_k_data_and_dtype(workdir):
    base = _tokenizer(workdir)
    variants = [
        _tokenizer(workdir, layers=[3, 7, 12, 18, 24]),
        _tokenizer(workdir, num_clusters=32),
        _tokenizer(workdir, kmeans_data={"corpus": "mini", "subset": "asr", "split": "train"}),
        _tokenizer(workdir, dtype="bf16"),
    ]
    prints = [dict(t.state_fingerprint()) for t in [base, *variants]]
    assert all(p != prints[0] for p in prints[1:])
    weights = prints[0]["weights"]
    assert weights["encoder_id"].startswith("wavlm:") and weights["weights_sha256"]
    assert "path" not in weights  # a moved folder keeps its fingerprint
    assert _tokenizer(workdir).state_fingerprint() == prints[0]


# ------------------------------------------------------------------------ cards


@pytest.mark.parametrize(
    ("card", "family", "layers"),
    [
        ("wavlm-attn", "wavlm", [3, 7, 12, 18, 23]),
        ("hubert-attn", "hubert", [3, 7, 12, 18, 23]),
        ("wavlm-dasb", "wavlm", [1, 3, 7, 12, 18, 23]),
    ],
)
def test_cards(card, family, layers):
    loaded = load_card(REPO_ROOT / "tokenizers" / f"{card}.yaml")
    full, mini = loaded.resolve("full"), loaded.resolve("mini")
    assert full.params["family"] == family and full.params["layers"] == layers
    assert full.params["num_clusters"] == 1000
    assert set(full.weights) == {"hub", "revision"} and len(full.weights["revision"]) == 40
    assert full.params["kmeans_data"] == {
        "corpus": "librispeech",
        "subset": "librispeech",
        "split": "train-960",
    }
    assert mini.weights is None and mini.params["tiny_model"] == "pretrained"
    assert mini.params["layers"] == layers and mini.params["num_clusters"] == 128
    assert mini.params["kmeans_data"] == {"corpus": "mini", "subset": "ood", "split": "train"}
    assert max(layers) <= TINY_SPEC["num_hidden_layers"]


def test_codebooks_give_the_float64_nearest_centroid_for_near_ties():
    from benchmark.models.ssl_codebooks import LayerCodebooks

    g = torch.Generator().manual_seed(0)
    centroids = [torch.randn(50, 32, generator=g) * 3 for _ in range(3)]
    frames = torch.randn(3, 400, 32, generator=g) * 3
    # frames exactly between two centroids (up to float32 rounding): float32 is a coin toss
    frames[:, :100] = torch.stack([(c[0::2] + c[1::2]).repeat(4, 1) / 2 for c in centroids])
    frames[:, :100] += 1e-6 * torch.randn(3, 100, 32, generator=g)
    codebooks = LayerCodebooks(centroids, "cpu")
    ids = codebooks.assign(frames)
    for layer, c in enumerate(centroids):
        exact = torch.cdist(frames[layer].double(), c.double()).argmin(dim=1)
        assert torch.equal(ids[:, layer], exact)
    assert 0 < codebooks.refined < 3 * 400
    uneven = LayerCodebooks([centroids[0], centroids[1][:20]], "cpu").assign(frames[:2])
    assert torch.equal(uneven[:, 0], ids[:, 0]) and int(uneven[:, 1].max()) < 20


def test_cached_hub_weights_load_offline_through_the_hub_route(workdir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    revision = "a" * 40
    snapshot = tmp_path / "models--acme--tiny-wavlm" / "snapshots" / revision
    shutil.copytree(tiny_ssl_model_dir("wavlm", workdir / "models"), snapshot)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, info = load_ssl_model({"hub": "acme/tiny-wavlm", "revision": revision}, "wavlm")
    assert (info.source, info.name, info.revision) == ("hub", "acme/tiny-wavlm", revision)
    assert info.encoder_id == f"acme/tiny-wavlm@{revision}" and info.do_normalize
    assert info.fingerprint()["revision"] == revision


def test_decode_through_a_scalable_vocoder_named_by_the_card(fitted, workdir, tmp_path):
    from benchmark.conformance import check_tokenizer, failed_checks, format_results
    from benchmark.vocoders.model import ScalableVocoder, VocoderConfig, save_vocoder

    tokenizer, out = fitted
    with pytest.raises(NotImplementedError, match="train-vocoder --tokenizer t"):
        tokenizer.decode(torch.zeros(1, 2, 5, dtype=torch.int64), torch.tensor([2]))
    config = VocoderConfig(
        tokenizer.info.codebook_sizes,
        tuple(range(tokenizer.info.num_codebooks)),
        True,
        embedding_dim=16,
        attn_dim=16,
        upsample_initial_channel=32,
        upsample_factors=(8, 5, 4, 2),
        upsample_kernel_sizes=(16, 11, 8, 4),
        resblock_type="2",
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
    )
    path = tmp_path / "vocoder.pt"
    save_vocoder(path, ScalableVocoder(config).eval(), "t", "fp")
    decodable = _tokenizer(workdir, vocoder={"path": str(path)})
    decodable.load_fitted(out)
    assert decodable.info.can_decode
    assert decodable.state_fingerprint() != tokenizer.state_fingerprint()
    results = check_tokenizer(decodable)
    assert failed_checks(results) == [], "\n".join(format_results(results))
    decode = next(r for r in results if r.name == "decode")
    assert not decode.skipped and "subset [0] decodes" in decode.detail
    other = _tokenizer(workdir, num_clusters=8, vocoder={"path": str(path)})
    with pytest.raises(ValueError, match="codebook"):
        other.decode(torch.zeros(1, 2, 5, dtype=torch.int64), torch.tensor([2]))

"""speechbrain interop both ways, through speechbrain's own ``DiscreteSSL`` (CPU, offline).

A tiny random WavLM (the mini preset's) is loaded by speechbrain's ``WavLM`` wrapper from the
same local folder our tokenizer reads; speechbrain's ``DiscreteSSL`` is built from a local
"repository" folder (``kmeans/`` files plus a unit HiFi-GAN written in the released format).
Only ``huggingface_hub.snapshot_download`` is replaced, by a function that returns that local
folder: everything after the download is speechbrain's code.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans

from benchmark.api import BuildContext, FitData
from benchmark.conformance import check_tokenizer, failed_checks, format_results, synthetic_batch
from benchmark.models.kmeans import KMeansQuantizer, QuantizerError
from benchmark.models.sb_quantizers import (
    export_sb_quantizer,
    import_sb_quantizer,
    import_sb_quantizers,
    sb_quantizer_filename,
)
from benchmark.models.ssl_loading import tiny_ssl_model_dir
from benchmark.tokenizers.discrete_ssl import DiscreteSSLTokenizer
from benchmark.vocoders.speechbrain_vocoder import write_speechbrain_unit_hifigan

LAYERS = (3, 7)
K = 16
GENERATOR = {
    "in_channels": 16,
    "out_channels": 1,
    "resblock_type": "2",
    "resblock_dilation_sizes": [[1, 3]],
    "resblock_kernel_sizes": [3],
    "upsample_kernel_sizes": [16, 11, 8, 4],
    "upsample_initial_channel": 32,
    "upsample_factors": [8, 5, 4, 2],
    "vocab_size": 1 + len(LAYERS) * K,
    "embedding_dim": 16,
    "attn_dim": 8,
}


pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interop")


def _tokenizer(workdir: Path, **params) -> DiscreteSSLTokenizer:
    context = BuildContext(workdir=workdir, progress=False)
    return DiscreteSSLTokenizer(
        layers=LAYERS, num_clusters=K, tiny_model=True, context=context, name="t", **params
    )


@pytest.fixture(scope="module")
def fitted(workdir) -> DiscreteSSLTokenizer:
    def batches():
        for seed in (10, 14):
            yield synthetic_batch(16000, seed=seed, durations=(2.0, 1.6, 1.2, 0.8))

    tokenizer = _tokenizer(workdir)
    out = workdir / "fit"
    out.mkdir()
    tokenizer.fit(FitData("synthetic", batches, 8), out)
    tokenizer.load_fitted(out)
    return tokenizer


def _repository(folder: Path) -> Path:
    """A folder laid out like speechbrain's released ``hifigan-wavlm-k1000-LibriTTS``."""
    write_speechbrain_unit_hifigan(folder, GENERATOR, layers=LAYERS)
    (folder / "kmeans").mkdir(exist_ok=True)
    return folder


def _speechbrain_discrete_ssl(monkeypatch, workdir: Path, repository: Path, data: str):
    """speechbrain's ``DiscreteSSL`` on the tiny WavLM, reading ``repository`` as its hub repo."""
    from speechbrain.integrations.audio_tokenizers import discrete_ssl
    from speechbrain.integrations.huggingface.wavlm import WavLM

    def local_snapshot(repo_id: str, **_: object) -> str:
        return repo_id  # the "repository" is already a local folder

    monkeypatch.setattr(discrete_ssl, "snapshot_download", local_snapshot)
    save = workdir / f"sb-save-{repository.name}"
    model_dir = tiny_ssl_model_dir("wavlm", workdir / "models")
    ssl = WavLM(str(model_dir), str(save), output_all_hiddens=True, freeze=True)
    return discrete_ssl.DiscreteSSL(
        str(save),
        ssl,
        kmeans_dataset=data,
        vocoder_repo_id=str(repository),
        num_clusters=K,
        layers_num=list(LAYERS),
    )


def _one_by_one(encode, wav: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    return [encode(wav[b : b + 1, : int(n)]) for b, n in enumerate(lengths)]


# ------------------------------------------------------------------ our k-means -> speechbrain


def test_exported_quantizers_encode_through_speechbrains_discrete_ssl(fitted, workdir, monkeypatch):
    repository = _repository(workdir / "exported")
    for layer, centroids in zip(LAYERS, fitted.codebooks.centroids(), strict=True):
        quantizer = KMeansQuantizer(centroids.cpu(), {"layer": layer})
        export_sb_quantizer(quantizer, repository / "kmeans", "mini", "wavlm")
    model = _speechbrain_discrete_ssl(monkeypatch, workdir, repository, "mini")
    assert model.ssl_layer_ids == LAYERS
    wav, lengths = synthetic_batch(16000, seed=21, durations=(1.3, 0.9, 0.6))
    agree = total = 0
    for b, n in enumerate(lengths.tolist()):
        item = wav[b : b + 1, :n]
        theirs, embeddings, _ = model.encode(item)  # speechbrain's predict on a torch tensor
        ours, frames = fitted.encode(item, torch.tensor([n]))
        assert theirs.shape == ours.shape == (1, int(frames[0]), len(LAYERS))
        agree += int((theirs == ours).sum())
        total += ours.numel()
        centroids = fitted.codebooks.centroids()
        for k in range(len(LAYERS)):
            expected = centroids[k].cpu()[ours[0, :, k]]
            assert torch.allclose(embeddings[0, :, k], expected)
    assert agree == total  # every frame of every single utterance: the same token
    for layer in LAYERS:
        path = repository / "kmeans" / sb_quantizer_filename("mini", "wavlm", K, layer)
        assert joblib.load(path).cluster_centers_.dtype == np.float64


def test_batched_speechbrain_tokens_differ_from_its_own_single_ones_but_ours_do_not(
    fitted, workdir, monkeypatch
):
    """Why our batches are not DASB's: speechbrain normalises each padded row as a whole.

    speechbrain's wrappers apply ``F.layer_norm`` over the full padded row (padding zeros
    included) before the encoder, so an item's features depend on the batch it is in; ours
    normalise each item over its valid samples only (see ``benchmark.models.ssl_features``).
    """
    repository = workdir / "exported"
    if not (repository / "kmeans" / sb_quantizer_filename("mini", "wavlm", K, 3)).is_file():
        pytest.skip("needs the export of the previous test")
    model = _speechbrain_discrete_ssl(monkeypatch, workdir, repository, "mini")
    wav, lengths = synthetic_batch(16000, seed=22, durations=(2.0, 0.7))
    frames = fitted.extractor.num_frames(lengths)
    ours_batched, _ = fitted.encode(wav, lengths)
    ours_single = _one_by_one(
        lambda x: fitted.encode(x, torch.tensor([x.shape[1]]))[0], wav, lengths
    )
    relative = lengths.double() / lengths.max()
    theirs_batched = model.encode(wav, relative)[0]
    theirs_single = _one_by_one(lambda x: model.encode(x)[0], wav, lengths)
    n = int(frames[1])
    assert torch.equal(ours_batched[1, :n], ours_single[1][0])
    assert torch.equal(theirs_single[1][0], ours_single[1][0])  # one by one: the same tokens
    changed = (theirs_batched[1, :n] != theirs_single[1][0]).float().mean()
    assert changed > 0, "speechbrain's batched tokens now match its single ones: update the docs"


# ------------------------------------------------------------------ released k-means -> ours


def _released_files(fitted: DiscreteSSLTokenizer, folder: Path, data: str) -> Path:
    """k-means fitted as DASB's recipe fits them: scikit-learn on torch features (float64)."""
    repository = _repository(folder)
    wav, lengths = synthetic_batch(16000, seed=30, durations=(2.0, 1.7, 1.4, 1.1))
    valid = fitted._valid_frames(wav, lengths)  # [L, M, D]
    for k, layer in enumerate(LAYERS):
        estimator = MiniBatchKMeans(n_clusters=K, batch_size=256, n_init=3, random_state=k)
        estimator.fit(valid[k].cpu())  # a torch tensor: scikit-learn fits in float64
        assert estimator.cluster_centers_.dtype == np.float64
        joblib.dump(
            estimator, repository / "kmeans" / sb_quantizer_filename(data, "wavlm", K, layer)
        )
    return repository


def test_released_quantizers_are_accepted_for_their_family_and_layer(fitted, workdir, monkeypatch):
    repository = _released_files(fitted, workdir / "released", "LibriSpeech")
    imported = import_sb_quantizer(
        repository / "kmeans" / sb_quantizer_filename("LibriSpeech", "wavlm", K, 3)
    )
    assert imported.encoder == "wavlm" and imported.provenance["imported"]["data"] == "LibriSpeech"
    # handed over directly, they are checked against the family, not the exact weights
    files = [
        repository / "kmeans" / sb_quantizer_filename("LibriSpeech", "wavlm", K, layer)
        for layer in LAYERS
    ]
    fitted.set_quantizers([import_sb_quantizer(path) for path in files])
    fitted.load_fitted(workdir / "fit")  # back to the module's fitted codebooks
    tokenizer = _tokenizer(workdir, kmeans_import={"speechbrain": str(repository)})
    assert tokenizer.needs_fit is False
    assert tokenizer.model_info.encoder_id.startswith("wavlm:")  # not what the files name
    state = tokenizer.state_fingerprint()
    for layer in LAYERS:
        entry = state["kmeans_import"][str(layer)]
        path = repository / "kmeans" / entry["file"]
        assert entry["file"] == sb_quantizer_filename("LibriSpeech", "wavlm", K, layer)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p["imported"]["file"] for p in tokenizer.quantizer_provenance] == [
        state["kmeans_import"][str(layer)]["file"] for layer in LAYERS
    ]
    # the tokens are speechbrain's own for these files
    model = _speechbrain_discrete_ssl(monkeypatch, workdir, repository, "LibriSpeech")
    wav, lengths = synthetic_batch(16000, seed=31, durations=(1.5, 0.8))
    ours, frames = tokenizer.encode(wav, lengths)
    for b, n in enumerate(lengths.tolist()):
        theirs = model.encode(wav[b : b + 1, :n])[0]
        assert torch.equal(theirs[0], ours[b, : int(frames[b])])
    results = check_tokenizer(tokenizer)  # the conformance suite, on imported codebooks
    assert failed_checks(results) == [], format_results(results)
    # another file -> another fingerprint
    other = workdir / "released-copy"
    shutil.copytree(repository, other)
    victim = other / "kmeans" / sb_quantizer_filename("LibriSpeech", "wavlm", K, 7)
    estimator = joblib.load(victim)
    estimator.cluster_centers_ = estimator.cluster_centers_[::-1].copy()
    joblib.dump(estimator, victim)
    changed = _tokenizer(workdir, kmeans_import={"speechbrain": str(other)}).state_fingerprint()
    assert changed["kmeans_import"]["3"] == state["kmeans_import"]["3"]
    assert changed["kmeans_import"]["7"]["sha256"] != state["kmeans_import"]["7"]["sha256"]


def test_bad_imports_are_one_line_errors(fitted, workdir):
    repository = workdir / "released"
    if not repository.is_dir():
        _released_files(fitted, repository, "LibriSpeech")
    cases = [
        ({"speechbrain": str(workdir / "nowhere")}, "does not exist"),
        ({"folder": str(repository)}, "kmeans_import must be"),
        ({"speechbrain": str(repository), "data": "VoxCeleb"}, "no speechbrain k-means"),
    ]
    for spec, message in cases:
        with pytest.raises(QuantizerError, match=message) as exc:
            _tokenizer(workdir, kmeans_import=spec)
        assert "\n" not in str(exc.value)
    with pytest.raises(QuantizerError, match=r"no speechbrain k-means <data>_hubert_k16_L3\.pt"):
        import_sb_quantizers({"speechbrain": str(repository)}, "hubert", LAYERS, (K, K))
    twice = workdir / "two-datasets"
    shutil.copytree(repository, twice)
    for layer in LAYERS:
        source = twice / "kmeans" / sb_quantizer_filename("LibriSpeech", "wavlm", K, layer)
        shutil.copy(
            source, twice / "kmeans" / sb_quantizer_filename("Libri_TTS", "wavlm", K, layer)
        )
    with pytest.raises(QuantizerError, match=r"data \['LibriSpeech', 'Libri_TTS'\]"):
        _tokenizer(workdir, kmeans_import={"speechbrain": str(twice)})
    picked = _tokenizer(workdir, kmeans_import={"speechbrain": str(twice), "data": "Libri_TTS"})
    assert picked.state_fingerprint()["kmeans_import"]["3"]["data"] == "Libri_TTS"
    # a codebook of another width (a WavLM-large file on the tiny model) is refused
    wide = workdir / "wide"
    (wide / "kmeans").mkdir(parents=True)
    for layer in LAYERS:
        estimator = MiniBatchKMeans(n_clusters=K, n_init=1, random_state=0)
        estimator.fit(np.random.default_rng(layer).normal(size=(64, 1024)))
        joblib.dump(
            estimator, wide / "kmeans" / sb_quantizer_filename("LibriSpeech", "wavlm", K, layer)
        )
    with pytest.raises(QuantizerError, match="has dim 1024 but"):
        _tokenizer(workdir, kmeans_import={"speechbrain": str(wide)})

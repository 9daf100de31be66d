"""Streaming k-means, its quantizer file, and speechbrain quantizer import/export (CPU)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans

from benchmark.errors import BenchmarkError, DataError
from benchmark.models.kmeans import (
    KMeansConfig,
    KMeansConfigError,
    KMeansQuantizer,
    QuantizerError,
    fit_kmeans,
)
from benchmark.models.sb_quantizers import (
    export_sb_quantizer,
    import_sb_quantizer,
    parse_sb_quantizer_filename,
    sb_quantizer_filename,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Small problems gain nothing from threads and suffer badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int, k: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, dim]`` frames around ``k`` random centres, and their true labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * spread
    labels = torch.randint(k, (n,), generator=g)
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def inertia(x: torch.Tensor, centroids: torch.Tensor) -> float:
    return float(torch.cdist(x.double(), centroids.double()).min(dim=1).values.pow(2).mean())


@pytest.fixture(scope="module")
def moderate() -> torch.Tensor:
    """20 000 x 64 frames from 80 overlapping blobs (harder than K=50 can fit exactly)."""
    return blobs(20_000, 80, 64, spread=1.5, seed=3)[0]


@pytest.fixture(scope="module")
def small_quantizer() -> tuple[KMeansQuantizer, torch.Tensor]:
    x, _ = blobs(3000, 12, 16, spread=3.0, seed=5)
    result = fit_kmeans(x, KMeansConfig(n_clusters=12, seed=1, batch_size=1024))
    config = KMeansConfig(n_clusters=12, seed=1, batch_size=1024)
    quantizer = KMeansQuantizer.from_result(
        result, encoder="wavlm", layer=7, data="mini", config=config
    )
    return quantizer, x


def test_seeded_determinism(moderate: torch.Tensor) -> None:
    config = KMeansConfig(n_clusters=30, seed=7, batch_size=4096, init_size=3000)
    first = fit_kmeans(moderate, config)
    second = fit_kmeans(moderate, config)
    assert torch.equal(first.centroids, second.centroids)
    assert first.history == second.history
    other = fit_kmeans(moderate, KMeansConfig(n_clusters=30, seed=8, batch_size=4096))
    assert not torch.equal(first.centroids, other.centroids)
    assert first.centroids.dtype == torch.float32 and first.centroids.device.type == "cpu"
    assert first.n_frames_seen == 20_000 and first.n_iter == len(first.history) >= 1


def test_recovers_separated_blobs() -> None:
    x, truth = blobs(4000, 8, 16, spread=20.0, seed=0)
    result = fit_kmeans(x, KMeansConfig(n_clusters=8, seed=0, batch_size=1000, init_size=800))
    predicted = KMeansQuantizer(result.centroids).predict(x)
    # one predicted id per true blob, all distinct: equal up to a permutation
    mapping = {int(t): set(predicted[truth == t].tolist()) for t in range(8)}
    assert all(len(ids) == 1 for ids in mapping.values())
    assert len(set().union(*mapping.values())) == 8
    assert result.converged and result.inertia == pytest.approx(16.0, rel=0.05)


def test_many_small_chunks_match_one_chunk(moderate: torch.Tensor) -> None:
    config = KMeansConfig(n_clusters=50, seed=0, batch_size=8192, init_size=4000)

    def small_chunks():
        return (moderate[s : s + 97] for s in range(0, moderate.shape[0], 97))

    streamed = fit_kmeans(small_chunks, config)
    whole = fit_kmeans([moderate], config)
    assert streamed.n_frames_seen == whole.n_frames_seen == moderate.shape[0]
    assert streamed.inertia == pytest.approx(whole.inertia, rel=0.03)
    assert inertia(moderate, streamed.centroids) == pytest.approx(streamed.inertia, rel=0.01)
    exact = fit_kmeans(small_chunks, replace(config, evaluate_final=True, max_iter=3))
    assert exact.n_iter == 3 and not exact.converged
    assert exact.inertia == pytest.approx(inertia(moderate, exact.centroids), rel=1e-6)
    assert exact.inertia <= exact.history[-1]  # Lloyd never raises the inertia
    assert int(exact.cluster_sizes.sum()) == moderate.shape[0]


def test_inertia_no_worse_than_sklearn(moderate: torch.Tensor) -> None:
    ours = fit_kmeans(moderate, KMeansConfig(n_clusters=50, seed=0, batch_size=10000))
    sk = MiniBatchKMeans(
        n_clusters=50,
        init="k-means++",
        batch_size=10000,
        max_iter=100,
        tol=0.0,
        max_no_improvement=100,
        n_init=3,
        reassignment_ratio=0.0,
        random_state=0,
    ).fit(moderate.numpy())
    ours_inertia = inertia(moderate, ours.centroids)
    sk_inertia = inertia(moderate, torch.from_numpy(sk.cluster_centers_))
    assert ours_inertia <= sk_inertia * 1.01


def test_empty_clusters_are_reseeded() -> None:
    x, _ = blobs(2000, 4, 8, spread=10.0, seed=2)
    far = torch.full((5, 8), 1000.0)  # a few far frames ensure re-seeding has a target
    data = torch.cat([x, far])
    result = fit_kmeans(data, KMeansConfig(n_clusters=6, seed=0, init="random", batch_size=512))
    assert result.cluster_sizes is not None and int((result.cluster_sizes > 0).sum()) == 6


def test_error_messages() -> None:
    x = torch.randn(532, 4)
    with pytest.raises(DataError, match="K=1000 but only 532 training frames; lower K"):
        fit_kmeans(x, KMeansConfig(n_clusters=1000))
    bad = x.clone()
    bad[100, 2] = float("nan")
    with pytest.raises(DataError, match="NaN or inf"):
        fit_kmeans([x[:50], bad], KMeansConfig(n_clusters=4))
    with pytest.raises(DataError, match="yielded no frames"):
        fit_kmeans([], KMeansConfig(n_clusters=4))
    with pytest.raises(DataError, match="yielded no frames"):
        fit_kmeans(lambda: iter([torch.empty(0, 4)]), KMeansConfig(n_clusters=4))
    with pytest.raises(DataError, match="dim 5 but the first chunk has 4"):
        fit_kmeans([x, torch.randn(10, 5)], KMeansConfig(n_clusters=4))
    with pytest.raises(DataError, match=r"expected \[frames, dim\]"):
        fit_kmeans([torch.randn(2, 3, 4)], KMeansConfig(n_clusters=4))
    with pytest.raises(KMeansConfigError, match="one-shot iterator"):
        fit_kmeans(iter([x]), KMeansConfig(n_clusters=4))
    with pytest.raises(KMeansConfigError, match="n_clusters=0"):
        KMeansConfig(n_clusters=0)
    with pytest.raises(KMeansConfigError, match="init='kmeans'"):
        KMeansConfig(n_clusters=3, init="kmeans")
    counter = itertools.count()

    def shrinking():  # a source that yields fewer frames on later passes
        return iter([x[: 532 - 100 * min(next(counter), 1)]])

    with pytest.raises(DataError, match="same data every time"):
        fit_kmeans(shrinking, KMeansConfig(n_clusters=4, init_size=10))
    for error in (DataError, KMeansConfigError, QuantizerError):
        assert issubclass(error, BenchmarkError)


def test_quantizer_save_load_round_trip(tmp_path, small_quantizer) -> None:
    quantizer, x = small_quantizer
    path = quantizer.save(tmp_path / "q" / "wavlm_L7.pt")
    loaded = KMeansQuantizer.load(path, expect_encoder="wavlm", expect_layer=7)
    assert torch.equal(loaded.centroids, quantizer.centroids)
    assert torch.equal(loaded.predict(x), quantizer.predict(x))
    assert loaded.provenance["data"] == "mini" and loaded.provenance["n_clusters"] == 12
    assert loaded.provenance["config"]["n_clusters"] == 12
    assert quantizer.predict(x.reshape(3, 1000, 16)).shape == (3, 1000)
    with pytest.raises(QuantizerError, match="encoder='hubert' is expected"):
        KMeansQuantizer.load(path, expect_encoder="hubert", expect_layer=7)
    with pytest.raises(QuantizerError, match="layer=12 is expected"):
        KMeansQuantizer.load(path, expect_layer=12)
    with pytest.raises(QuantizerError, match="does not exist"):
        KMeansQuantizer.load(tmp_path / "missing.pt")
    with pytest.raises(DataError, match="codebook dim 16"):
        quantizer.predict(torch.randn(4, 15))


def test_speechbrain_filenames() -> None:
    assert sb_quantizer_filename("LibriSpeech", "wavlm", 1000, 7) == "LibriSpeech_wavlm_k1000_L7.pt"
    parsed = parse_sb_quantizer_filename("/x/y/Libri_Speech_hubert_k2000_L23.pt")
    assert (parsed.data, parsed.encoder, parsed.k, parsed.layer) == (
        "Libri_Speech",
        "hubert",
        2000,
        23,
    )
    with pytest.raises(QuantizerError, match="does not match"):
        parse_sb_quantizer_filename("kmeans_layer7.pt")
    with pytest.raises(QuantizerError, match="without '_'"):
        sb_quantizer_filename("LibriSpeech", "wav_lm", 1000, 7)


def test_speechbrain_export_round_trip(tmp_path, small_quantizer) -> None:
    quantizer, _ = small_quantizer
    path = export_sb_quantizer(quantizer, tmp_path, data="mini", encoder="wavlm")
    assert path.name == "mini_wavlm_k12_L7.pt"
    estimator = joblib.load(path)  # what speechbrain's DiscreteSSL does
    assert isinstance(estimator, MiniBatchKMeans)
    assert estimator.cluster_centers_.dtype == np.float64  # what DiscreteSSL's predict needs
    np.testing.assert_array_equal(estimator.cluster_centers_, quantizer.centroids.double().numpy())
    fresh = torch.randn(5000, 16, generator=torch.Generator().manual_seed(9)) * 4
    # DiscreteSSL.encode hands predict a float32 torch tensor (scikit-learn makes it float64)
    np.testing.assert_array_equal(estimator.predict(fresh), quantizer.predict(fresh))
    single = export_sb_quantizer(
        quantizer, tmp_path / "f32", data="mini", encoder="wavlm", center_dtype="float32"
    )
    wrapper_style = joblib.load(single)  # speechbrain's MiniBatchKMeansSklearn: numpy float32
    np.testing.assert_array_equal(wrapper_style.predict(fresh.numpy()), quantizer.predict(fresh))
    with pytest.raises(QuantizerError, match="center_dtype"):
        export_sb_quantizer(quantizer, tmp_path, data="mini", encoder="wavlm", center_dtype="f16")
    back = import_sb_quantizer(path, expect_encoder="wavlm", expect_layer=7)
    assert torch.equal(back.centroids, quantizer.centroids)


def test_speechbrain_import(tmp_path) -> None:
    x, _ = blobs(6000, 40, 24, spread=1.0, seed=11)
    sk = MiniBatchKMeans(n_clusters=32, batch_size=1000, n_init=1, random_state=0)
    sk.fit(x.numpy())
    path = tmp_path / sb_quantizer_filename("LibriSpeech", "hubert", 32, 3)
    joblib.dump(sk, path)
    quantizer = import_sb_quantizer(path, expect_encoder="hubert", expect_layer=3, expect_k=32)
    assert (quantizer.encoder, quantizer.layer, quantizer.n_clusters) == ("hubert", 3, 32)
    fresh = torch.randn(5000, 24, generator=torch.Generator().manual_seed(4)) * 1.5
    np.testing.assert_array_equal(quantizer.predict(fresh).numpy(), sk.predict(fresh.numpy()))
    with pytest.raises(QuantizerError, match=r"is for layer 3 but 7 is expected"):
        import_sb_quantizer(path, expect_layer=7)
    with pytest.raises(QuantizerError, match=r"is for encoder 'hubert' but 'wavlm' is expected"):
        import_sb_quantizer(path, expect_encoder="wavlm")
    misnamed = tmp_path / "LibriSpeech_hubert_k100_L3.pt"
    joblib.dump(sk, misnamed)
    with pytest.raises(QuantizerError, match="named for K=100 but holds 32"):
        import_sb_quantizer(misnamed)
    with pytest.raises(QuantizerError, match="not in our format"):
        KMeansQuantizer.load(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_quality(moderate: torch.Tensor) -> None:
    config = KMeansConfig(n_clusters=50, seed=0, batch_size=8192)
    cpu = fit_kmeans(moderate, config)
    gpu = fit_kmeans(moderate, KMeansConfig(n_clusters=50, seed=0, batch_size=8192, device="cuda"))
    assert gpu.centroids.device.type == "cpu"
    assert gpu.inertia == pytest.approx(cpu.inertia, rel=0.02)

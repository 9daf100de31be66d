"""Session fixtures shared by the study, Ray and torchrun tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: A small mini corpus (seconds to synthesise), shared by the study/Ray/torchrun tests.
GRID_SCALE = 0.1


@pytest.fixture(scope="session")
def grid_corpus(tmp_path_factory) -> Path:
    """A workdir holding the mini corpus at scale 0.1, built once per session; copy its
    ``data`` folder into a test's own workdir with :func:`copy_corpus`."""
    from benchmark.data.corpora import get_corpus
    from benchmark.pipeline.config import RunConfig

    workdir = tmp_path_factory.mktemp("grid-corpus")
    config = RunConfig(tokenizers=(), tasks=(), workdir=workdir, corpus_scale=GRID_SCALE,
                       progress=False, device="cpu")  # fmt: skip
    get_corpus("mini").prepare(config.context("cpu"))
    return workdir


def copy_corpus(corpus: Path, workdir: Path) -> Path:
    """A fresh workdir with the prepared corpus of ``corpus`` in it (no other caches)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(corpus / "data", workdir / "data", symlinks=True)
    return workdir


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local Ray cluster per session: 2 CPUs and 2 logical GPUs (so GPU requests are
    exercised on a CPU machine). Test plugins read their switches from the environment the
    workers inherit."""
    ray = pytest.importorskip("ray")
    from benchmark.pipeline.ray_executor import init_ray

    switches = tmp_path_factory.mktemp("ray-switches")
    os.environ.setdefault("BENCH_TEST_COUNT_FILE", str(switches / "encode-calls.txt"))
    os.environ["BENCH_TEST_DIE_FILE"] = str(switches / "die-once")
    init_ray(num_cpus=2, num_gpus=2)
    yield switches
    ray.shutdown()

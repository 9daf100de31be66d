"""Failures and bad input: one clear line, nothing lost, nothing silently wrong (issue 12).

One shrunk mini corpus is built once per module; each test gets a fresh workdir that links
to it (so token caches, fits and job folders are the test's own).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark import cli
from benchmark.data.audio import save_wav
from benchmark.errors import UsageError
from benchmark.pipeline import store
from benchmark.pipeline.commands import run
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.store import StoreWriteError
from benchmark.registry import REPO_ROOT

SCALE = 0.05


def _task_card(folder: Path, epochs: int = 1) -> Path:
    card = folder / "style-tiny.yaml"
    card.write_text(
        "name: style-tiny\ndescription: style recognition with a tiny budget (tests)\n"
        "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
        f"params: {{corpus: mini, subset: style, dim: 16, hidden: 16, epochs: {epochs}}}\n"
    )
    return card


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A workdir holding only the shrunk mini corpus (``data/``)."""
    root = tmp_path_factory.mktemp("corpus")
    config = RunConfig(tokenizers=("dummy",), tasks=("emotion",), workdir=root,
                       corpus_scale=SCALE, progress=False, device="cpu", threads=1)  # fmt: skip
    from benchmark.data.corpora import get_corpus

    get_corpus("mini").prepare(config.context("cpu"))
    return root / "data"


@pytest.fixture
def workdir(tmp_path, corpus) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(corpus, target_is_directory=True)
    return work


def _config(workdir: Path, results: Path, **kw) -> RunConfig:
    base = {"tokenizers": ("dummy",), "tasks": (str(_task_card(workdir.parent)),),
            "workdir": workdir, "results_dir": results, "corpus_scale": SCALE,
            "progress": False, "device": "cpu", "threads": 1}  # fmt: skip
    return RunConfig(**{**base, **kw})


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _cli_args(workdir: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", "run", "--corpus-scale", str(SCALE),
            "--workdir", str(workdir), "--results", str(results), "--threads", "1",
            "--device", "cpu", "--quiet", *extra]  # fmt: skip


# ------------------------------------------------------------------ bad options


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--threads", "0"], "error: --threads must be a positive integer, got 0"),
        (["--threads", "-1"], "error: --threads must be a positive integer, got -1"),
        (["--corpus-scale", "0"], "error: --corpus-scale must lie in (0, 100], got 0.0"),
        (["--corpus-scale", "1000"], "error: --corpus-scale must lie in (0, 100], got 1000.0"),
        (["--task-param", "epochs=0"], "epochs must be a positive integer, got 0"),
        (["--task-param", "batch_size=0"], "batch_size must be a positive integer, got 0"),
        (["--task-param", "epochs=ten"], "epochs must be a positive integer, got 'ten'"),
    ],
)
def test_bad_options_are_one_line_usage_errors_before_any_work(tmp_path, capsys, option, expected):
    work = tmp_path / "work"
    argv = ["run", "--tokenizer", "dummy", "--task", "emotion", "--workdir", str(work),
            "--results", str(tmp_path / "results"), *option]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (work / "data").exists() and not (work / "tokens").exists()


def test_cuda_without_a_gpu_and_an_unwritable_results_folder(tmp_path, capsys):
    import torch

    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    work = tmp_path / "work"
    base = ["run", "--tokenizer", "dummy", "--task", "emotion", "--workdir", str(work)]
    assert cli.main([*base, "--results", str(blocker)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: the results folder is not writable: {blocker}")
    assert not work.exists(), "the check comes before any work"
    if not torch.cuda.is_available():
        assert cli.main([*base, "--results", str(tmp_path / "r"), "--device", "cuda"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == "error: --device cuda: no CUDA device is visible; use --device cpu"


# ------------------------------------------------------------ card and parameter errors


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("layers=[99]", "layer 99 is outside wavlm:tiny (mini preset)'s range 1..24"),
        ("num_clusters=600000", "num_clusters 600000 exceeds kmeans_max_frames=500000"),
    ],
)
def test_tokenizer_parameter_errors_surface_at_plan_time(tmp_path, param, expected):
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "plan", "--tokenizer", "wavlm-dasb", "--task",
         "emotion", "--tokenizer-param", param, "--workdir", str(work), "--results",
         str(tmp_path / "results"), "--corpus-scale", str(SCALE), "--threads", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tokenizer 'wavlm-dasb'")
    assert expected in lines[0] and "--tokenizer-param" in lines[0]
    assert not work.exists(), "nothing may be prepared or built before the error"


def test_more_clusters_than_fit_frames_stops_before_any_extraction(workdir, tmp_path):
    # a random tiny encoder: the check must not wait for the mini preset's pretraining
    params = (("num_clusters", 100000), ("tiny_model", "random"))
    config = _config(workdir, tmp_path / "results", tokenizers=("wavlm-dasb",),
                     tokenizer_params=params)  # fmt: skip
    with pytest.raises(UsageError, match="num_clusters 100000 is more than the at most") as info:
        run(config)
    assert "ood/train.jsonl" in str(info.value) and "\n" not in str(info.value)
    assert not (workdir / "tokens").exists() and not (workdir / "fitted").exists()


def test_kmeans_logmel_cluster_counts_are_checked_before_any_extraction(workdir, tmp_path):
    from benchmark.pipeline.commands import plan

    results = tmp_path / "results"
    budget = _config(workdir, results, tokenizers=("kmeans-logmel",),
                     tokenizer_params=(("num_clusters", 600000),))  # fmt: skip
    with pytest.raises(UsageError, match="num_clusters 600000 exceeds kmeans_max_frames=500000"):
        plan(budget)
    frames = _config(workdir, results, tokenizers=("kmeans-logmel",),
                     tokenizer_params=(("num_clusters", 100000),))  # fmt: skip
    with pytest.raises(UsageError, match="num_clusters 100000 is more than the at most"):
        run(frames)
    assert not (workdir / "tokens").exists() and not (workdir / "fitted").exists()


# ------------------------------------------------------------------------ full disk


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_saving_audio_names_the_path_and_the_cause(tmp_path, monkeypatch):
    monkeypatch.setattr(store.os, "fsync", _enospc)
    target = tmp_path / "corpus" / "a.wav"
    with pytest.raises(StoreWriteError) as info:
        save_wav(target, np.zeros(1600, np.float32), 16000)
    assert str(info.value) == f"cannot write {target}: no space left on device"
    assert not list(target.parent.iterdir()), "no temp file may stay behind"


def test_a_full_disk_during_synthesis_is_not_reported_as_undecodable_audio(tmp_path, monkeypatch):
    import shutil

    from benchmark.data.espeak import SynthJob, synthesize_job

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    job = SynthJob(rel="style/train/x.wav", text="hello there", voice="en", pitch=50,
                   rate=170, amplitude=100)  # fmt: skip
    samples = synthesize_job(job, tmp_path, espeak, 16000)
    assert samples > 1600 and (tmp_path / job.rel).is_file()
    monkeypatch.setattr(store.os, "fsync", _enospc)
    with pytest.raises(StoreWriteError) as info:
        synthesize_job(job, tmp_path, espeak, 16000)
    message = str(info.value)
    assert message == f"cannot write {tmp_path / job.rel}: no space left on device"
    assert "decode" not in message


def test_an_unwrapped_os_error_is_one_line_with_its_path(tmp_path, monkeypatch, capsys):
    where = tmp_path / "work" / "data"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    monkeypatch.setattr("benchmark.pipeline.commands.run", full_disk)
    argv = ["run", "--tokenizer", "dummy", "--task", "emotion", "--workdir", str(tmp_path / "w"),
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {where}: no space left on device"]


# ------------------------------------------------------------- results lost at the end


def test_a_failed_results_write_keeps_the_record_and_the_next_run_publishes_it(
    workdir, tmp_path, monkeypatch, capsys
):
    results = tmp_path / "results"
    real = store.atomic_write_json

    def read_only_for_seed5(path, payload):
        if Path(path).name == "seed5.json" and results in Path(path).parents:
            error = OSError(errno.EROFS, os.strerror(errno.EROFS))
            raise StoreWriteError(f"cannot write {store.describe_os_error(error, path)}")
        return real(path, payload)

    monkeypatch.setattr("benchmark.pipeline.records.atomic_write_json", read_only_for_seed5)
    task = _task_card(tmp_path)
    argv = ["run", "--tokenizer", "dummy", "--task", str(task), "--seed", "5", "--seed", "6",
            "--corpus-scale", str(SCALE), "--workdir", str(workdir), "--results",
            str(results), "--threads", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out.strip().splitlines()
    (line5,) = [line for line in out if "seed 5" in line]
    (line6,) = [line for line in out if "seed 6" in line]
    seed5 = results / "mini" / "dummy" / "style-tiny" / "seed5.json"
    assert line5.startswith("failed") and "results not written: cannot write" in line5
    assert f"{seed5}: Read-only file system" in line5 and "without retraining" in line5
    assert line6.startswith("ok") and (seed5.parent / "seed6.json").is_file()
    assert not seed5.exists()
    (staged,) = [p for p in (workdir / "jobs").glob("*/record.json")
                 if json.loads(p.read_text())["seed"] == 5]  # fmt: skip
    # a writer killed in the middle of a record write, and a fit killed mid-way
    pid = _dead_pid()
    stale_record = seed5.parent / f".seed6.json.{pid}-1-abc123.tmp"
    stale_record.write_text(staged.read_text())
    stale_fit = workdir / "fitted" / f".0123456789abcdef.{pid}-abc123.partial"
    stale_fit.mkdir(parents=True)

    monkeypatch.setattr("benchmark.pipeline.records.atomic_write_json", real)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished job must not train again")

    monkeypatch.setattr(
        "benchmark.tasks.classification.UtteranceClassificationTask.run", no_training
    )
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all(line.startswith("ok ") for line in out), out
    assert json.loads(seed5.read_text()) == json.loads(staged.read_text())
    assert not stale_record.exists() and not stale_fit.exists()


def test_a_damaged_token_cache_is_reported_removed_and_re_encoded(workdir, tmp_path, caplog):
    from benchmark import cache as token_cache

    results = tmp_path / "results"
    assert [o.status for o in run(_config(workdir, results))] == ["ok"]
    victim = sorted((workdir / "tokens").rglob("tokens.bin"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    victim.write_bytes(bytes(data))
    token_cache._VERIFIED.clear()  # as in a new process
    with caplog.at_level("WARNING"):
        (outcome,) = run(_config(workdir, results, seeds=(1,)))
    assert outcome.status == "failed" and "is removed, rerun to re-encode it" in outcome.error
    assert any("checksum mismatch" in r.getMessage() for r in caplog.records)
    assert not victim.exists()
    (again,) = run(_config(workdir, results, seeds=(1,)))
    assert again.status == "ok" and victim.is_file()


# ------------------------------------------------------------------- kills and SIGTERM


def _wait_for(predicate, process: subprocess.Popen, seconds: float = 300) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_fit_killed_mid_way_leaves_no_partial_folder_behind(workdir, tmp_path):
    results = tmp_path / "results"
    task = str(_task_card(tmp_path))
    # a slow fit (many clusters, many iterations) so the kill lands inside it
    args = _cli_args(workdir, results, "--tokenizer", "kmeans-logmel", "--task", task,
                     "--tokenizer-param", "num_clusters=512",
                     "--tokenizer-param", "kmeans_max_iter=1000")  # fmt: skip
    process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    fitted = workdir / "fitted"
    inside = _wait_for(lambda: fitted.is_dir() and any(fitted.glob(".*.partial")), process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert inside, "the fit finished before the kill; make it slower"
    assert list(fitted.glob(".*.partial"))
    other = _cli_args(workdir, results, "--tokenizer", "kmeans-logmel", "--task", task,
                      "--tokenizer-param", "num_clusters=16")  # fmt: skip
    done = subprocess.run(other, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not list(workdir.rglob("*.partial")) and not list(workdir.rglob(".*.tmp"))


def test_sigterm_exits_143_in_one_line_and_leaves_no_half_state(workdir, tmp_path, corpus):
    results = tmp_path / "results"
    task = str(_task_card(tmp_path, epochs=40))
    args = _cli_args(workdir, results, "--tokenizer", "dummy", "--task", task)
    process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert _wait_for(lambda: (workdir / "jobs").is_dir(), process), "no job started"
    time.sleep(0.5)  # inside training
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, (out, err)
    lines = err.strip().splitlines()  # step labels, then the one line of the stop
    assert lines[-1] == "terminated (SIGTERM): stopped cleanly; rerun to resume", err
    assert "Traceback" not in err and "terminated" not in "".join(lines[:-1])
    assert not list(results.rglob("*.json"))
    assert not list(workdir.rglob("*.partial")) and not list(workdir.rglob(".*.tmp"))
    again = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    # a clean run from scratch gives the same metrics
    clean_work = tmp_path / "clean"
    clean_work.mkdir()
    (clean_work / "data").symlink_to(corpus, target_is_directory=True)
    clean_results = tmp_path / "clean-results"
    clean = subprocess.run(_cli_args(clean_work, clean_results, "--tokenizer", "dummy",
                                     "--task", task),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    resumed = json.loads(next(results.rglob("seed0.json")).read_text())
    fresh = json.loads(next(clean_results.rglob("seed0.json")).read_text())
    assert resumed["status"] == fresh["status"] == "ok"
    assert resumed["metrics"] == fresh["metrics"]

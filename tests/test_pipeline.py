"""End to end: prepare -> encode -> cache -> train -> evaluate -> record, and resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.pipeline.commands import run as run_pipeline
from benchmark.pipeline.config import RunConfig
from benchmark.registry import REPO_ROOT, build_registries

PLUGINS = Path(__file__).parent / "plugins"
SCALE = 0.1  # a small mini corpus: seconds to synthesise


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One small corpus shared by the tests of this module."""
    return tmp_path_factory.mktemp("work")


def _task_card(folder: Path, epochs: int = 2) -> Path:
    card = folder / "style-quick.yaml"
    card.write_text(
        "name: style-quick\ndescription: style recognition with a tiny budget (tests)\n"
        "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
        f"params: {{corpus: mini, subset: style, dim: 32, hidden: 32, epochs: {epochs}}}\n"
    )
    return card


class _Run:
    def __init__(self, config: RunConfig, registries) -> None:
        self.config, self.registries = config, registries

    def run(self):
        return run_pipeline(self.config, self.registries)


def _runner(workdir: Path, results: Path, task: Path, **kw) -> _Run:
    registries = build_registries([PLUGINS / "counting_plugin.py"])
    config = RunConfig(
        tokenizers=("counting-mel",),
        tasks=(str(task),),
        workdir=workdir,
        results_dir=results,
        corpus_scale=SCALE,
        progress=False,
        device="cpu",
        **kw,
    )
    return _Run(config, registries)


def test_second_run_does_no_encoding_and_skips_the_job(workdir, tmp_path, monkeypatch):
    counts = tmp_path / "encode-calls.txt"
    monkeypatch.setenv("BENCH_TEST_COUNT_FILE", str(counts))
    task = _task_card(tmp_path)
    results = tmp_path / "results"

    first = _runner(workdir, results, task).run()
    assert [o.status for o in first] == ["ok"], first
    calls_first = counts.read_text().splitlines()
    assert calls_first, "the first run must encode"
    record = json.loads(first[0].path.read_text())
    assert record["status"] == "ok" and record["main_metric"] == "accuracy"
    accuracy = record["metrics"]["accuracy"]
    assert 0.0 <= accuracy["value"] <= 100.0
    assert accuracy["ci"]["low"] <= accuracy["value"] <= accuracy["ci"]["high"]
    assert len(record["extras"]["layer_weights"]) == 8
    assert abs(sum(record["extras"]["layer_weights"]) - 1.0) < 1e-4
    assert record["provenance"]["tokenizer_source"]["route"] == "file"
    assert record["tokenizer_info"]["bitrate_bps"] == pytest.approx(50 * 8 * 5)
    assert record["timings"]["seconds"]["task"] > 0

    second = _runner(workdir, results, task).run()
    assert second[0].skipped and second[0].status == "ok"
    assert counts.read_text().splitlines() == calls_first  # no encoder call at all

    # --overwrite reruns the job but reuses the token cache: still no encoding
    third = _runner(workdir, results, task, overwrite=True).run()
    assert not third[0].skipped and third[0].status == "ok"
    assert counts.read_text().splitlines() == calls_first


def test_changed_task_card_reruns_but_reuses_tokens(workdir, tmp_path, monkeypatch):
    counts = tmp_path / "encode-calls.txt"
    monkeypatch.setenv("BENCH_TEST_COUNT_FILE", str(counts))
    results = tmp_path / "results"
    _runner(workdir, results, _task_card(tmp_path, epochs=1)).run()
    before = json.loads(next(results.rglob("seed0.json")).read_text())["fingerprint"]
    calls = counts.read_text() if counts.exists() else ""
    outcome = _runner(workdir, results, _task_card(tmp_path, epochs=2)).run()[0]
    assert not outcome.skipped
    after = json.loads(outcome.path.read_text())["fingerprint"]
    assert after != before
    assert (counts.read_text() if counts.exists() else "") == calls


def test_failing_task_leaves_a_failed_record_and_run_goes_on(workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_COUNT_FILE", str(tmp_path / "calls"))
    bad = tmp_path / "bad-task.yaml"
    bad.write_text(
        "name: bad-task\ndescription: a task whose head cannot be built\n"
        "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
        "params: {corpus: mini, subset: style, fusion: nonsense, epochs: 1}\n"
    )
    registries = build_registries([PLUGINS / "counting_plugin.py"])
    config = RunConfig(
        tokenizers=("counting-mel",),
        tasks=(str(bad), str(_task_card(tmp_path, 1))),
        workdir=workdir,
        results_dir=tmp_path / "results",
        corpus_scale=SCALE,
        progress=False,
        device="cpu",
    )
    outcomes = run_pipeline(config, registries)
    assert [o.status for o in outcomes] == ["failed", "ok"]
    record = json.loads(outcomes[0].path.read_text())
    assert record["status"] == "failed"
    assert "nonsense" in record["error"]["message"]
    assert record["metrics"] == {}


def _cli(*args: str, workdir: Path, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args, "--workdir", str(workdir), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_cli_end_to_end_and_exit_codes(workdir, tmp_path):
    results = tmp_path / "results"
    task = _task_card(tmp_path)
    done = _cli(
        "run",
        "--tokenizer",
        "dummy",
        "--task",
        str(task),
        "--corpus-scale",
        str(SCALE),
        "--results",
        str(results),
        workdir=workdir,
        results=results,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ") and "accuracy=" in done.stdout
    record = json.loads((results / "mini" / "dummy" / "style-quick" / "seed0.json").read_text())
    assert record["status"] == "ok"
    again = _cli(
        "run",
        "--tokenizer",
        "dummy",
        "--task",
        str(task),
        "--corpus-scale",
        str(SCALE),
        "--results",
        str(results),
        workdir=workdir,
        results=results,
    )
    assert again.returncode == 0 and "up to date, skipped" in again.stdout

    unknown = _cli(
        "run", "--tokenizer", "dumy", "--task", "emotion", workdir=workdir, results=results
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: unknown tokenizer 'dumy'; did you mean 'dummy', 'dmel'?"
    ]
    preset = _cli(
        "run",
        "--tokenizer",
        "dummy",
        "--task",
        "emotion",
        "--preset",
        "huge",
        workdir=workdir,
        results=results,
    )
    assert preset.returncode == 2 and "unknown preset 'huge'" in preset.stderr
    assert "Traceback" not in preset.stderr
    usage = _cli("run", "--task", "emotion", workdir=workdir, results=results)
    assert usage.returncode == 2 and "--tokenizer" in usage.stderr


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys, time; t = time.perf_counter(); from benchmark.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=True,
    )
    assert float(out.stdout.strip().splitlines()[-1]) < 1.0


def test_run_killed_mid_way_resumes(workdir, tmp_path):
    """SIGKILL during the job, then rerun: the record is written whole, caches are sound."""
    results = tmp_path / "results"
    task = _task_card(tmp_path, epochs=30)
    fresh = tmp_path / "fresh-work"
    fresh.mkdir()
    # share the synthesised corpus, not the token cache
    (fresh / "data").symlink_to(workdir / "data", target_is_directory=True)
    args = [
        sys.executable,
        "-m",
        "benchmark",
        "run",
        "--tokenizer",
        "dummy",
        "--task",
        str(task),
        "--corpus-scale",
        str(SCALE),
        "--results",
        str(results),
        "--workdir",
        str(fresh),
        "--quiet",
    ]
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (fresh / "jobs").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # inside training now
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not list(results.rglob("*.json")), "a killed job must not leave a record"
    task.write_text(task.read_text().replace("epochs: 30", "epochs: 1"))
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    record = json.loads(next(results.rglob("seed0.json")).read_text())
    assert record["status"] == "ok"
    assert not list((fresh / "tokens").rglob("*.partial"))


def test_parameter_overrides_make_a_separate_variant(workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_COUNT_FILE", str(tmp_path / "calls"))
    results = tmp_path / "results"
    task = _task_card(tmp_path, epochs=1)
    outcome = _runner(workdir, results, task, task_params=(("dim", 16),)).run()[0]
    assert outcome.status == "ok"
    assert outcome.path.parent.name.startswith("style-quick~")
    record = json.loads(outcome.path.read_text())
    assert record["overrides"]["task"] == {"dim": 16}
    assert record["config"]["task"]["params"]["dim"] == 16
    from benchmark.errors import UsageError

    with pytest.raises(UsageError, match=r"does not accept parameters \['dimm'\]"):
        _runner(workdir, results, task, task_params=(("dimm", 16),)).run()


def test_parse_overrides_reads_yaml_values():
    from benchmark.cli import parse_overrides
    from benchmark.errors import UsageError

    assert parse_overrides(["layers=[3, 7]", "k=500", "data={subset: asr}"], "--x") == (
        ("data", {"subset": "asr"}),
        ("k", 500),
        ("layers", [3, 7]),
    )
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_overrides(["layers"], "--tokenizer-param")

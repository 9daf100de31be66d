"""Two processes on one workdir and results folder: nothing is lost, torn or computed twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.pipeline.records import ResultRecord
from benchmark.pipeline.store import remove_stale_temps
from benchmark.registry import REPO_ROOT

PLUGINS = Path(__file__).parent / "plugins"
SCALE = 0.08


def _card(folder: Path, name: str) -> Path:
    card = folder / f"{name}.yaml"
    card.write_text(
        f"name: {name}\ndescription: style, tiny budget (tests)\n"
        "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
        "params: {corpus: mini, subset: style, dim: 16, hidden: 16, epochs: 1}\n"
    )
    return card


def _start(tokenizer: str, task: Path, work: Path, results: Path, counts: Path):
    args = [sys.executable, "-m", "benchmark", "run", "--tokenizer", tokenizer, "--task",
            str(task), "--corpus-scale", str(SCALE), "--workdir", str(work), "--results",
            str(results), "--quiet", "--plugin", str(PLUGINS / "counting_plugin.py")]  # fmt: skip
    env = {**os.environ, "BENCH_TEST_COUNT_FILE": str(counts), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A prepared small corpus, symlinked into each test's fresh workdir."""
    work = tmp_path_factory.mktemp("corpus")
    from benchmark.data.mini import MiniConfig, prepare_mini

    prepare_mini(work / "data", MiniConfig(scale=SCALE), progress=False)
    return work / "data"


def _fresh(tmp_path: Path, corpus: Path, name: str) -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "data").symlink_to(corpus, target_is_directory=True)
    return work


def test_two_runs_of_the_same_job_encode_once_and_both_succeed(tmp_path, corpus):
    task = _card(tmp_path, "style-quick")
    # the reference: one run alone
    alone = tmp_path / "alone-counts.txt"
    process = _start("counting-mel", task, _fresh(tmp_path, corpus, "alone"), tmp_path / "r0",
                     alone)  # fmt: skip
    assert process.wait(timeout=600) == 0, process.stderr.read()
    work, results, counts = _fresh(tmp_path, corpus, "shared"), tmp_path / "r", tmp_path / "c.txt"
    first = _start("counting-mel", task, work, results, counts)
    second = _start("counting-mel", task, work, results, counts)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    # every encode call happened once: the same calls as the run alone, not twice as many
    assert sorted(counts.read_text().splitlines()) == sorted(alone.read_text().splitlines())
    record = ResultRecord.load(next(results.rglob("seed0.json")))
    assert record.status == "ok"
    leftovers = [p for p in work.rglob("*") if p.name.endswith((".partial", ".tmp"))]
    assert leftovers == []


def test_two_tasks_sharing_one_fit_and_one_extraction(tmp_path, corpus):
    work, results, counts = _fresh(tmp_path, corpus, "w"), tmp_path / "r", tmp_path / "c.txt"
    a, b = _card(tmp_path, "style-a"), _card(tmp_path, "style-b")
    first = _start("kmeans-logmel", a, work, results, counts)
    second = _start("kmeans-logmel", b, work, results, counts)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    fitted = [p for p in (work / "fitted").iterdir() if not p.name.startswith(".")]
    assert len(fitted) == 1 and (fitted[0] / "STEP.json").is_file()
    records = [ResultRecord.load(p) for p in sorted(results.rglob("seed0.json"))]
    assert [r.status for r in records] == ["ok", "ok"]
    assert records[0].key_components["tokenizer"] == records[1].key_components["tokenizer"]
    entries = [p for p in (work / "tokens").glob("*/*") if not p.name.startswith(".")]
    assert len(entries) == 3  # train, valid, test encoded once for both tasks


def test_only_temp_files_of_dead_processes_are_removed(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = tmp_path / f".entry.{live.pid}-1-abc.partial"
        dead = tmp_path / ".entry.999999999-1-abc.partial"
        old_file = tmp_path / "sub" / f".seed0.json.{live.pid}-2-abc.tmp"
        for folder in (mine, dead):
            folder.mkdir()
        old_file.parent.mkdir()
        old_file.write_text("{}")
        stale = time.time() - 3 * 24 * 3600
        os.utime(old_file, (stale, stale))  # a live pid, but days old: a recycled pid
        assert remove_stale_temps(tmp_path) == 2
        assert mine.exists() and not dead.exists() and not old_file.exists()
    finally:
        live.kill()
        live.wait()

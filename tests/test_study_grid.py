"""A study grid (2 tokenizers x 2 tasks x 2 seeds) run in process and on a local Ray cluster:
the same records; a second run does nothing; a worker killed mid-extraction is retried."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from benchmark.pipeline.commands import Executor, run
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.records import ResultRecord
from benchmark.studies.run import run_study
from benchmark.studies.schema import load_study
from tests.conftest import GRID_SCALE, copy_corpus

PLUGINS = Path(__file__).parent / "plugins"
TASK = """name: {name}
description: {name} with a tiny budget (tests)
class: benchmark.tasks.classification:UtteranceClassificationTask
params: {{corpus: mini, subset: {subset}, label_field: {field}, dim: 16, hidden: 16, epochs: 2}}
"""


def _study(folder: Path) -> Path:
    for name, subset, field in (("style-quick", "style", "label"),
                                ("speaker-quick", "speaker", "speaker")):  # fmt: skip
        (folder / f"{name}.yaml").write_text(TASK.format(name=name, subset=subset, field=field))
    path = folder / "grid.yaml"
    path.write_text(
        "name: grid\ndescription: 2 tokenizers x 2 tasks x 2 seeds (tests)\nseeds: [0, 1]\n"
        "tokenizers:\n  - counting-mel\n"
        "  - {tokenizer: kmeans-logmel, params: {num_clusters: 16}}\n"
        f"tasks:\n  - {folder / 'style-quick.yaml'}\n  - task: {folder / 'speaker-quick.yaml'}\n"
    )
    return path


def _base(workdir: Path, results: Path, **kw) -> RunConfig:
    return RunConfig(
        tokenizers=(), tasks=(), workdir=workdir, results_dir=results, corpus_scale=GRID_SCALE,
        progress=False, device="cpu", threads=1, plugins=(PLUGINS / "counting_plugin.py",),
        shard_utterances=16, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_study(grid_corpus, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("study-local")
    monkeypatch_module.setenv("BENCH_TEST_COUNT_FILE", str(root / "encode-calls.txt"))
    study = load_study(_study(root))
    base = _base(copy_corpus(grid_corpus, root / "work"), root / "results")
    start = time.perf_counter()
    result = run_study(study, base)
    seconds = time.perf_counter() - start
    print(f"local study: {seconds:.1f} s")
    return study, base, result, seconds, root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_study_runs_every_cell_and_keeps_its_table_in_a_study_record(local_study):
    study, base, result, _, _ = local_study
    assert len(study.cells()) == 4 and len(result.rows) == 8
    assert {r["status"] for r in result.rows} == {"ok"}, result.rows
    # the per-tokenizer override names the variant of that tokenizer only
    tokenizers = {r["tokenizer"] for r in result.rows}
    assert "counting-mel" in tokenizers
    assert any(t.startswith("kmeans-logmel~") for t in tokenizers), tokenizers
    assert len(result.summary) == 4 and all(s["seeds"] == 2 for s in result.summary)
    record = ResultRecord.load(result.path)
    assert result.path == base.results_dir / "mini" / "studies" / "grid.record.json"
    assert record.kind == "study" and record.status == "ok" and record.task == "grid"
    assert record.extras["rows"] == json.loads(json.dumps(result.rows))
    assert record.extras["table"] == json.loads(json.dumps(result.summary))
    assert record.extras["columns"][:2] == ["tokenizer", "tokenizer params"]
    for row in result.rows:  # each value is the cell's own record's main metric
        cell = ResultRecord.load(Path(row["record"]))
        assert cell.main_value == row["value"] and cell.fingerprint == row["fingerprint"]


def test_a_cell_is_the_job_of_the_equivalent_run_command(local_study):
    study, base, result, _, _ = local_study
    cell = next(c for c in study.cells() if c.tokenizer == "kmeans-logmel")
    config = dataclasses.replace(base, tokenizers=("kmeans-logmel",), tasks=(cell.task,),
                                 seeds=(0,), tokenizer_params=cell.tokenizer_params)  # fmt: skip
    outcomes = run(config)
    assert [o.skipped for o in outcomes] == [True], outcomes
    assert str(outcomes[0].path) in {r["record"] for r in result.rows}


def test_second_study_run_does_nothing(local_study):
    study, base, result, _, root = local_study
    calls = (root / "encode-calls.txt").read_text()
    mtime = result.path.stat().st_mtime_ns
    again = run_study(study, base)
    assert all(o.skipped for o in again.outcomes) and len(again.outcomes) == 8
    assert not again.written and result.path.stat().st_mtime_ns == mtime
    assert (root / "encode-calls.txt").read_text() == calls  # nothing encoded


def _history(record: ResultRecord) -> list[dict]:
    """The training history without its wall times."""
    return [{k: v for k, v in h.items() if k != "seconds"}
            for h in record.extras["training"]["history"]]  # fmt: skip


def _assert_same_study(result, other) -> None:
    """``other`` (another executor's run of the study) computed every cell anew and got the
    same records: fingerprints, metrics, training histories, the study record's key."""
    assert all(not o.skipped for o in other.outcomes)
    for row, other_row in zip(result.rows, other.rows, strict=True):
        assert other_row["status"] == "ok", other_row
        record = ResultRecord.load(Path(row["record"]))
        twin = ResultRecord.load(Path(other_row["record"]))
        assert twin.fingerprint == record.fingerprint
        assert {k: v.to_dict() for k, v in twin.metrics.items()} == {
            k: v.to_dict() for k, v in record.metrics.items()
        }
        assert _history(twin) == _history(record)
    assert other.record.fingerprint == result.record.fingerprint


@pytest.mark.ray
def test_ray_executor_gives_the_same_records_and_caches(local_study, grid_corpus, ray_cluster,
                                                         tmp_path):  # fmt: skip
    study, base, result, local_seconds, _ = local_study
    work = copy_corpus(grid_corpus, tmp_path / "work")
    ray_base = dataclasses.replace(base, workdir=work, results_dir=tmp_path / "results")
    start = time.perf_counter()
    ray_result = run_study(study, ray_base, executor=Executor("ray", gpus=1))
    print(f"ray study: {time.perf_counter() - start:.1f} s (local {local_seconds:.1f} s)")
    _assert_same_study(result, ray_result)
    local_tokens = sorted((base.workdir / "tokens").rglob("tokens.bin"))
    assert len(local_tokens) >= 6
    shards = 0
    for path in local_tokens:
        twin = work / path.relative_to(base.workdir)
        assert twin.read_bytes() == path.read_bytes(), path
        meta = json.loads((path.parent / "meta.json").read_text())
        shards += meta["utterances"] > 16
    assert shards, "no extraction was split into shards"


def test_parallel_local_executor_gives_the_same_records_and_caches(local_study, grid_corpus,
                                                                   tmp_path):  # fmt: skip
    study, base, result, local_seconds, _ = local_study
    work = copy_corpus(grid_corpus, tmp_path / "work")
    pool_base = dataclasses.replace(base, workdir=work, results_dir=tmp_path / "results")
    start = time.perf_counter()
    pooled = run_study(study, pool_base, executor=Executor("local", jobs=2))
    print(f"--jobs 2 study: {time.perf_counter() - start:.1f} s (--jobs 1 {local_seconds:.1f} s)")
    _assert_same_study(result, pooled)
    mine, theirs = _files(work / "tokens"), _files(base.workdir / "tokens")
    assert mine.keys() == theirs.keys() and any(p.name == "tokens.bin" for p in mine)
    for path, data in mine.items():  # meta.json names its workdir's manifest: left out
        if path.name == "meta.json":
            data, other = (json.loads(d) for d in (data, theirs[path]))
            data.pop("manifest_source"), other.pop("manifest_source")
            assert data == other, path
        else:
            assert data == theirs[path], path
    again = run_study(study, pool_base, executor=Executor("local", jobs=2))
    assert all(o.skipped for o in again.outcomes) and not again.written


def test_a_killed_pool_worker_is_retried_and_the_run_completes(grid_corpus, tmp_path,
                                                               monkeypatch):  # fmt: skip
    switch = tmp_path / "die-once"
    monkeypatch.setenv("BENCH_TEST_DIE_FILE", str(switch))
    card = tmp_path / "style-quick.yaml"
    card.write_text(TASK.format(name="style-quick", subset="style", field="label"))
    work = copy_corpus(grid_corpus, tmp_path / "work")
    config = dataclasses.replace(
        _base(work, tmp_path / "sequential"), tokenizers=("dying-mel", "kmeans-logmel"),
        tasks=(str(card),), plugins=(PLUGINS / "dying_plugin.py",),
        tokenizer_overrides={"kmeans-logmel": {"num_clusters": 16}},
    )  # fmt: skip
    sequential = {o.tokenizer: o for o in run(config)}
    assert {o.status for o in sequential.values()} == {"ok"}
    tokens = _files(work / "tokens")
    (work / "tokens").rename(work / "tokens-sequential")
    switch.write_text("armed")
    pooled = run(dataclasses.replace(config, results_dir=tmp_path / "pool"),
                 executor=Executor("local", jobs=2))  # fmt: skip
    assert Path(f"{switch}.died").exists() and not switch.exists(), "no worker was killed"
    assert {o.status for o in pooled} == {"ok"}, pooled
    for outcome in pooled:
        record, twin = ResultRecord.load(outcome.path), ResultRecord.load(
            sequential[outcome.tokenizer].path)  # fmt: skip
        assert record.fingerprint == twin.fingerprint and record.main_value == twin.main_value
    bins = {p: b for p, b in _files(work / "tokens").items() if p.name == "tokens.bin"}
    assert bins and bins == {p: b for p, b in tokens.items() if p.name == "tokens.bin"}


def _files(folder: Path) -> dict[Path, bytes]:
    """Bytes of every cache file (index.npz is a zip with timestamps: left out)."""
    return {p.relative_to(folder): p.read_bytes()
            for p in folder.rglob("*") if p.is_file() and p.suffix != ".npz"}  # fmt: skip


@pytest.mark.ray
def test_a_worker_killed_during_extraction_is_retried(grid_corpus, ray_cluster, tmp_path):
    switch = Path(ray_cluster) / "die-once"
    root = tmp_path
    card = root / "style-quick.yaml"
    card.write_text(TASK.format(name="style-quick", subset="style", field="label"))
    work = copy_corpus(grid_corpus, root / "work")
    config = dataclasses.replace(
        _base(work, root / "local"), tokenizers=("dying-mel",), tasks=(str(card),),
        plugins=(PLUGINS / "dying_plugin.py",),
    )  # fmt: skip
    assert [o.status for o in run(config)] == ["ok"]
    local = _files(work / "tokens")
    (work / "tokens").rename(work / "tokens-local")
    switch.write_text("armed")
    outcomes = run(dataclasses.replace(config, results_dir=root / "ray"), executor=Executor("ray"))
    assert [o.status for o in outcomes] == ["ok"], outcomes
    assert not switch.exists() and Path(f"{switch}.died").exists(), "no worker was killed"
    again = _files(work / "tokens")
    assert again == local and any(p.name == "tokens.bin" for p in local)


@pytest.mark.ray
def test_the_vocoder_study_runs_on_ray_with_the_same_table(grid_corpus, ray_cluster, tmp_path):
    """The vocoder study's vocoders are graph steps: Ray trains them (on logical GPUs' worth
    of tasks) and its table equals the in-process one, value for value."""
    from benchmark.studies.schema import load_study
    from benchmark.studies.vocoder import run_vocoder_study

    card = tmp_path / "bands-2.yaml"
    card.write_text(
        "name: bands-2\ndescription: two mel bands (vocoder study test)\n"
        "class: benchmark.tokenizers.dummy:MelBandTokenizer\nparams: {n_bands: 2, levels: 8}\n"
    )
    path = tmp_path / "voc.yaml"
    path.write_text(
        f"name: voc\ndescription: single-layer vs scalable (test)\ntokenizers: [{card}]\n"
        "seeds: [0, 1]\nvocoder: {steps: 2, adversarial_steps: 0}\n"
    )
    study = load_study(path, "mini")
    results = {}
    for executor in (Executor("local"), Executor("ray", gpus=1)):
        work = copy_corpus(grid_corpus, tmp_path / f"work-{executor.kind}")
        base = RunConfig(tokenizers=(), tasks=(), workdir=work, corpus_scale=GRID_SCALE,
                         results_dir=tmp_path / f"results-{executor.kind}", progress=False,
                         device="cpu", threads=1)  # fmt: skip
        results[executor.kind] = run_vocoder_study(study, base, executor=executor)
        assert results[executor.kind].written
    local, ray = results["local"], results["ray"]
    assert len(local.rows) == 2 * 4 * 3  # 2 seeds x (3 vocoders + its decoder) x 3 subsets
    assert local.rows == ray.rows
    assert local.record.fingerprint == ray.record.fingerprint

"""torchrun: a head trained with DDP over 2 CPU processes (gloo); rank 0 writes one record."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmark.pipeline import distributed
from benchmark.pipeline.graph import Step
from tests.conftest import GRID_SCALE, copy_corpus

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"


def test_outside_torchrun_the_hooks_change_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    items = list(range(5))
    assert distributed.world_size() == 1 and distributed.is_writer()
    assert distributed.epoch_share(items, 3, 0) == items and distributed.shard_count(5) == 5
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_writer() and distributed.shard_count(5) == 5  # not a DDP step
    with distributed.ddp_scope(True):
        assert distributed.shard_count(5) == 3
        assert distributed.epoch_share(items, 0, 0) == [1, 3, 0]  # padded to 3 steps per rank
    job = Step("job:a/b/0", "job", "job", {}, (), Path("x"), spec={})
    generative = Step("job:a/c/0", "job", "job", {}, (), Path("y"), spec={"generative": True})
    assert distributed.is_ddp_step(job) and not distributed.is_ddp_step(generative)
    assert distributed.backend("cpu") == "gloo" and distributed.backend("cuda:1") == "nccl"


def test_torchrun_trains_a_head_with_ddp_and_rank0_writes_one_record(grid_corpus, tmp_path):
    # speaker identification: learnable in a few epochs on a shrunk corpus (the mini v3 style
    # subset is made hard on purpose, so its training loss can stay flat for 6 tiny epochs)
    card = tmp_path / "speaker-ddp.yaml"
    card.write_text(
        "name: speaker-ddp\ndescription: speaker identification, tiny budget (torchrun test)\n"
        "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
        "params: {corpus: mini, subset: speaker, label_field: speaker, dim: 32, hidden: 32, "
        "epochs: 20, batch_size: 4, lr: 0.01}\n"
    )
    work = copy_corpus(grid_corpus, tmp_path / "work")
    results = tmp_path / "results"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "benchmark", "run",
        "--tokenizer", "counting-mel", "--task", str(card), "--plugin",
        str(PLUGINS / "counting_plugin.py"), "--workdir", str(work), "--results", str(results),
        "--corpus-scale", str(GRID_SCALE), "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "BENCH_TEST_COUNT_FILE": str(tmp_path / "calls.txt")}  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[:6000]
    records = sorted(results.rglob("seed*.json"))
    assert len(records) == 1, records
    record = json.loads(records[0].read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["key_components"]["world_size"] == 2
    history = record["extras"]["training"]["history"]
    assert len(history) == 20
    # each rank steps through half of the batches of an epoch
    lines = next(work.rglob("speaker/train.jsonl")).read_text().splitlines()
    assert history[0]["steps"] == math.ceil(math.ceil(len(lines) / 4) / 2)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert "rank 1 of 2 (gloo)" in done.stderr or "rank 0 of 2 (gloo)" in done.stderr

"""The ``token-stats`` step of the graph: planned by ``--task all``, fed by the extract steps'
token caches of the test splits, encoding nothing but its bounded stability sample."""

from __future__ import annotations

import pytest

from benchmark.pipeline.commands import _prepare_pending, plan
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.local import execute
from benchmark.pipeline.plan import Planner
from benchmark.pipeline.records import ResultRecord
from benchmark.pipeline.stats_step import is_test_split
from benchmark.tokenizers.dummy import MelBandTokenizer


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    config = RunConfig(tokenizers=("dummy", "continuous-logmel"), tasks=("all",),
                       workdir=root / "w", results_dir=root / "r", corpus_scale=0.05,
                       progress=False, device="cpu", threads=1)  # fmt: skip
    env, graph = plan(config)
    assert not [s for s in graph if s.kind == "token-stats"]  # corpus not prepared yet
    _prepare_pending(graph, env)
    return config, env, Planner(env).plan()


def _count_encodes(monkeypatch) -> list[int]:
    counted: list[int] = []
    original = MelBandTokenizer.encode

    def encode(self, wav, lengths):
        counted.append(int(wav.shape[0]))
        return original(self, wav, lengths)

    monkeypatch.setattr(MelBandTokenizer, "encode", encode)
    return counted


def test_planned_once_per_discrete_tokenizer_from_test_extractions(planned):
    _, _, graph = planned
    stats = [s for s in graph if s.kind == "token-stats"]
    assert [s.spec["tokenizer_name"] for s in stats] == ["dummy"]  # no continuous reference
    step = stats[0]
    extracts = [graph.steps[i] for i in step.inputs if graph.steps[i].kind == "extract"]
    assert extracts and all(e.spec["data"]["split"] == "test" for e in extracts)
    assert set(step.spec["caches"]) and all(
        is_test_split(name.split("/", 1)[1]) for name in step.spec["caches"]
    )
    keys = [c["manifest_key"] for c in step.spec["caches"].values()]
    assert len(keys) == len(set(keys))  # a manifest shared by two tasks counts once
    assert step.goal and step.state == "to do"


def test_step_reads_the_caches_and_encodes_only_the_stability_sample(planned, monkeypatch):
    config, env, graph = planned
    step = next(s for s in graph if s.kind == "token-stats")
    for other in graph:
        other.goal = other is step
    execute(graph, env)  # extracts the test splits first (and encodes them)
    record = ResultRecord.load(step.output)
    assert record.kind == "token-stats" and record.status == "ok", record.error
    assert record.fingerprint == step.key and record.key_components == step.components
    assert record.conformance and not record.conformance["failed"]
    assert sorted(record.config["splits"]) == sorted(step.spec["caches"])
    frames = sum(
        env.token_cache.read_meta(env.token_cache.entry_dir(c["encoder_key"], c["manifest_key"]))[
            "total_frames"
        ]
        for c in step.spec["caches"].values()
    )
    assert sum(r["frames"] for r in record.extras["per_codebook"]) == frames * len(
        record.extras["per_codebook"]
    )
    assert record.metrics["stability_noise"].n == 20
    # rerun from the caches alone: only 3 x 20 utterances are encoded, none of the test sets
    step.output.unlink()
    counted = _count_encodes(monkeypatch)
    fresh = Planner(type(env)(config)).plan()
    again = next(s for s in fresh if s.kind == "token-stats")
    assert again.state == "to do" and again.key == step.key
    assert all(fresh.steps[i].state == "done" for i in again.inputs)
    for other in fresh:
        other.goal = other is again
    execute(fresh, type(env)(config))
    assert sum(counted) == 3 * 20
    assert Planner(type(env)(config)).plan().steps[again.id].state == "done"

"""Study files (validation, expansion), per-tokenizer overrides, and the shard+merge cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.cache import TokenCache, shard_ranges
from benchmark.data.manifest import Manifest, Utterance
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.records import ResultRecord
from benchmark.registry import build_registries
from benchmark.studies.schema import StudyError, load_study

ROOT = Path(__file__).resolve().parents[1]
GOOD = """name: demo
description: a demo grid
seeds: [0, 1]
tokenizers:
  - dummy
  - tokenizer: kmeans-logmel
    params: {kmeans_max_frames: 1000}
    grid: {num_clusters: [16, 32]}
tasks:
  - task: style
    variants: [{fusion: attention}, {fusion: single, fusion_layer: 1}]
    grid: {embedding_init: [random, tokenizer]}
presets:
  full:
    seeds: [0, 1, 2]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_study_expands_into_cells_with_per_tokenizer_grids(tmp_path):
    study = load_study(_write(tmp_path, GOOD))
    assert study.preset == "mini" and study.seeds == (0, 1)
    cells = study.cells()
    assert len(cells) == (1 + 2) * (2 * 2)
    dummy = {c.tokenizer_params for c in cells if c.tokenizer == "dummy"}
    assert dummy == {()}  # the grid of kmeans-logmel does not touch dummy
    kmeans = {dict(c.tokenizer_params)["num_clusters"] for c in cells if c.tokenizer != "dummy"}
    assert kmeans == {16, 32}
    assert all(dict(c.tokenizer_params).get("kmeans_max_frames") == 1000
               for c in cells if c.tokenizer != "dummy")  # fmt: skip
    single = [dict(c.task_params) for c in cells if dict(c.task_params)["fusion"] == "single"]
    assert all(p["fusion_layer"] == 1 for p in single) and len(single) == 6
    assert load_study(study.path, "full").seeds == (0, 1, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seeds: [0, 1]", "seeds: [0, 0]"), r"seeds must be a list of distinct"),
        (("name: demo", "name: Demo Study"), r"name 'Demo Study' must match"),
        (
            ("  - dummy\n", "  - dummy\n  - {tokenizer: dummy, grids: {}}\n"),
            r"unknown key tokenizers\[1\]\.grids",
        ),
        (
            ("grid: {num_clusters: [16, 32]}", "grid: {num_clusters: 16}"),
            r"tokenizers\[1\]\.grid\.num_clusters must be a non-empty list",
        ),
        (
            ("params: {kmeans_max_frames: 1000}", "params: {num_clusters: 8}"),
            r"'num_clusters' is both in params and in grid",
        ),
        (("presets:\n  full:", "presets:\n  huge:"), r"presets\.huge: unknown preset"),
        (
            ("description: a demo grid\n", "owner: me\ndescription: a demo grid\n"),
            r"unknown key owner",
        ),
        (("tasks:\n", "jobs:\n"), r"unknown key jobs"),
        (("seeds: [0, 1]\n", "seeds: [0, 1]\nvocoder: {steps: 2}\n"), r"either 'tasks'"),
    ],
)
def test_malformed_studies_are_one_line_errors_naming_file_and_key(tmp_path, change, message):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(StudyError, match=message) as info:
        load_study(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_non_yaml_files(tmp_path):
    with pytest.raises(StudyError, match="study file .*nope.yaml"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(StudyError, match=r"not valid YAML \(line"):
        load_study(_write(tmp_path, "name: [unclosed\n"))


@pytest.mark.parametrize("preset", ["mini", "full"])
def test_shipped_studies_are_valid_and_name_registered_components(preset):
    registries = build_registries([])
    paths = sorted((ROOT / "studies").glob("*.yaml"))
    expected = {"kmeans-clusters", "kmeans-domain", "layer-fusion", "scalable-vocoder"}
    assert {p.stem for p in paths} >= expected
    for path in paths:
        study = load_study(path, preset)
        assert study.name == path.stem and (study.cells() or study.vocoder is not None)
        for axis in study.tokenizers:
            registries.resolve_name("tokenizer", axis.ref)
        for cell in study.cells():
            registries.resolve_name("tokenizer", cell.tokenizer)
            registries.resolve_name("task", cell.task)


def test_per_tokenizer_overrides_apply_to_that_tokenizer_only():
    config = RunConfig(tokenizers=("a", "b"), tasks=("t",), tokenizer_params=(("x", 1),),
                       tokenizer_overrides={"b": {"x": 2, "y": [3]}})  # fmt: skip
    assert config.tokenizer_params_of("a") == (("x", 1),)
    assert config.tokenizer_params_of("b") == (("x", 2), ("y", [3]))
    assert config.tokenizer_params_of("card-name", "b") == (("x", 2), ("y", [3]))
    names = {config.variant_name(n, config.tokenizer_params_of(n)) for n in ("a", "b")}
    assert len({n.split("~")[1] for n in names}) == 2


class _Tokenizer:
    """Tokens = rounded sample values (the cache only needs ``info`` and ``encode``)."""

    def __init__(self):
        from benchmark.metadata import TokenizerInfo

        self.info = TokenizerInfo(name="toy", sample_rate=16000, frame_rate=50.0,
                                  codebook_sizes=(300, 300))  # fmt: skip

    def encode(self, wav, lengths):
        frames = wav.shape[1] // 320
        tokens = (wav[:, : frames * 320].reshape(wav.shape[0], frames, 320)[..., :2] * 100).long()
        return tokens.abs().clamp(max=299), lengths // 320


def _batches(count: int, start: int):
    for i in range(start, start + count):
        wav = torch.full((1, 320 * (3 + i)), (i % 7) / 10.0)
        yield [f"u{i}"], wav, torch.tensor([320 * (3 + i)])


def test_merged_shards_are_the_entry_one_build_writes(tmp_path):
    utterances = [Utterance(id=f"u{i}", path=f"{i}.wav", duration=1.0, sample_rate=16000)
                  for i in range(10)]  # fmt: skip
    manifest = Manifest(tuple(utterances), tmp_path)
    tok = _Tokenizer()
    whole = TokenCache(tmp_path / "a")
    whole.build(tok, "e" * 16, "m" * 16, manifest, _batches(10, 0))
    sharded = TokenCache(tmp_path / "b")
    ranges = shard_ranges(10, 4)
    assert ranges == [(0, 4), (4, 8), (8, 10)]
    for index, (start, stop) in enumerate(ranges):
        sharded.build_shard(tok, "e" * 16, "m" * 16, index, 3, _batches(stop - start, start))
    # a finished shard is kept, not re-encoded
    assert sharded.build_shard(tok, "e" * 16, "m" * 16, 0, 3, iter(())).is_dir()
    split = sharded.merge_shards(tok, "e" * 16, "m" * 16, manifest, 3)
    assert split.ids == [f"u{i}" for i in range(10)]
    a, b = whole.entry_dir("e" * 16, "m" * 16), sharded.entry_dir("e" * 16, "m" * 16)
    for name in ("tokens.bin", "meta.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert not sharded.shard_dir("e" * 16, "m" * 16, 0, 3).parent.exists()


def test_the_vocoder_study_runs_on_the_study_machinery_and_resumes(tmp_path, capsys):
    from benchmark.cli import main

    card = tmp_path / "dummy-2.yaml"
    card.write_text(
        "name: dummy-2\ndescription: two mel bands (vocoder study test)\n"
        "class: benchmark.tokenizers.dummy:MelBandTokenizer\nparams: {n_bands: 2, levels: 8}\n"
    )
    path = tmp_path / "voc.yaml"
    path.write_text(
        f"name: voc\ndescription: single-layer vs scalable (test)\ntokenizers: [{card}]\n"
        "vocoder: {steps: 2, adversarial_steps: 0}\n"
    )
    args = ["study", str(path), "--corpus-scale", "0.05", "--workdir", str(tmp_path / "work"),
            "--results", str(tmp_path / "results"), "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scalable (all layers, dropout)" in out and "study record (written)" in out
    assert "4 vocoder steps run now" in out  # 3 vocoders and the comparison
    record_path = tmp_path / "results" / "mini" / "studies" / "voc.record.json"
    record = ResultRecord.load(record_path)
    assert record.kind == "study" and record.status == "ok"
    scalable = [r for r in record.extras["rows"] if r["vocoder"].startswith("scalable")]
    assert {r["decoded"] for r in scalable} == {"layer 0", "layer 1", "all layers"}
    assert all(r["status"] == "ok" and r["value"] > 0 for r in scalable)
    single = [r for r in record.extras["rows"] if r["vocoder"] == "layer 0 only"]
    assert {r["decoded"]: r["status"] for r in single}["layer 1"] == "refused"
    # the vocoders are graph steps: one per codebook, the scalable one, and the comparison
    from benchmark.pipeline.commands import make_env
    from benchmark.pipeline.config import RunConfig
    from benchmark.studies.schema import load_study
    from benchmark.studies.vocoder import plan_vocoder_study

    env = make_env(RunConfig(tokenizers=(), tasks=(), workdir=tmp_path / "work",
                             corpus_scale=0.05, progress=False, device="cpu"))  # fmt: skip
    graph, _ = plan_vocoder_study(env, load_study(path, None))
    kinds = [s.kind for s in graph]
    assert kinds.count("vocoder") == 3 and kinds.count("vocoder-eval") == 1
    assert all(s.state == "done" for s in graph if s.kind.startswith("vocoder"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "study record (unchanged)" in out and "0 vocoder steps run now" in out

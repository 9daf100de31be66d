"""The ``pretrain`` step of the graph: planned not run by ``plan``, cached, keyed by its recipe.

The tiny WavLM of ``wavlm-attn`` is pretrained for a few steps on a shrunk mini corpus, then
fitted (K = 8) and scored on a quick style task; the module shares one workdir.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.data.corpora import corpus_manifest
from benchmark.pipeline.commands import plan, run
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.records import ResultRecord
from benchmark.pipeline.status import MARKER, read_marker

SCALE = 0.01
PRETRAIN = {"steps": 6, "batch_size": 2, "crop_frames": 30, "warmup_steps": 2, "threads": 1,
            "targets": [["logmel", 8]], "kmeans_max_iter": 3, "log_every": 2}  # fmt: skip
TOKENIZER_PARAMS = (("num_clusters", 8), ("layers", [3, 23]), ("kmeans_max_iter", 5),
                    ("pretrain", PRETRAIN))  # fmt: skip


def _config(root: Path, **params) -> RunConfig:
    card = root / "quick-style.yaml"
    if not card.exists():
        card.write_text(
            "name: quick-style\ndescription: style with a tiny budget (tests)\n"
            "class: benchmark.tasks.classification:UtteranceClassificationTask\n"
            "params: {corpus: mini, subset: style, dim: 16, hidden: 16, epochs: 1}\n"
        )
    overrides = dict(TOKENIZER_PARAMS) | params
    return RunConfig(
        tokenizers=("wavlm-attn",), tasks=(str(card),), workdir=root / "work",
        results_dir=root / "results", corpus_scale=SCALE, progress=False, device="cpu",
        threads=1, tokenizer_params=tuple(overrides.items()),
    )  # fmt: skip


def _states(config: RunConfig) -> dict[str, tuple[str, str]]:
    _, graph = plan(config)
    return {step.kind: (step.state, step.reason) for step in graph if step.kind != "extract"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain-step")
    config = _config(root)
    context = config.context("cpu")
    corpus_manifest("mini", "asr", "train", context)  # prepares the shrunk corpus
    _, graph = plan(config)
    before = {step.kind: step.state for step in graph}
    before["trained"] = any((root / "work" / name).exists() for name in ("pretrained", "models"))
    outcomes = run(config)
    assert [o.status for o in outcomes] == ["ok"], outcomes
    return root, config, graph, before


def test_plan_does_not_pretrain(setup):
    _, _, graph, before = setup
    assert before["pretrain"] == "to do" and before["fit"] == "to do"
    pretrain = next(s for s in graph if s.kind == "pretrain")
    fit = next(s for s in graph if s.kind == "fit")
    assert pretrain.id in fit.inputs and any(i.startswith("prepare:") for i in pretrain.inputs)
    assert "pretrained by the harness on mini, 6 steps" in pretrain.label
    assert before["trained"] is False  # plan made no model folder


def test_the_step_is_cached_and_its_record_names_the_model(setup):
    _, config, graph, _ = setup
    assert all(state == "done" for state, _ in _states(config).values())
    pretrain = next(s for s in graph if s.kind == "pretrain")
    marker = read_marker(pretrain.output / MARKER)
    assert marker["key"] == pretrain.key and (pretrain.output / "model.safetensors").is_file()
    summary = marker["summary"]
    assert summary["steps"] == 6 and summary["cpu_seconds"] > 0
    assert summary["final_loss"] is not None and summary["speakers"] > 0
    job = next(s for s in graph if s.kind == "job")
    record = ResultRecord.load_or_none(job.output)
    label = "pretrained by the harness on mini, 6 steps"
    assert record.tokenizer_info["model_label"] == label
    assert record.extras["pretrain"]["label"] == label
    assert record.extras["pretrain"]["learned_from"].startswith("predicting k-means cluster")


def test_a_changed_recipe_pretrains_refits_and_reextracts(setup):
    root, _, first, _ = setup
    changed = _config(root, pretrain={**PRETRAIN, "lr": 1e-3})
    _, graph = plan(changed)
    states = {step.kind: step for step in graph}
    assert states["pretrain"].state == "to do" and states["fit"].state == "to do"
    assert states["fit"].components["tokenizer"]["pretrain"] == states["pretrain"].key
    old_fit = next(s for s in first if s.kind == "fit")
    assert states["fit"].key != old_fit.key  # another fit folder: the old one stays valid
    assert all(s.state == "to do" for s in graph if s.kind in ("extract", "job"))
    assert states["prepare"].state == "done"


@pytest.mark.parametrize(
    "module", ["benchmark.models.ssl_pretrain_train", "benchmark.models.ssl_pretrain_relabel"]
)
def test_a_change_to_the_training_loops_source_pretrains_again(setup, monkeypatch, module):
    """The step's code key reaches the recipe modules the tokenizer imports (the optimiser
    lives in ``ssl_pretrain_train``, the second iteration in ``ssl_pretrain_relabel``): an
    edit there must not reuse the cached model."""
    from benchmark.pipeline import keys

    _, config, first, _ = setup
    real = keys._file_info

    def edited(path, name):
        digest, imports = real(path, name)
        if name == module:
            digest = "edited-" + digest
        return digest, imports

    monkeypatch.setattr(keys, "_file_info", edited)
    _, graph = plan(config)
    steps = {step.kind: step for step in graph}
    old = next(s for s in first if s.kind == "pretrain")
    assert steps["pretrain"].key != old.key and steps["pretrain"].state == "to do"

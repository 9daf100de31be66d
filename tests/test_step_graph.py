"""The step graph: keys that cannot go stale, the conformance gate, plan output.

One small mini corpus is shared by the module. Tokenizer and task code live in plugin files
copied into a temp folder, so a test can change the code and see exactly which steps rerun.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import UsageError
from benchmark.pipeline.commands import format_plan, plan, run
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.records import ResultRecord
from benchmark.registry import REPO_ROOT

PLUGINS = Path(__file__).parent / "plugins"
SCALE = 0.1

TOKENIZER_PLUGIN = '''
from benchmark.plugins import register_tokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer
from helper_bands import BANDS


class EditableMel(MelBandTokenizer):
    """Mel bands whose code the tests edit."""


register_tokenizer("editable-mel", EditableMel, params={"name": "editable-mel", "n_bands": BANDS})
'''
TASK_PLUGIN = '''
from benchmark.tasks.classification import UtteranceClassificationTask


class QuickStyle(UtteranceClassificationTask):
    """Style recognition, from a plugin module named by a card."""
'''


def _task_card(folder: Path, name: str = "quick-style", corpus: str = "mini",
               subset: str = "style") -> Path:  # fmt: skip
    card = folder / f"{name}.yaml"
    card.write_text(
        f"name: {name}\ndescription: style with a tiny budget (tests)\n"
        "class: task_plugin:QuickStyle\n"
        f"params: {{corpus: {corpus}, subset: {subset}, dim: 16, hidden: 16, epochs: 1}}\n"
    )
    return card


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph")
    code = root / "code"
    code.mkdir()
    (code / "tokenizer_plugin.py").write_text(TOKENIZER_PLUGIN)
    (code / "helper_bands.py").write_text("BANDS = 4\n")
    (code / "task_plugin.py").write_text(TASK_PLUGIN)
    card = _task_card(code)
    config = RunConfig(
        tokenizers=("editable-mel",), tasks=(str(card),), workdir=root / "work",
        results_dir=root / "results", corpus_scale=SCALE, progress=False, device="cpu",
        threads=1, plugins=(code / "tokenizer_plugin.py", code / "task_plugin.py"),
    )  # fmt: skip
    outcomes = run(config)
    assert [o.status for o in outcomes] == ["ok"], outcomes
    return root, code, config


def _states(config: RunConfig) -> dict[str, tuple[str, str]]:
    _, graph = plan(config)
    return {step.label: (step.state, step.reason) for step in graph}


def _to_do(config: RunConfig) -> set[str]:
    return {label for label, (state, _) in _states(config).items() if state != "done"}


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    path.write_text(text.replace(old, new))
    return lambda: path.write_text(text)


def test_nothing_changed_reruns_nothing(setup):
    _, _, config = setup
    assert _to_do(config) == set()
    lines = format_plan(plan(config)[1])
    assert lines[-1].endswith("0 to run") and all(line.startswith("done") for line in lines[:-1])


def test_tokenizer_code_change_reruns_its_steps_and_nothing_else(setup):
    _, code, config = setup
    restore = _edit(code / "tokenizer_plugin.py", "whose code", "whose code (edited)")
    try:
        todo = _to_do(config)
        assert "prepare corpus mini (scale 0.1)" not in todo
        assert {
            t for t in todo if t.startswith("extract")
        } and "conformance gate editable-mel" in todo
        assert "job editable-mel / quick-style / seed 0" in todo
    finally:
        restore()
    # a sibling module the plugin imports is code too
    restore = _edit(code / "helper_bands.py", "BANDS = 4", "BANDS = 4  # same value")
    try:
        assert "job editable-mel / quick-style / seed 0" in _to_do(config)
    finally:
        restore()
    assert _to_do(config) == set()


def test_task_code_change_reruns_only_the_job(setup):
    _, code, config = setup
    restore = _edit(code / "task_plugin.py", "from a plugin", "from an edited plugin")
    try:
        states = _states(config)
        todo = {label for label, (state, _) in states.items() if state != "done"}
        assert todo == {"job editable-mel / quick-style / seed 0"}
        assert states["job editable-mel / quick-style / seed 0"][1] == "changed: task.code"
    finally:
        restore()


def test_run_logs_each_step_time_and_the_time_by_kind(setup, caplog):
    _, code, config = setup
    restore = _edit(code / "task_plugin.py", "from a plugin", "from a timed plugin")
    try:
        with caplog.at_level(logging.INFO, logger="benchmark.pipeline.local"):
            run(config)
        messages = [r.getMessage() for r in caplog.records]
        assert any(re.fullmatch(r"job editable-mel / quick-style / seed 0: \d+\.\d s", m)
                   for m in messages), messages  # fmt: skip
        summary = [m for m in messages if m.startswith("time by step kind: ")]
        assert len(summary) == 1 and re.search(r"job \d+ s \(1\); total \d+ s$", summary[0])
    finally:
        restore()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benchmark.pipeline.local"):
        run(config)  # back to the original code: that record was overwritten, so it reruns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benchmark.pipeline.local"):
        run(config)  # warm: nothing runs, nothing is timed
    assert not [r for r in caplog.records if "time by step kind" in r.getMessage()]


def test_library_version_and_tokenizer_state_changes_rerun(setup, monkeypatch):
    _, _, config = setup
    import benchmark.pipeline.plan as plan_module
    from benchmark.tokenizers.dummy import MelBandTokenizer

    real = plan_module.library_versions()
    monkeypatch.setattr(plan_module, "library_versions", lambda: {**real, "torch": "9.9"})
    todo = _to_do(config)
    assert "job editable-mel / quick-style / seed 0" in todo
    assert any(label.startswith("extract") for label in todo)
    monkeypatch.undo()
    assert _to_do(config) == set()
    monkeypatch.setattr(MelBandTokenizer, "state_fingerprint", lambda self: {"version": 99})
    assert any(label.startswith("extract") for label in _to_do(config))


def test_records_from_an_older_harness_are_out_of_date(setup, tmp_path):
    _, _, config = setup
    path = next(Path(config.results_dir).rglob("seed0.json"))
    saved = path.read_text()
    data = json.loads(saved)
    old = {k: v for k, v in data.items() if k not in ("key_components", "per_utterance")}
    path.write_text(json.dumps({**old, "schema_version": 1, "fingerprint": "v1-key"}))
    try:
        state, reason = _states(config)["job editable-mel / quick-style / seed 0"]
        assert state == "to do" and "older harness" in reason
        assert ResultRecord.load(path).schema_version == 2  # still readable, migrated
    finally:
        path.write_text(saved)


def _own_corpus(mini_style: Path, folder: Path) -> None:
    """A user corpus: a few mini style files and manifests, paths relative to the folder."""
    for split in ("train", "valid", "test"):
        lines = mini_style.joinpath(f"{split}.jsonl").read_text().splitlines()[:8]
        out = []
        for line in lines:
            utterance = json.loads(line)
            target = folder / "audio" / Path(utterance["path"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mini_style / utterance["path"], target)
            out.append(json.dumps({**utterance, "path": f"audio/{target.name}"}))
        (folder / f"{split}.jsonl").write_text("\n".join(out) + "\n")


def test_audio_bytes_rerun_extraction_and_moving_the_corpus_reruns_nothing(setup):
    root, code, config = setup
    style = next((Path(config.workdir) / "data").glob("mini-*/style"))
    corpus = root / "mount-a" / "own"
    _own_corpus(style, corpus)
    card = _task_card(code, "own-style", corpus="manifest", subset="own")
    own = RunConfig(**{**config.__dict__, "tasks": (str(card),), "data_root": root / "mount-a"})
    assert [o.status for o in run(own)] == ["ok"]
    assert _to_do(own) == set()
    # one test file's bytes change (same length): its extraction and the job rerun
    test_file = corpus / json.loads((corpus / "test.jsonl").read_text().splitlines()[0])["path"]
    data = bytearray(test_file.read_bytes())
    data[-2] = (data[-2] + 1) % 256
    test_file.write_bytes(bytes(data))
    assert _to_do(own) == {"extract editable-mel manifest/own/test",
                           "job editable-mel / own-style / seed 0"}  # fmt: skip
    assert [o.status for o in run(own)] == ["ok"]
    # the same corpus mounted elsewhere: nothing reruns
    (root / "mount-a").rename(root / "mount-b")
    moved = RunConfig(**{**own.__dict__, "data_root": root / "mount-b"})
    assert _to_do(moved) == set()


@pytest.mark.parametrize(
    ("name", "check"),
    [("double-rate", "frame-rate"), ("jitter", "determinism"), ("float-ids", "encode-shape")],
)
def test_run_refuses_a_tokenizer_that_fails_the_gate(setup, tmp_path, name, check):
    _, _code, config = setup
    gate = RunConfig(**{**config.__dict__, "tokenizers": (name,),
                        "plugins": (*config.plugins, PLUGINS / "gate_plugin.py"),
                        "results_dir": tmp_path / "results"})  # fmt: skip
    outcomes = run(gate)
    assert [o.status for o in outcomes] == ["failed"]
    record = ResultRecord.load(outcomes[0].path)
    assert record.status == "failed" and not record.metrics
    assert f"conformance check {check!r}" in record.error["message"]
    assert "Traceback" in record.error["traceback"]  # a failure keeps its traceback
    assert record.conformance["failed"][0]["check"] == check
    assert not list((Path(gate.workdir) / "tokens").glob("*/*/meta.json")) or all(
        name not in p.read_text() for p in (Path(gate.workdir) / "tokens").glob("*/*/meta.json")
    )


def test_records_carry_conformance_keys_and_baselines(setup):
    _, _, config = setup
    record = ResultRecord.load(next(Path(config.results_dir).rglob("seed0.json")))
    assert record.conformance["suite_version"] == 1 and "frame-rate" in record.conformance["passed"]
    assert set(record.key_components) >= {"tokenizer", "task", "manifests", "seed", "libraries"}
    assert record.metrics["accuracy"].split == "test"
    assert set(record.baselines) == {"chance", "majority-class"}
    assert record.baselines["chance"]["accuracy"].value == pytest.approx(25.0)
    scores = record.per_utterance["accuracy"]
    assert len(scores.ids) == record.metrics["accuracy"].n
    assert 100 * sum(scores.num) / sum(scores.den) == pytest.approx(record.main_value)
    assert record.provenance["code"]["source_sha256"]


def test_parameter_typos_and_bad_classes_are_usage_errors(setup, tmp_path):
    _, _code, config = setup
    typo = RunConfig(**{**config.__dict__, "task_params": (("epochz", 1),)})
    with pytest.raises(UsageError, match=r"does not accept parameters \['epochz'\].*epochs"):
        plan(typo)
    zero = RunConfig(**{**config.__dict__, "task_params": (("epochs", 0),)})
    with pytest.raises(UsageError, match="epochs must be a positive integer"):
        plan(zero)
    ghost = tmp_path / "ghost.yaml"
    ghost.write_text("name: ghost\ndescription: x\nclass: no_such_module:Task\n")
    cli = subprocess.run(
        [sys.executable, "-m", "benchmark", "plan", "--tokenizer", "dummy", "--task", str(ghost),
         "--workdir", str(config.workdir), "--corpus-scale", str(SCALE)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 2 and "cannot import 'no_such_module'" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
    long = tmp_path / "long.yaml"
    long.write_text(f"name: {'a' * 120}\ndescription: x\nclass: a.b:C\n")
    cli = subprocess.run(
        [sys.executable, "-m", "benchmark", "plan", "--tokenizer", str(long), "--task", "emotion"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 2 and "keep them to 100" in cli.stderr


def test_plan_shows_pending_steps_before_the_corpus_exists(tmp_path):
    config = RunConfig(tokenizers=("dummy", "kmeans-logmel"), tasks=("all",),
                       workdir=tmp_path / "w", results_dir=tmp_path / "r",
                       corpus_scale=0.05, progress=False, device="cpu")  # fmt: skip
    _, graph = plan(config)
    states = {step.label: step.state for step in graph}
    assert states["prepare corpus mini (scale 0.05)"] == "to do"
    jobs = [s for s in graph if s.kind == "job"]
    assert len(jobs) == 2 * len(set(s.spec["task_name"] for s in jobs)) >= 6
    assert all(s.state == "pending" for s in jobs)
    assert not (tmp_path / "w" / "data").exists()  # plan prepares nothing

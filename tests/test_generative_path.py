"""The generative path: clean views, generate and score as separate steps, baseline rows,
examples beside the record, unavailable decoders, the vocoder step of a tokenizer that cannot
decode.

One shrunk mini corpus is shared by the module; the tasks use cheap judges (PESQ, STOI,
DNSMOS), so no mini judge is trained here (tests/test_mini_judges.py covers those).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.data.manifest import Manifest, Utterance
from benchmark.data.views import clean_view
from benchmark.errors import DataError
from benchmark.pipeline.commands import plan, run
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.records import ResultRecord

SCALE = 0.1
CHEAP = "[pesq, stoi, dnsmos_ovrl]"


def _card(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(body)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("generative")
    cards = root / "cards"
    cards.mkdir()
    enhance = _card(cards, "quick-enhance", (
        "name: quick-enhance\ndescription: enhancement with a tiny budget (tests)\n"
        "class: benchmark.tasks.enhancement:EnhancementTask\n"
        f"params: {{corpus: mini, subset: enhance, metrics: {CHEAP}, main_metric: stoi, "
        "dim: 16, layers: 1, heads: 2, ff: 32, epochs: 1, batch_size: 8}\n"
    ))  # fmt: skip
    resynth = _card(cards, "quick-resynth", (
        "name: quick-resynth\ndescription: resynthesis of a few utterances (tests)\n"
        "class: benchmark.tasks.resynthesis:ResynthesisTask\n"
        f"params: {{corpus: mini, subset: asr, metrics: {CHEAP}, main_metric: stoi, "
        "max_utterances: 3}\n"
    ))  # fmt: skip
    config = RunConfig(
        tokenizers=("dmel", "continuous-logmel"), tasks=(str(enhance), str(resynth)),
        workdir=root / "work", results_dir=root / "results", corpus_scale=SCALE,
        progress=False, device="cpu", threads=1,
    )  # fmt: skip
    outcomes = run(config)
    return root, config, {(o.tokenizer, o.task): o for o in outcomes}


def _record(config: RunConfig, tokenizer: str, task: str) -> tuple[Path, ResultRecord]:
    path = Path(config.results_dir) / "mini" / tokenizer / task / "seed0.json"
    return path, ResultRecord.load(path)


def test_clean_view_swaps_twins_and_refuses_plain_manifests(tmp_path):
    noisy = Utterance("a", "noisy/a.wav", 1.0, 16000, extra={"clean_path": "clean/a.wav"})
    view = clean_view(Manifest((noisy,), root=tmp_path, source=tmp_path / "test.jsonl"))
    assert view.audio_path(view.utterances[0]) == tmp_path / "clean" / "a.wav"
    assert view.utterances[0].extra["noisy_path"] == "noisy/a.wav"
    # a relative root (a relative --workdir) resolves once, not twice
    relative = clean_view(Manifest((noisy,), root=Path("work/enhance"), source=None))
    assert relative.audio_path(relative.utterances[0]) == Path("work/enhance/clean/a.wav")
    plain = Manifest((Utterance("b", "b.wav", 1.0, 16000),), root=tmp_path, source=tmp_path)
    with pytest.raises(DataError, match="no extra.clean_path"):
        clean_view(plain)


def test_enhancement_record_scores_output_and_baseline_rows(setup):
    _, config, _ = setup
    path, record = _record(config, "dmel", "quick-enhance")
    assert record.status == "ok", record.error
    assert record.main_metric == "stoi"
    assert set(record.metrics) == {"pesq", "stoi", "dnsmos_ovrl"}
    assert set(record.baselines) == {"noisy input", "resynthesis ceiling", "ground truth"}
    stoi = record.metrics["stoi"]
    assert stoi.status == "ok" and 0.0 < stoi.value <= 1.0 and stoi.n >= 2
    # the clean twin against itself: STOI 1 and PESQ at its ceiling; noisy input below
    truth, noisy = record.baselines["ground truth"], record.baselines["noisy input"]
    assert truth["stoi"].value == pytest.approx(1.0, abs=1e-6)
    assert noisy["stoi"].value < truth["stoi"].value
    assert truth["pesq"].value > noisy["pesq"].value
    assert len(record.per_utterance["stoi"].ids) == stoi.n
    assert set(record.extras["beats_baselines"]) == set(record.baselines)
    assert record.extras["decoder"]["decoder"] == "tokenizer"
    assert 0.0 < record.extras["noisy_token_accuracy"] < 1.0  # noise changes some tokens
    # examples beside the record, for listening
    labels = {e["label"] for e in record.extras["examples"]}
    assert labels == {"generated", "noisy input", "resynthesis ceiling"}
    for example in record.extras["examples"]:
        assert (path.parent / example["audio"]).stat().st_size > 44
        assert (path.parent / example["reference"]).is_file()


def test_resynthesis_of_a_decoder_is_close_to_the_original(setup):
    _, config, _ = setup
    _, record = _record(config, "dmel", "quick-resynth")
    assert record.status == "ok", record.error
    assert record.metrics["stoi"].n == 3
    assert set(record.baselines) == {"ground truth"}
    # dmel's decoder keeps most of the intelligibility of clean speech
    assert 0.3 < record.metrics["stoi"].value < 1.0


def test_continuous_reference_is_unavailable_with_the_reason(setup):
    _, config, _ = setup
    _, record = _record(config, "continuous-logmel", "quick-resynth")
    assert record.status == "unavailable"
    assert "no tokens to decode" in record.error["message"]
    # an expected state: one line, no worker traceback in the record
    assert set(record.error) == {"type", "message"}


def test_rescoring_with_other_metrics_does_not_regenerate(setup):
    _, config, _ = setup
    card = Path(config.tasks[1])
    text = card.read_text()
    card.write_text(text.replace(CHEAP, "[pesq, stoi]"))
    try:
        _, graph = plan(RunConfig(**{**config.__dict__, "tokenizers": ("dmel",)}))
        states = {step.label: step.state for step in graph}
        assert states["generate dmel / quick-resynth / seed 0"] == "done"
        assert states["job dmel / quick-resynth / seed 0"] == "to do"
    finally:
        card.write_text(text)
    _, graph = plan(config)
    assert graph.needed() == [], [(s.label, s.reason) for s in graph.needed()]


def test_a_tokenizer_that_cannot_decode_gets_a_vocoder_step(setup, tmp_path):
    _, config, _ = setup
    plugin = tmp_path / "mute_plugin.py"
    plugin.write_text(
        "from dataclasses import replace\n"
        "from benchmark.plugins import register_tokenizer\n"
        "from benchmark.tokenizers.dummy import MelBandTokenizer\n\n\n"
        "class MuteBands(MelBandTokenizer):\n"
        "    def __init__(self, **kw):\n"
        "        super().__init__(**kw)\n"
        "        self.info = replace(self.info, can_decode=False)\n\n\n"
        "register_tokenizer('mute-320', MuteBands, params={'name': 'mute-320', "
        "'hop_length': 320})\n"
        "register_tokenizer('mute-160', MuteBands, params={'name': 'mute-160', "
        "'hop_length': 160})\n"
    )
    mute = RunConfig(**{**config.__dict__, "tokenizers": ("mute-320", "mute-160"),
                        "tasks": (config.tasks[1],), "plugins": (plugin,)})  # fmt: skip
    _, graph = plan(mute)
    by_label = {step.label: step for step in graph}
    vocoder = next(s for s in graph if s.kind == "vocoder")
    assert "mute-320" in vocoder.label and vocoder.state == "to do"
    assert {graph.steps[i].kind for i in vocoder.inputs} == {"extract"}
    generate = by_label["generate mute-320 / quick-resynth / seed 0"]
    assert vocoder.id in generate.inputs
    # a frame rate the mini vocoder cannot upsample: unavailable, nothing to run for it
    job = by_label["job mute-160 / quick-resynth / seed 0"]
    assert (
        job.spec["build_error"]["unavailable"]
        and "upsamples by 320" in (job.spec["build_error"]["message"])
    )
    assert job.inputs == ()
    assert json.dumps(vocoder.spec)  # a JSON-ready spec: any executor can run it


def test_reference_rows_are_one_step_per_task_that_no_tokenizer_owns(setup):
    _, config, _ = setup
    two = RunConfig(**{**config.__dict__, "tokenizers": ("dmel", "dummy")})
    _, graph = plan(two)
    references = [s for s in graph if s.kind == "reference-scores"]
    assert len(references) == 2, [s.label for s in references]  # one per task, not per cell
    assert not any("dmel" in s.label or "dummy" in s.label for s in references)
    for step in references:
        assert {graph.steps[i].kind for i in step.inputs} <= {"prepare", "judge"}
        waiting = [s.label for s in graph if s.kind == "job" and step.id in s.inputs]
        assert len(waiting) == 2, waiting  # both tokenizers' jobs read its scores
    # dmel's ran with its records; dummy's jobs find them done
    assert all(s.state == "done" for s in references)
    summary = json.loads((references[0].output / "STEP.json").read_text())["summary"]
    assert summary["stoi"]["status"] == "ok" and summary["stoi"]["judged"] > 0


def test_reference_rows_are_the_rows_and_references_the_job_scores(setup):
    """What reference_rows() lists (from the manifests alone) is what run() reported: the
    same files, judged against the same reference audio, text and speaker audio; so the job
    finds every reference score in the cache."""
    _, config, _ = setup
    for task in ("quick-enhance", "quick-resynth"):
        _, record = _record(config, "dmel", task)
        folder = Path(record.extras["generated_dir"])
        items = {i["id"]: i for i in json.loads((folder / "items.json").read_text())}
        rows = json.loads((folder / "rows.json").read_text())
        _, graph = plan(config)
        step = next(s for s in graph if s.kind == "reference-scores" and task in s.label)
        from benchmark.pipeline.commands import make_env
        from benchmark.pipeline.steps import _manifest

        env = make_env(config)
        manifests = {n: _manifest(d, env) for n, d in step.spec["splits"].items()}
        listed = env.task(step.spec["task"]).reference_rows(manifests)
        assert set(listed) == set(rows) - {"resynthesis ceiling"}
        for name, row in listed.items():
            assert {r.id: str(r.audio) for r in row} == rows[name]
            for r in row:
                item = items[r.id]
                assert (str(r.reference_audio), r.reference_text, str(r.speaker_audio)) == (
                    item["reference_audio"],
                    item["reference_text"],
                    item["speaker_audio"],
                )

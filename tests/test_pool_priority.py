"""The ``--jobs`` pool's order of ready steps: the costliest chain first."""

from __future__ import annotations

from pathlib import Path

from benchmark.pipeline.graph import Step
from benchmark.pipeline.pool import critical_path_priority


def _step(step_id: str, kind: str, *inputs: str) -> Step:
    return Step(step_id, kind, step_id, {}, tuple(inputs), Path(step_id))  # type: ignore[arg-type]


def test_the_pretraining_chain_outranks_a_judge_and_a_job_its_extraction():
    steps = [
        _step("prepare", "prepare"),
        _step("judge", "judge", "prepare"),
        _step("pretrain", "pretrain", "prepare"),
        _step("fit", "fit", "pretrain"),
        _step("extract", "extract", "fit"),
        _step("asr", "job", "extract"),
        _step("scoring", "job", "judge"),
    ]
    priority = critical_path_priority(steps)
    assert priority["pretrain"] > priority["judge"] > priority["scoring"]
    # a step heads its own chain: every step above it costs more
    assert priority["prepare"] > priority["pretrain"] > priority["fit"] > priority["extract"]
    assert priority["extract"] > priority["asr"] == priority["scoring"]


def test_a_long_job_starts_before_the_extractions_and_vocoder_it_does_not_need():
    """The cold main run: with every job weighing the same, the ASR head (the longest job)
    waited 3 min behind extractions and the vocoder whose chains looked longer, and finished
    last. A task's SCHEDULE_COST puts its job first."""
    from benchmark.tasks.asr import ASRTask

    steps = [
        _step("extract-asr", "extract"),
        _step("extract-tts", "extract"),
        _step("vocoder", "vocoder", "extract-asr"),
        _step("generate", "generate", "vocoder", "extract-tts"),
        _step("scoring", "job", "generate"),
        _step("asr", "job", "extract-asr"),
    ]
    assert critical_path_priority(steps)["asr"] < critical_path_priority(steps)["extract-tts"]
    steps[-1].cost = ASRTask.SCHEDULE_COST
    priority = critical_path_priority(steps)
    assert priority["asr"] > priority["extract-tts"] and priority["asr"] > priority["vocoder"]

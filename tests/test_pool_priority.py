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

"""The vocoder study on the study machinery: single-layer vs scalable vocoders per tokenizer.

A study file with a ``vocoder`` block instead of ``tasks`` plans, for every tokenizer
variant of the file and every seed, the steps of
:meth:`~benchmark.pipeline.plan_generative.GenerativePlanning.plan_vocoder_study` into one
graph: the tokenizer's fit and the extraction of the preset's vocoder corpus, one ``vocoder``
step per codebook (trained on that codebook alone), one scalable ``vocoder`` step (all
codebooks, layer dropout), and a ``vocoder-eval`` step decoding the validation split with
each of them, each codebook alone and all together. The graph runs on the chosen executor
(in process, ``--jobs N``, or Ray), each vocoder cached by its key like any step. The rows
(one per tokenizer x seed x vocoder x decoded layers, the mel distance) and a summary over
seeds go into the same kind of ``study`` record as a grid of jobs, under
``<results>/<preset>/studies/<name>.record.json``, rewritten only when an eval step's key
changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from benchmark.errors import UsageError
from benchmark.pipeline.commands import Executor, run_planned
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import StepGraph
from benchmark.pipeline.keys import key_of
from benchmark.pipeline.plan import Planner
from benchmark.pipeline.records import ResultRecord
from benchmark.registry import Registries
from benchmark.studies.run import STUDY_TOKENIZER, StudyResult, record_path_of
from benchmark.studies.schema import Study

log = logging.getLogger(__name__)


def study_overrides(study: Study) -> dict[str, Any]:
    """The vocoder preset fields the study's ``vocoder`` block changes."""
    settings = study.vocoder or {}
    return {k: settings[k] for k in ("steps", "corpus", "adversarial_steps")
            if settings.get(k) is not None}  # fmt: skip


def plan_vocoder_study(env: StepEnv, study: Study) -> tuple[StepGraph, list[tuple]]:
    """Every tokenizer variant and seed of the study in one graph; with, for each, its
    ``(tokenizer ref, params, seed, eval step id)`` (None while a corpus is not prepared)."""
    graph = StepGraph()
    evals = []
    overrides = study_overrides(study)
    for axis in study.tokenizers:
        for params in axis.variants:
            config = dataclasses.replace(
                env.config, tokenizers=(axis.ref,), tasks=(), tokenizer_params=(),
                tokenizer_overrides={axis.ref: dict(params)},
            )  # fmt: skip
            planner = Planner(env, config, graph)
            for seed in study.seeds:
                step_id = planner.plan_vocoder_study(axis.ref, overrides, seed)
                evals.append((axis.ref, dict(params), seed, step_id))
    return graph, evals


def run_vocoder_study(
    study: Study,
    base: RunConfig,
    registries: Registries | None = None,
    executor: Executor | None = None,
) -> StudyResult:
    """Train and compare the vocoders of every tokenizer variant and seed of ``study``.

    Raises:
        UsageError: the study has no ``vocoder`` block.
    """
    if study.vocoder is None:
        raise UsageError(f"{study.path}: not a vocoder study (no 'vocoder' block)")
    base = dataclasses.replace(base, tokenizers=(), tasks=(), preset=study.preset)
    planned: dict[str, Any] = {}

    def planner(env: StepEnv) -> StepGraph:
        graph, evals = plan_vocoder_study(env, study)
        planned.update(graph=graph, evals=evals)
        return graph

    run_planned(base, planner, registries, executor)
    graph, evals = planned["graph"], planned["evals"]
    ran = sum(
        step.kind in ("vocoder", "vocoder-eval") and step.state != "done"
        for step in graph.steps.values()
    )
    rows: list[dict[str, Any]] = []
    tables = []
    for ref, params, seed, step_id in evals:
        if step_id is None:
            raise UsageError(f"{study.path}: the corpus of {ref!r} is still not prepared")
        step = graph.steps[step_id]
        table = json.loads((step.output / "table.json").read_text())
        tables.append(table)
        rows.extend(_rows(step.spec["tokenizer_name"], ref, params, seed, table))
    summary = summarise(rows)
    fingerprint = key_of({"study": study.sha256,
                          "evals": [graph.steps[e[3]].key for e in evals]})  # fmt: skip
    path = record_path_of(base.results_dir, study.preset, study.name)
    old = ResultRecord.load_or_none(path)
    if old is not None and old.fingerprint == fingerprint and old.status == "ok":
        log.info("vocoder study %s is up to date", study.name)
        return StudyResult(
            old.extras["rows"], old.extras["table"], old, path, [], False, ran, "vocoder steps"
        )
    record = ResultRecord(
        status="ok",
        tokenizer=STUDY_TOKENIZER,
        task=study.name,
        seed=0,
        preset=study.preset,
        fingerprint=fingerprint,
        kind="study",
        extras={
            "study": study.to_dict(),
            "table": summary,
            "columns": list(summary[0]) if summary else [],
            "rows": rows,
            "vocoder": tables,
        },
    )
    record.to_disk(path)
    return StudyResult(rows, summary, record, path, [], True, ran, "vocoder steps")


def _rows(name: str, ref: str, params, seed: int, table: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in table["rows"]:
        for column in table["columns"]:
            cell = row["cells"].get(column) or {}
            ok = cell.get("status") == "ok"
            rows.append(
                {
                    "tokenizer": name,
                    "tokenizer_ref": ref,
                    "tokenizer_params": dict(params),
                    "seed": seed,
                    "vocoder": row["vocoder"],
                    "decoded": column,
                    "metric": "mel_distance",
                    "status": cell.get("status", "missing"),
                    "value": cell.get("value") if ok else None,
                    "reason": None if ok else cell.get("reason"),
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean mel distance over seeds: one row per (tokenizer, vocoder), one column per
    decoded layer set (None where that vocoder cannot decode it)."""
    import pandas as pd

    if not rows:
        return []
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(
        index=["tokenizer", "vocoder"], columns="decoded", values="value", aggfunc="mean",
        sort=False, dropna=False,
    )  # fmt: skip
    columns = list(dict.fromkeys(r["decoded"] for r in rows))
    table = table.reindex(columns=columns).reset_index()
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]

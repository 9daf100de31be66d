"""Run a study: every cell planned into one step graph, executed, tabulated, recorded.

Each cell becomes the :class:`~benchmark.pipeline.config.RunConfig` of a plain ``run`` with
that tokenizer (its parameters as a per-tokenizer override), that task (its parameters as
``task_params``) and the study's seeds; all of them are planned into one
:class:`~benchmark.pipeline.graph.StepGraph`, so a corpus, a k-means fit or a token
extraction that several cells share is one step, and a cell is the same job (same record
path, same fingerprint) as the ``run`` command line it stands for. The graph goes to the
chosen executor (in process or Ray). The rows, one per (cell, seed), are read back from
the records; the table is their summary over seeds (mean and standard deviation of the main
metric, seeds ok). Both are kept in a ``study`` record at
``<results>/<preset>/studies/<name>.record.json`` (``extras``: ``table`` and ``columns``,
what the leaderboard shows; ``rows``; ``failed_cells``; ``study``), rewritten only when a
cell's record changed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from benchmark.pipeline.commands import Executor, run_planned
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import StepGraph
from benchmark.pipeline.keys import key_of
from benchmark.pipeline.local import JobOutcome
from benchmark.pipeline.plan import Planner
from benchmark.pipeline.records import ResultRecord
from benchmark.registry import Registries
from benchmark.studies.schema import Cell, Study

log = logging.getLogger(__name__)

#: The ``tokenizer`` field of a study record (its ``task`` is the study's name).
STUDY_TOKENIZER = "study"


@dataclasses.dataclass
class StudyResult:
    """A finished study: its rows, the summary over seeds, the record and what ran.

    Attributes:
        outcomes: the jobs of a grid study (a vocoder study has none).
        ran: how many of the study's own steps ran now (grid: jobs; vocoder study: its
            ``vocoder`` and ``vocoder-eval`` steps), the others were up to date.
        ran_what: what :attr:`ran` counts, for the command's summary line.
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    record: ResultRecord
    path: Path
    outcomes: list[JobOutcome]
    written: bool
    ran: int = 0
    ran_what: str = "jobs"


def cell_config(base: RunConfig, study: Study, cell: Cell) -> RunConfig:
    """The ``run`` command line of one cell."""
    return dataclasses.replace(
        base,
        tokenizers=(cell.tokenizer,),
        tasks=(cell.task,),
        seeds=study.seeds,
        tokenizer_params=(),
        tokenizer_overrides={cell.tokenizer: dict(cell.tokenizer_params)},
        task_params=cell.task_params,
    )


def plan_study(env: StepEnv, study: Study) -> tuple[StepGraph, list[tuple[Cell, list[str]]]]:
    """Every cell of the study in one graph; with each cell's job step ids (one per seed)."""
    graph = StepGraph()
    jobs: list[tuple[Cell, list[str]]] = []
    for cell in study.cells():
        before = {step.id for step in graph.goals()}
        Planner(env, cell_config(env.config, study, cell), graph).plan()
        jobs.append((cell, [s.id for s in graph.goals() if s.id not in before]))
    return graph, jobs


def record_path_of(results_dir: Path, preset: str, name: str) -> Path:
    """Where a study's record lives."""
    return Path(results_dir) / preset / "studies" / f"{name}.record.json"


def run_study(
    study: Study,
    base: RunConfig,
    registries: Registries | None = None,
    executor: Executor | None = None,
) -> StudyResult:
    """Plan, execute and tabulate a study; write its record when something changed.

    Args:
        study: the validated study (for ``base.preset``).
        base: everything but the cells: preset, workdir, results, device, threads...
        registries: the registries (default: built from ``base.plugins``).
        executor: ``local`` (default) or ``ray``.
    """
    base = dataclasses.replace(base, tokenizers=(), tasks=(), preset=study.preset)
    planned: dict[str, Any] = {}

    def planner(env: StepEnv) -> StepGraph:
        graph, jobs = plan_study(env, study)
        planned.update(graph=graph, jobs=jobs)
        return graph

    outcomes = run_planned(base, planner, registries, executor)
    graph, jobs = planned["graph"], planned["jobs"]
    rows = [_row(cell, graph.steps[step_id].output, graph.steps[step_id].key)
            for cell, ids in jobs for step_id in ids]  # fmt: skip
    summary = summarise(rows)
    path = record_path_of(base.results_dir, study.preset, study.name)
    record = _record(study, rows, summary)
    old = ResultRecord.load_or_none(path)
    written = old is None or old.fingerprint != record.fingerprint
    if written:
        record.to_disk(path)
    else:
        record = old
    ran = sum(not o.skipped for o in outcomes)
    return StudyResult(rows, summary, record, path, outcomes, written, ran)


def _row(cell: Cell, path: Path, key: str) -> dict[str, Any]:
    record = ResultRecord.load_or_none(path)
    row: dict[str, Any] = {
        "tokenizer": record.tokenizer if record else cell.tokenizer,
        "tokenizer_params": dict(cell.tokenizer_params),
        "task": record.task if record else cell.task,
        "task_params": dict(cell.task_params),
        "seed": record.seed if record else None,
        "status": record.status if record else "missing",
        "metric": record.main_metric if record else None,
        "value": record.main_value if record else None,
        "fingerprint": record.fingerprint if record else None,
        "up_to_date": record is not None and record.fingerprint == key,
        "record": str(path),
    }
    if record is not None and record.error:
        row["error"] = record.error.get("message")
    return row


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "(card)"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the main metric over seeds, one row per cell."""
    import pandas as pd

    if not rows:
        return []
    frame = pd.DataFrame(
        {
            "tokenizer": [r["tokenizer"] for r in rows],
            "tokenizer params": [_label(r["tokenizer_params"]) for r in rows],
            "task": [r["task"] for r in rows],
            "task params": [_label(r["task_params"]) for r in rows],
            "metric": [r["metric"] or "" for r in rows],
            "value": [r["value"] if r["status"] == "ok" else None for r in rows],
            "ok": [r["status"] == "ok" for r in rows],
        }
    )
    keys = ["tokenizer", "tokenizer params", "task", "task params", "metric"]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    table = grouped.agg(
        mean=("value", "mean"), std=("value", "std"), seeds_ok=("ok", "sum"), seeds=("ok", "size")
    ).reset_index()
    table["seeds_ok"] = table["seeds_ok"].astype(int)
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]


def format_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a text table (pandas)."""
    import pandas as pd

    if not summary:
        return "(no cells)"
    frame = pd.DataFrame(summary)
    return frame.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")


def _record(study: Study, rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> Any:
    """The study record: the summary in ``extras["table"]`` (what the leaderboard shows,
    column order in ``extras["columns"]``), one row per cell and seed in ``extras["rows"]``.
    It is ``ok`` when some cell is; the cells that are not are listed with their errors."""
    # cells by name, not by path: the same study in another results folder is the same
    cells = sorted((r["tokenizer"], r["task"], r["seed"] if r["seed"] is not None else -1,
                    r["fingerprint"] or "", r["status"]) for r in rows)  # fmt: skip
    failed = [
        {k: r.get(k) for k in ("tokenizer", "task", "seed", "status", "error")}
        for r in rows
        if r["status"] != "ok"
    ]
    record = ResultRecord(
        status="ok" if len(failed) < len(rows) else "failed",
        tokenizer=STUDY_TOKENIZER,
        task=study.name,
        seed=0,
        preset=study.preset,
        fingerprint=key_of({"study": study.sha256, "cells": cells}),
        kind="study",
        extras={
            "study": study.to_dict(),
            "table": summary,
            "columns": list(summary[0]) if summary else [],
            "rows": rows,
            "failed_cells": failed,
        },
        key_components={"study": study.sha256, "cells": cells},
    )
    if record.status != "ok":
        first = failed[0] if failed else {}
        record.error = {
            "type": "StudyCellsFailed",
            "message": f"no cell of the study is ok (first: {first.get('tokenizer')} / "
            f"{first.get('task')} / seed {first.get('seed')}: "
            f"{first.get('error') or first.get('status')})",
        }
    return record

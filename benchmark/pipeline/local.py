"""The in-process executor: runs a planned graph step by step, in dependency order.

Each needed step runs with its output's lock held (:func:`~benchmark.pipeline.store.output_lock`)
and is re-checked under the lock, so two processes on one workdir wait for each other instead
of computing a step twice. A step that raises is recorded and the run goes on: jobs that
needed it get a ``failed`` (or ``unavailable``) record naming the step and its error, unless
``fail_fast`` stops the run.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import BenchmarkError
from benchmark.pipeline import distributed
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import RECORD_KINDS, Step, StepGraph
from benchmark.pipeline.records import ResultRecord
from benchmark.pipeline.status import is_done
from benchmark.pipeline.steps import UpstreamError, failure_record, run_step
from benchmark.pipeline.store import StoreWriteError, output_lock

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """One finished (or skipped) job, for the command's summary."""

    tokenizer: str
    task: str
    seed: int
    status: str
    path: Path
    skipped: bool = False
    main_metric: str | None = None
    value: float | None = None
    error: str | None = None


class FailFast(BenchmarkError):
    """``--fail-fast``: a step failed and the run stopped there."""


def execute(graph: StepGraph, env: StepEnv, fail_fast: bool = False) -> list[JobOutcome]:
    """Run the graph's needed steps; return one outcome per job (goal) step."""
    failures: dict[str, BaseException] = {}
    ran: set[str] = set()
    seconds: dict[str, float] = {}
    try:
        for step in graph.needed():
            if upstream_failed(graph, step, env, failures):
                continue
            started = time.perf_counter()
            try:
                run_locked(step, env)
                ran.add(step.id)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a failing step is recorded, the run goes on
                record_failure(step, env, exc, failures, fail_fast)
            finally:
                seconds[step.id] = time.perf_counter() - started
                log.info("%s: %.1f s", step.label, seconds[step.id])
    finally:
        log_time_by_kind(graph, seconds)
    return outcomes(graph, ran, failures)


def log_time_by_kind(graph: StepGraph, seconds: dict[str, float]) -> None:
    """Log the wall time (s) the run spent per step kind, slowest first (nothing if no
    step ran): where a user's time went, and what to cut first."""
    if not seconds:
        return
    by_kind: dict[str, list[float]] = defaultdict(list)
    for step_id, elapsed in seconds.items():
        by_kind[graph.steps[step_id].kind].append(elapsed)
    parts = [f"{kind} {sum(times):.0f} s ({len(times)})"
             for kind, times in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))]  # fmt: skip
    log.info("time by step kind: %s; total %.0f s", ", ".join(parts), sum(seconds.values()))


def upstream_failed(
    graph: StepGraph, step: Step, env: StepEnv, failures: dict[str, BaseException]
) -> bool:
    """Whether a step this one needs failed; if so, record that (a ``failed`` record for a
    job or profile, naming the failed step) and return True."""
    failed_inputs = [i for i in step.inputs if i in failures]
    if not failed_inputs:
        return False
    upstream = graph.steps[failed_inputs[0]]
    cause = failures[failed_inputs[0]]
    error = UpstreamError(f"{upstream.label} failed: {cause}")
    error.__cause__ = cause
    failures[step.id] = error
    if step.kind in RECORD_KINDS:
        _write_failure(step, env, error)
    return True


def record_failure(
    step: Step,
    env: StepEnv,
    exc: BaseException,
    failures: dict[str, BaseException],
    fail_fast: bool = False,
) -> None:
    """A step raised: log it, keep it for its dependents, write a job's ``failed`` record.

    Raises:
        FailFast: with ``fail_fast``.
    """
    log.error("%s failed: %s", step.label, exc)
    log.debug("%s failed", step.label, exc_info=exc)
    failures[step.id] = exc
    if step.kind in RECORD_KINDS and not isinstance(exc, StoreWriteError):
        _write_failure(step, env, exc)
    if fail_fast:
        raise FailFast(f"{step.label} failed: {exc} (--fail-fast)") from exc


def outcomes(
    graph: StepGraph, ran: set[str], failures: dict[str, BaseException]
) -> list[JobOutcome]:
    """One outcome per job or profile goal (a failed non-job goal is raised)."""
    for step in graph.goals():
        if step.kind not in RECORD_KINDS and step.id in failures:
            raise failures[step.id]
    return [_outcome(step, step.id not in ran and step.id not in failures, failures)
            for step in graph.goals() if step.kind in RECORD_KINDS]  # fmt: skip


def run_locked(step: Step, env: StepEnv) -> None:
    """Run one step with its output lock held, unless another process finished it meanwhile.

    Under torchrun, every rank trains a job together: rank 0 holds the job's lock, the
    others run it without (they write nothing).
    """
    ddp = distributed.is_ddp_step(step)
    with distributed.ddp_scope(ddp):
        if ddp and not distributed.is_writer():
            log.info("%s (rank %d)", step.label, distributed.rank())
            run_step(step, env)
            return
        with output_lock(step.output, step.label):
            if (step.kind != "job" or not env.config.overwrite) and is_done(step, env):
                log.info("%s: done by another process", step.label)
                return
            log.info("%s", step.label)
            run_step(step, env)


def _write_failure(step: Step, env: StepEnv, exc: BaseException) -> None:
    if not distributed.is_writer():
        return
    try:
        failure_record(step, env, exc).to_disk(step.output)
    except StoreWriteError as write_error:
        log.error("%s", write_error)


def _outcome(step: Step, skipped: bool, failures: dict[str, BaseException]) -> JobOutcome:
    spec = step.spec
    record = ResultRecord.load_or_none(step.output)
    error = failures.get(step.id)
    if error is not None and (record is None or record.fingerprint != step.key):
        return JobOutcome(spec["tokenizer_name"], spec["task_name"], spec["seed"], "failed",
                          step.output, False, error=str(error))  # fmt: skip
    if record is None and error is None and not distributed.is_writer():
        # torchrun: this rank trained with rank 0, which writes the record
        return JobOutcome(spec["tokenizer_name"], spec["task_name"], spec["seed"], "ok",
                          step.output, skipped)  # fmt: skip
    if record is None:
        return JobOutcome(spec["tokenizer_name"], spec["task_name"], spec["seed"], "failed",
                          step.output, False, error="no record was written")  # fmt: skip
    message = (record.error or {}).get("message")
    return JobOutcome(
        spec["tokenizer_name"], spec["task_name"], spec["seed"], record.status, step.output,
        skipped and record.status == "ok", record.main_metric, record.main_value, message,
    )  # fmt: skip

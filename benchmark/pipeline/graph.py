"""Steps and the graph they form: what the planner builds and an executor runs.

A :class:`Step` is data: its kind, its key (the fingerprint of its named components), the
ids of the steps whose outputs it reads, where it writes, and a JSON-ready ``spec`` holding
every argument its step function needs. No live object travels between steps, so any
executor (in process, or a Ray worker on another machine) can run any step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.pipeline.keys import key_of

StepKind = Literal[
    "prepare",
    "pretrain",
    "fit",
    "conformance",
    "extract",
    "vocoder",
    "vocoder-eval",
    "judge",
    "reference-scores",
    "generate",
    "job",
    "profile",
    "token-stats",
]
#: Step kinds whose output is a result record (a failure is recorded; a goal has an outcome).
RECORD_KINDS: tuple[str, ...] = ("job", "profile", "token-stats")
StepState = Literal["done", "to do", "pending"]


@dataclass
class Step:
    """One unit of work with a fingerprint.

    Attributes:
        id: unique in the graph (``extract:<encoder key>:<manifest key>``, ...).
        kind: which step function runs it.
        label: what ``plan`` prints.
        components: the named inputs its key hashes (stored beside the output, so ``plan``
            can say which changed).
        inputs: ids of the steps it depends on.
        output: the file or folder it writes (atomically).
        spec: JSON-ready arguments of its step function.
        state: ``done`` (output exists with this key), ``to do``, or ``pending`` (its key
            depends on data that a step still has to prepare).
        reason: why it is to do or pending.
        goal: a step the command asked for (a job); others run only when a goal needs them.
        cost: the scheduler's rough weight of the step (None: its kind's,
            :data:`~benchmark.pipeline.pool.KIND_COST`); never part of its key.
    """

    id: str
    kind: StepKind
    label: str
    components: dict[str, Any]
    inputs: tuple[str, ...]
    output: Path
    spec: dict[str, Any] = field(default_factory=dict)
    state: StepState = "to do"
    reason: str = ""
    goal: bool = False
    cost: float | None = None

    @property
    def key(self) -> str:
        """Fingerprint of :attr:`components`."""
        return key_of(self.components) if self.state != "pending" else "pending"


@dataclass
class StepGraph:
    """Steps in dependency order (every step after its inputs)."""

    steps: dict[str, Step] = field(default_factory=dict)

    def add(self, step: Step) -> Step:
        """Add a step (a step already present under the same id is returned instead)."""
        existing = self.steps.get(step.id)
        if existing is not None:
            return existing
        missing = [i for i in step.inputs if i not in self.steps]
        if missing:
            raise ValueError(f"step {step.id}: inputs {missing} are not in the graph")
        self.steps[step.id] = step
        return step

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps.values())

    def __len__(self) -> int:
        return len(self.steps)

    def goals(self) -> list[Step]:
        """The steps the command asked for."""
        return [step for step in self if step.goal]

    def needed(self) -> list[Step]:
        """Steps to execute, in order: to-do goals and the to-do steps they need, transitively.

        A to-do step whose dependents are all done is not needed (a deleted token cache does
        not re-encode when every record that used it is up to date).
        """
        wanted: set[str] = set()
        stack = [step.id for step in self.goals() if step.state != "done"]
        while stack:
            step_id = stack.pop()
            if step_id in wanted:
                continue
            wanted.add(step_id)
            stack.extend(i for i in self.steps[step_id].inputs if self.steps[i].state != "done")
        return [step for step in self if step.id in wanted]

    def dependents(self, step_id: str) -> list[Step]:
        """Every step that needs ``step_id``, directly or not."""
        found: list[Step] = []
        frontier = {step_id}
        for step in self:
            if frontier & set(step.inputs):
                found.append(step)
                frontier.add(step.id)
        return found

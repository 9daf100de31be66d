"""Ranks, rank groups and mean ranks: pure functions of cells (no I/O, no plotting).

The rules (also printed on the page):

1. **Who is ranked.** Within one preset (``mini`` and ``full`` are never ranked together) and
   one bitrate tier (``low``, ``medium``, ``high``; and ``all`` tiers together), every
   discrete tokenizer with a task record. Reference rows are never ranked: continuous
   references (tier ``continuous``), trivial baselines, ground truth and published numbers.
2. **Per task**, on its main metric, in its direction: ok cells get ranks 1..n, ties share
   the mean of their places (``average`` ranking). A **failed** cell (the run or the metric
   raised) is placed after every ok cell, failed cells tied among themselves. An
   **unavailable** cell (weights, data or a capability missing) and a **missing** cell (no
   record) get no rank for that task.
3. **Rank groups**: ok cells in rank order; a paired bootstrap tests each pair of
   neighbours; a new group starts after a significant difference, or where no paired test
   was possible (no per-utterance scores in common), unless the two values are equal.
   Failed cells form the last group.
4. **Mean ranks**: a tokenizer's discriminative (generative) mean rank is the mean of its
   ranks over the discriminative (generative) tasks it was ranked in; its overall mean rank
   is the mean over all tasks it was ranked in. The overall rank is a weighted mean of the
   two group means, so it always lies between them. The coverage column says in how many
   of the preset's tasks it was ranked; rows are ordered by overall mean rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

FAMILIES = ("discriminative", "generative")
TIERS = ("low", "medium", "high")
ALL_TIERS = "all"


@dataclass(frozen=True)
class TaskCell:
    """One tokenizer's main-metric cell in one task: status ``ok``/``failed``/...; value."""

    tokenizer: str
    status: str
    value: float | None = None


def _is_ok(cell: TaskCell) -> bool:
    return cell.status == "ok" and cell.value is not None and math.isfinite(cell.value)


def task_ranks(cells: Sequence[TaskCell], direction: str) -> dict[str, float | None]:
    """Rank one task's cells (rule 2): ``tokenizer -> rank`` (None when not ranked).

    Args:
        cells: one per tokenizer.
        direction: ``higher`` or ``lower`` is better.

    Raises:
        ValueError: a bad direction or a tokenizer given twice.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    names = [c.tokenizer for c in cells]
    if len(set(names)) != len(names):
        raise ValueError(f"task_ranks: a tokenizer appears twice in {names}")
    ok = [c for c in cells if _is_ok(c)]
    ranks: dict[str, float | None] = {c.tokenizer: None for c in cells}
    if ok:
        values = pd.Series([c.value for c in ok], index=[c.tokenizer for c in ok], dtype=float)
        ranked = values.rank(method="average", ascending=direction == "lower")
        ranks.update({name: float(rank) for name, rank in ranked.items()})
    failed = [c for c in cells if c.status == "failed" and not _is_ok(c)]
    for cell in failed:
        ranks[cell.tokenizer] = len(ok) + (len(failed) + 1) / 2.0
    return ranks


def rank_order(cells: Sequence[TaskCell], direction: str) -> list[TaskCell]:
    """Ok cells best first (ties by tokenizer name)."""
    sign = -1.0 if direction == "higher" else 1.0
    return sorted((c for c in cells if _is_ok(c)), key=lambda c: (sign * c.value, c.tokenizer))


@dataclass(frozen=True)
class NeighbourTest:
    """The test between a cell and the next one in rank order."""

    better: str
    worse: str
    significant: bool | None
    p_value: float | None = None
    difference: float | None = None


def rank_groups(
    cells: Sequence[TaskCell],
    direction: str,
    test: Callable[[str, str], tuple[bool, float, float] | None],
) -> tuple[dict[str, int], list[NeighbourTest]]:
    """Rank groups of one task (rule 3).

    Args:
        cells: one per tokenizer.
        direction: ``higher`` or ``lower``.
        test: ``test(better, worse)`` -> ``(significant, p_value, difference)`` of the paired
            bootstrap between two tokenizers, or None when no paired test is possible.

    Returns:
        ``tokenizer -> group`` (1 = best; failed cells in the last group; unavailable and
        missing cells have none) and the neighbour tests in rank order.
    """
    order = rank_order(cells, direction)
    groups: dict[str, int] = {}
    tests: list[NeighbourTest] = []
    group = 1
    for index, cell in enumerate(order):
        if index:
            previous = order[index - 1]
            outcome = test(previous.tokenizer, cell.tokenizer)
            significant = None if outcome is None else bool(outcome[0])
            tests.append(
                NeighbourTest(
                    previous.tokenizer,
                    cell.tokenizer,
                    significant,
                    None if outcome is None else outcome[1],
                    None if outcome is None else outcome[2],
                )
            )
            tied = previous.value == cell.value
            if significant or (significant is None and not tied):
                group += 1
        groups[cell.tokenizer] = group
    failed = [c for c in cells if c.status == "failed" and not _is_ok(c)]
    for cell in failed:
        groups[cell.tokenizer] = group + 1 if order else 1
    return groups, tests


@dataclass
class MeanRank:
    """A tokenizer's mean ranks (rule 4) and coverage."""

    tokenizer: str
    discriminative: float | None
    generative: float | None
    overall: float | None
    ranked: int
    total: int

    @property
    def coverage(self) -> float:
        """Share of the tasks it was ranked in (0..1)."""
        return self.ranked / self.total if self.total else 0.0


def mean_ranks(
    ranks: Mapping[str, Mapping[str, float | None]],
    families: Mapping[str, str],
    tokenizers: Sequence[str],
) -> list[MeanRank]:
    """Mean ranks per family and overall, ordered by overall mean rank then coverage.

    Args:
        ranks: task -> tokenizer -> rank (None or absent when not ranked).
        families: task -> ``discriminative`` / ``generative``.
        tokenizers: the rows.

    Raises:
        ValueError: a task without a known family.
    """
    for task in ranks:
        if families.get(task) not in FAMILIES:
            raise ValueError(f"task {task!r} has no family in {FAMILIES}: {families.get(task)!r}")
    out = []
    for name in tokenizers:
        by_family: dict[str, list[float]] = {f: [] for f in FAMILIES}
        for task, table in ranks.items():
            rank = table.get(name)
            if rank is not None:
                by_family[families[task]].append(rank)
        everything = by_family["discriminative"] + by_family["generative"]
        out.append(
            MeanRank(
                tokenizer=name,
                discriminative=_mean(by_family["discriminative"]),
                generative=_mean(by_family["generative"]),
                overall=_mean(everything),
                ranked=len(everything),
                total=len(ranks),
            )
        )
    return sorted(
        out,
        key=lambda m: (m.overall is None, m.overall or 0.0, -m.coverage, m.tokenizer),
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class TaskRanking:
    """One task's ranking inside a rank table."""

    task: str
    metric: str
    direction: str
    family: str
    cells: dict[str, TaskCell]
    ranks: dict[str, float | None]
    groups: dict[str, int]
    tests: list[NeighbourTest]


@dataclass
class RankTable:
    """Rankings of one (preset, tier): per-task ranks and groups, and mean ranks."""

    preset: str
    tier: str
    tokenizers: list[str]
    tasks: list[TaskRanking] = field(default_factory=list)
    means: list[MeanRank] = field(default_factory=list)


def rank_table(
    preset: str,
    tier: str,
    tokenizers: Sequence[str],
    tasks: Sequence[tuple[str, str, str, str]],
    cells: Mapping[tuple[str, str], TaskCell],
    test: Callable[[str, str, str], tuple[bool, float, float] | None],
) -> RankTable:
    """Rank ``tokenizers`` on ``tasks`` (rules 2-4).

    Args:
        preset, tier: what the table is of.
        tokenizers: the ranked tokenizers (no references).
        tasks: ``(task, main metric, direction, family)`` of every task of the preset.
        cells: ``(tokenizer, task)`` -> main-metric cell; absent pairs are ``missing``.
        test: ``test(task, better, worse)`` as in :func:`rank_groups`.
    """
    table = RankTable(preset, tier, list(tokenizers))
    ranks: dict[str, dict[str, float | None]] = {}
    families: dict[str, str] = {}
    for task, metric, direction, family in tasks:
        row = {name: cells.get((name, task), TaskCell(name, "missing")) for name in tokenizers}
        task_cells = list(row.values())
        ranks[task] = task_ranks(task_cells, direction)
        families[task] = family
        groups, tests = rank_groups(task_cells, direction, lambda a, b, task=task: test(task, a, b))
        table.tasks.append(
            TaskRanking(task, metric, direction, family, row, ranks[task], groups, tests)
        )
    table.means = mean_ranks(ranks, families, tokenizers)
    return table


#: The rules as the page states them (kept beside the code that implements them).
RULES: tuple[str, ...] = (
    "Rankings are computed per preset (mini and full are never ranked together) and per "
    "bitrate tier (low <= 1.5 kbit/s, medium <= 6 kbit/s, high above; and all tiers together "
    "when several are present), from the records, never typed by hand.",
    "Reference rows are shown beside the ranked rows and never ranked: continuous references, "
    "trivial baselines, ground truth and published numbers.",
    "A cell's seeds: the value is the mean over the seeds that gave a value, with their "
    "standard deviation; one seed keeps its 95 % bootstrap interval. A cell with no ok seed is "
    "failed when a seed failed, else unavailable; a tokenizer with no record for a task is "
    "missing there.",
    "Per task, on its main metric in its direction: ties share the mean of their places; a "
    "failed cell is ranked after every ok cell (failed cells tied); unavailable and missing "
    "cells are not ranked.",
    "Rank groups: neighbours in rank order are compared with a paired bootstrap over their "
    "per-utterance scores (1000 resamples, pooled over seeds); a new group starts after a "
    "significant difference (95 % interval of the difference excludes 0), or where no paired "
    "test was possible, unless the values are equal. Failed cells form the last group.",
    "Mean ranks: the mean of a tokenizer's task ranks over the discriminative tasks (ASR, "
    "speaker ID, emotion) and over the generative ones (enhancement, resynthesis, TTS: a task "
    "is generative when its records say it decodes audio) it was ranked in, and over all of "
    "them; the overall mean is a weighted mean of the two, so it always lies between them. "
    "Coverage: tasks ranked / tasks of the preset.",
    "Regression diff (--compare): a cell changed when its interval (CI, or the min-max of "
    "timed runs for profiles) and the other build's do not overlap; without an interval, "
    "when the values differ; status changes and added or removed cells are listed too.",
)

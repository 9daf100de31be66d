"""Cells + per-utterance scores -> rank tables per (preset, tier), with paired significance.

Glue between the frames of :mod:`~benchmark.leaderboard.load`, the rules of
:mod:`~benchmark.leaderboard.ranks` and the test of
:mod:`~benchmark.leaderboard.significance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.leaderboard.load import Results, main_metrics
from benchmark.leaderboard.ranks import ALL_TIERS, TIERS, RankTable, TaskCell, rank_table
from benchmark.leaderboard.significance import paired_bootstrap, pool_seeds
from benchmark.pipeline.records import UtteranceScores

REFERENCE_TIER = "continuous"
UNKNOWN_TIER = "unknown"


@dataclass(frozen=True)
class TaskSpec:
    """A task of one preset: its main metric, direction and family."""

    task: str
    metric: str
    direction: str
    family: str


def tokenizer_tiers(results: Results) -> dict[tuple[str, str], str]:
    """``(preset, tokenizer) -> tier`` (``unknown`` when no record says)."""
    tiers = {}
    for row in results.tokenizers.itertuples():
        tiers[(row.preset, row.tokenizer)] = row.tier if isinstance(row.tier, str) else UNKNOWN_TIER
    return tiers


def preset_tasks(results: Results, cells: pd.DataFrame) -> dict[str, list[TaskSpec]]:
    """``preset -> tasks`` (job tasks with a known main metric), sorted discriminative first."""
    mains = main_metrics(results.metrics[results.metrics["kind"] == "job"])
    specs: dict[str, list[TaskSpec]] = {}
    jobs = cells[cells["kind"] == "job"]
    for (preset, task), group in jobs.groupby(["preset", "task"]):
        main = mains.get((preset, task))
        if main is None:
            continue
        specs.setdefault(preset, []).append(
            TaskSpec(task, main[0], main[1], str(group["family"].iloc[0]))
        )
    for preset in specs:
        specs[preset].sort(key=lambda s: (s.family != "discriminative", s.task))
    return specs


def main_cells(cells: pd.DataFrame, preset: str, specs: list[TaskSpec]) -> dict:
    """``(tokenizer, task) -> TaskCell`` of the main metric of each task of ``preset``."""
    found = {}
    for spec in specs:
        rows = cells[
            (cells["preset"] == preset)
            & (cells["task"] == spec.task)
            & (cells["metric"] == spec.metric)
            & (cells["kind"] == "job")
        ]
        for row in rows.itertuples():
            value = None if pd.isna(row.value) else float(row.value)
            found[(row.tokenizer, spec.task)] = TaskCell(row.tokenizer, row.status, value)
    return found


class PairedTester:
    """Paired bootstraps between tokenizers on one preset's tasks, pooled over ok seeds."""

    def __init__(
        self,
        results: Results,
        cells: pd.DataFrame,
        preset: str,
        specs: list[TaskSpec],
        resamples: int = 1000,
        seed: int = 0,
    ) -> None:
        self.results = results
        self.preset = preset
        self.metric = {s.task: s.metric for s in specs}
        self.resamples = resamples
        self.seed = seed
        self._ok_seeds = {}
        for row in cells[(cells["preset"] == preset) & (cells["status"] == "ok")].itertuples():
            self._ok_seeds[(row.tokenizer, row.task, row.metric)] = set(row.seeds)
        self._pooled: dict[tuple[str, str], UtteranceScores | None] = {}
        self.results_by_pair: dict[tuple[str, str, str], tuple[bool, float, float] | None] = {}

    def pooled(self, tokenizer: str, task: str) -> UtteranceScores | None:
        """Per-utterance scores of the task's main metric, pooled over the ok seeds."""
        key = (tokenizer, task)
        if key not in self._pooled:
            metric = self.metric[task]
            runs = self.results.utterances.get((self.preset, tokenizer, task, metric), [])
            ok = self._ok_seeds.get((tokenizer, task, metric), set())
            self._pooled[key] = pool_seeds([s for seed, s in runs if seed in ok])
        return self._pooled[key]

    def __call__(self, task: str, better: str, worse: str) -> tuple[bool, float, float] | None:
        """``(significant, p, difference)`` between two tokenizers, or None if untestable."""
        key = (task, better, worse)
        if key not in self.results_by_pair:
            a, b = self.pooled(better, task), self.pooled(worse, task)
            outcome = None
            if a is not None and b is not None:
                test = paired_bootstrap(a, b, self.resamples, seed=self.seed)
                if test is not None:
                    outcome = (test.significant, test.p_value, test.difference)
            self.results_by_pair[key] = outcome
        return self.results_by_pair[key]


def build_rankings(
    results: Results, cells: pd.DataFrame, resamples: int = 1000, seed: int = 0
) -> tuple[list[RankTable], dict[str, list[TaskSpec]]]:
    """Rank tables of every preset: ``all`` tiers first when several are present, then one
    per tier.

    Returns:
        ``(tables, tasks per preset)``.
    """
    tiers = tokenizer_tiers(results)
    specs = preset_tasks(results, cells)
    tables = []
    for preset in sorted(specs):
        jobs = cells[(cells["preset"] == preset) & (cells["kind"] == "job")]
        ranked = sorted(
            t for t in jobs["tokenizer"].unique() if tiers.get((preset, t)) != REFERENCE_TIER
        )
        if not ranked:
            continue
        found = main_cells(cells, preset, specs[preset])
        tester = PairedTester(results, cells, preset, specs[preset], resamples, seed)
        tasks = [(s.task, s.metric, s.direction, s.family) for s in specs[preset]]
        present = [
            t for t in (*TIERS, UNKNOWN_TIER) if any(tiers.get((preset, n)) == t for n in ranked)
        ]
        groups = [(t, [n for n in ranked if tiers.get((preset, n)) == t]) for t in present]
        if len(present) > 1:
            groups.insert(0, (ALL_TIERS, ranked))
        for tier, names in groups:
            tables.append(rank_table(preset, tier, names, tasks, found, tester))
    return tables, specs

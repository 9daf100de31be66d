"""Reference rows of a task's table: its trivial baselines and ground truth, never ranked.

A record's ``baselines`` (``{"noisy input": {metric: MetricRecord}, "resynthesis ceiling":
{...}, "ground truth": {...}}``) are scored on the same test set as the record. Some are the
same whoever the tokenizer is (the noisy input, the real recordings); others depend on it
(the resynthesis ceiling decodes the clean targets with that tokenizer's decoder). The rule,
computed from the values: a baseline whose metrics are equal in every tokenizer's record is
one row; otherwise it is one row per tokenizer (``resynthesis ceiling · tok-a``). Of several
seeds of one tokenizer, the first seed's baseline is shown (its record id is in the cell's
provenance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class BaselineRow:
    """One reference row: its name, the tokenizer it belongs to (None: shared) and its
    metric rows (columns of :data:`benchmark.leaderboard.load.METRIC_COLUMNS`)."""

    name: str
    of: str | None
    metrics: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The row's name as shown (``name · tokenizer`` for a per-tokenizer baseline)."""
        return self.name if self.of is None else f"{self.name} \u00b7 {self.of}"


def _signature(group: pd.DataFrame) -> tuple:
    """What must agree for a baseline to be one row: metric, status, value and n."""
    return tuple(
        sorted(
            (
                row.metric,
                row.metric_status,
                None if pd.isna(row.value) else round(row.value, 9),
                None if pd.isna(row.n) else int(row.n),
            )
            for row in group.itertuples(index=False)
        )
    )


def baseline_rows(frame: pd.DataFrame, preset: str, task: str) -> list[BaselineRow]:
    """The reference rows of one (preset, task), by baseline name (see the module rule).

    Args:
        frame: :attr:`benchmark.leaderboard.load.Results.baselines`.
        preset, task: the table's.
    """
    if frame.empty:
        return []
    mine = frame[(frame["preset"] == preset) & (frame["task"] == task)]
    mine = mine.sort_values(["tokenizer", "baseline_of", "seed"], kind="stable")
    mine = mine.drop_duplicates(subset=["tokenizer", "baseline_of", "metric"], keep="first")
    rows = []
    for name, group in mine.groupby("tokenizer", sort=True):
        per_tokenizer = {of: g for of, g in group.groupby("baseline_of", sort=True)}
        shared = len({_signature(g) for g in per_tokenizer.values()}) == 1
        if shared:
            first = next(iter(per_tokenizer.values()))
            rows.append(BaselineRow(str(name), None, {r.metric: r for _, r in first.iterrows()}))
            continue
        for of, g in per_tokenizer.items():
            rows.append(BaselineRow(str(name), str(of), {r.metric: r for _, r in g.iterrows()}))
    return rows

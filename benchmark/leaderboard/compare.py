"""Regression diff between two result sets: which cells changed beyond their intervals.

Cells are matched on (preset, tokenizer, task, seed, metric). The rule:

- both ok, both with an interval (the metric's CI; for profile timings, the min-max of
  their timed runs): **changed** when the intervals do not overlap;
- both ok, an interval missing: **changed (no interval)** when the values differ;
- a status that differs (ok / failed / unavailable): **status**;
- a cell in one set only: **added** or **removed**.

Cells that stayed within their intervals are not listed.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.leaderboard.load import Results
from benchmark.leaderboard.table_model import Column, Row, Table, fmt, number_cell, text_cell

KEYS = ["preset", "tokenizer", "task", "seed", "metric"]
CHANGE_COLUMNS = [*KEYS, "change", "other_value", "other_interval", "value", "interval"]


def _intervals(results: Results) -> pd.DataFrame:
    """Metric rows with ``low``/``high``: the CI, else a profile timing's run spread."""
    frame = results.metrics[results.metrics["metric"].notna()].copy()
    lows, highs = [], []
    for row in frame.itertuples(index=False):
        low, high = row.ci_low, row.ci_high
        if (low is None or pd.isna(low)) and row.kind == "profile":
            spread = results.records[row.rid][1].extras.get("spread", {}).get(row.metric, {})
            low, high = spread.get("min"), spread.get("max")
        lows.append(None if low is None or pd.isna(low) else float(low))
        highs.append(None if high is None or pd.isna(high) else float(high))
    frame["low"], frame["high"] = lows, highs
    frame["state"] = [
        "ok" if s == "ok" and v is not None and not pd.isna(v) else s
        for s, v in zip(frame["metric_status"], frame["value"], strict=True)
    ]
    return frame.drop_duplicates(subset=KEYS, keep="first").set_index(KEYS)


def _interval_text(low: float | None, high: float | None) -> str:
    return "" if low is None else f"[{fmt(low)}, {fmt(high)}]"


def compare_results(current: Results, other: Results) -> pd.DataFrame:
    """Cells of ``current`` that changed against ``other`` (see the module docstring).

    Returns:
        One row per changed cell, columns :data:`CHANGE_COLUMNS`.
    """
    mine, theirs = _intervals(current), _intervals(other)
    rows = []
    for key in sorted(set(mine.index) | set(theirs.index), key=lambda k: tuple(map(str, k))):
        a = mine.loc[key] if key in mine.index else None
        b = theirs.loc[key] if key in theirs.index else None
        change = None
        if a is None:
            change = "removed"
        elif b is None:
            change = "added"
        elif a["state"] != b["state"]:
            change = f"status {b['state']} -> {a['state']}"
        elif a["state"] == "ok":
            if None not in (a["low"], b["low"]):
                if a["low"] > b["high"] or b["low"] > a["high"]:
                    change = "changed"
            elif not math.isclose(float(a["value"]), float(b["value"]), rel_tol=1e-9):
                change = "changed (no interval)"
        if change is None:
            continue
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "change": change,
                "other_value": None if b is None else _value(b),
                "other_interval": "" if b is None else _interval_text(b["low"], b["high"]),
                "value": None if a is None else _value(a),
                "interval": "" if a is None else _interval_text(a["low"], a["high"]),
            }
        )
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def _value(row: pd.Series) -> float | None:
    value = row["value"]
    return None if value is None or pd.isna(value) else float(value)


def format_changes(changes: pd.DataFrame, other: str) -> list[str]:
    """Lines for the terminal: one per changed cell, or one saying nothing changed."""
    if changes.empty:
        return [f"no cell changed beyond its interval against {other}"]
    lines = [f"{len(changes)} cell(s) changed against {other}:"]
    for row in changes.itertuples(index=False):
        lines.append(
            f"  {row.preset} / {row.tokenizer} / {row.task} / seed {row.seed} / {row.metric}: "
            f"{row.change}: {fmt(row.other_value) or '-'} {row.other_interval} -> "
            f"{fmt(row.value) or '-'} {row.interval}".rstrip()
        )
    return lines


def changes_table(changes: pd.DataFrame, other: str) -> Table:
    """The regression diff as a page table."""
    columns = [Column(k, k) for k in KEYS[:-1]] + [Column("metric", "metric")]
    columns += [
        Column("change", "change"),
        Column("other", f"before ({other})", numeric=True),
        Column("now", "now", numeric=True),
    ]
    table = Table(
        "changes",
        f"Changed beyond their intervals against {other}",
        columns,
        section="changes",
        csv_name="changes.csv",
    )
    for row in changes.itertuples(index=False):
        cells = {k: text_cell(getattr(row, k)) for k in KEYS}
        cells["change"] = text_cell(row.change, css="changed")
        cells["other"] = number_cell(
            row.other_value, f"{fmt(row.other_value)} {row.other_interval}"
        )
        cells["now"] = number_cell(row.value, f"{fmt(row.value)} {row.interval}")
        table.rows.append(Row("ranked", cells))
    return table

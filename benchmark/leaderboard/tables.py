"""Task tables and rank tables: cells, ranks and reference rows -> :class:`Table` objects.

Pure: frames and rank tables in, table objects out (the renderer escapes and writes them).
Per task, every metric with its direction, CI, n and seeds; rows of ranked tokenizers, then
reference rows never ranked with them: continuous references, the task's trivial baselines
(and ground truth where a record gives it) and published numbers matched to the task.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmark.leaderboard.baselines import baseline_rows
from benchmark.leaderboard.definitions import define
from benchmark.leaderboard.load import Results
from benchmark.leaderboard.ranks import ALL_TIERS, RankTable
from benchmark.leaderboard.standings import REFERENCE_TIER, TaskSpec, tokenizer_tiers
from benchmark.leaderboard.table_model import (
    Cell,
    Column,
    ProvenanceIndex,
    Row,
    Table,
    fmt,
    metric_columns,
    number_cell,
    section_table,
    slug,
    text_cell,
)

__all__ = ["rank_tables", "slug", "task_tables", "tokenizer_cell"]

STATUS_TEXT = {"failed": "failed", "unavailable": "n/a", "missing": "\u2014"}


def tokenizer_cell(results: Results, preset: str, name: str, prov: str | None = None) -> Cell:
    """The tokenizer's display name, with its card description as a second line."""
    rows = results.tokenizers[
        (results.tokenizers["preset"] == preset) & (results.tokenizers["tokenizer"] == name)
    ]
    display, description = name, ""
    if len(rows):
        display = str(rows.iloc[0]["display"] or name)
        description = str(rows.iloc[0]["description"] or "")
    return text_cell(display, prov=prov, sub=description, title=name)


def bitrate_of(results: Results, preset: str, name: str) -> float | None:
    """Bitrate in bit/s from the tokenizer's records, or None."""
    rows = results.tokenizers[
        (results.tokenizers["preset"] == preset) & (results.tokenizers["tokenizer"] == name)
    ]
    if not len(rows) or pd.isna(rows.iloc[0]["bitrate"]):
        return None
    return float(rows.iloc[0]["bitrate"])


def tokenizer_columns() -> list[Column]:
    """The leading columns of a table of tokenizers: name, bitrate tier, bitrate."""
    return [
        Column("tokenizer", "tokenizer"),
        Column("tier", "tier"),
        Column("bitrate", "kbit/s", numeric=True, help="bitrate computed from metadata"),
    ]


def metric_cells(
    cell: pd.Series | None, index: ProvenanceIndex, title: str
) -> tuple[Cell, Cell, Cell]:
    """``(value, CI, n)`` cells of one metric cell (or of a missing one)."""
    if cell is None:
        missing = Cell(STATUS_TEXT["missing"], None, None, "no record", "missing")
        return missing, Cell(""), Cell("")
    info: dict[str, Any] = {
        "cell": title,
        "metric": cell["metric"],
        "direction": cell["direction"],
        "judge": cell["judge"] or None,
        "status": cell["status"],
        "value": cell["value"],
        "seeds": cell["seeds"],
        "seeds_ok": f"{cell['seeds_ok']} of {cell['seeds_total']}",
        "n": None if pd.isna(cell["n"]) else int(cell["n"]),
        "reason": cell["reason"],
        "records": cell["rids"],
    }
    if cell["status"] != "ok":
        prov = index.add(info)
        text = STATUS_TEXT.get(cell["status"], cell["status"])
        value = Cell(text, None, prov, cell["reason"], cell["status"], cell["status"])
        return value, Cell(""), Cell("")
    ci = None
    if cell["ci_low"] is not None and not pd.isna(cell["ci_low"]):
        ci = (float(cell["ci_low"]), float(cell["ci_high"]))
        info["ci"] = {"low": ci[0], "high": ci[1], "level": cell["ci_level"]}
    text = fmt(cell["value"])
    if cell["seeds_ok"] > 1:
        text += f" \u00b1 {fmt(cell['sd'])}"
        info["spread"] = {"sd": cell["sd"], "min": cell["vmin"], "max": cell["vmax"]}
    prov = index.add(info)
    value = number_cell(cell["value"], text, prov, f"{cell['seeds_ok']} seed(s)")
    ci_cell = (
        Cell(f"[{fmt(ci[0])}, {fmt(ci[1])}]", ci[0], prov, raw=f"{ci[0]};{ci[1]}")
        if ci
        else Cell("", None)
    )
    n = info["n"]
    return value, ci_cell, number_cell(n, "" if n is None else str(n))


def _rank_lookup(rankings: list[RankTable], preset: str, task: str):
    """``(tier, tokenizer) -> (rank, group, tests)`` for one task of one preset."""
    found = {}
    for table in rankings:
        if table.preset != preset:
            continue
        for ranking in table.tasks:
            if ranking.task != task:
                continue
            for name in table.tokenizers:
                found[(table.tier, name)] = (ranking.ranks.get(name), ranking.groups.get(name))
    return found


def task_tables(
    results: Results,
    cells: pd.DataFrame,
    rankings: list[RankTable],
    specs: dict[str, list[TaskSpec]],
    index: ProvenanceIndex,
    published_matches: dict[str, Any] | None = None,
) -> list[Table]:
    """One table per (preset, task) of job cells."""
    tiers = tokenizer_tiers(results)
    tables = []
    jobs = cells[cells["kind"] == "job"]
    for (preset, task), group in jobs.groupby(["preset", "task"], sort=True):
        spec = next((s for s in specs.get(preset, []) if s.task == task), None)
        main = spec.metric if spec else None
        metrics = sorted(group["metric"].unique(), key=lambda m: (m != main, m))
        directions = {m: group[group["metric"] == m]["direction"].dropna() for m in metrics}
        family = str(group["family"].iloc[0])
        columns = [
            *tokenizer_columns(),
            Column("seeds", "seeds ok", numeric=True),
            Column("rank", "rank (tier)", numeric=True, help="rank in its bitrate tier"),
            Column(
                "group",
                "group (tier)",
                numeric=True,
                help="rank group in its tier: not significantly apart",
            ),
            Column("rank_all", "rank (all)", numeric=True, help="rank over all tiers"),
        ]
        for metric in metrics:
            direction = directions[metric].iloc[0] if len(directions[metric]) else None
            label = f"{metric} (main)" if metric == main else metric
            columns += metric_columns(metric, label, direction, define(metric))
        table = section_table(
            "tasks",
            "task",
            (preset, task),
            f"{task} ({preset})",
            columns,
            preset=preset,
            task=task,
            caption=f"{family}; ranked on the main metric {main or 'unknown'}; every metric "
            "with its direction, 95 % CI and n; reference rows below are never ranked",
        )
        ranks = _rank_lookup(rankings, preset, task)
        preset_jobs = jobs[jobs["preset"] == preset]["tokenizer"].unique()
        ranked_names = {n for n in preset_jobs if tiers.get((preset, n)) != REFERENCE_TIER}
        names = sorted(set(group["tokenizer"].unique()) | ranked_names)
        by_cell = {(r.tokenizer, r.metric): r for r in group.itertuples(index=False)}
        for name in names:
            tier = tiers.get((preset, name), "unknown")
            kind = "reference" if tier == REFERENCE_TIER else "ranked"
            row = _tokenizer_row(results, preset, task, name, tier, kind, metrics, main)
            for metric in metrics:
                found = by_cell.get((name, metric))
                series = pd.Series(found._asdict()) if found is not None else None
                value, ci, n = metric_cells(series, index, f"{name} / {task} / {metric}")
                row.cells[f"m:{metric}"] = value
                row.cells[f"ci:{metric}"] = ci
                row.cells[f"n:{metric}"] = n
                if metric == main:
                    seeds = series["seeds_ok"] if series is not None else 0
                    total = series["seeds_total"] if series is not None else 0
                    row.cells["seeds"] = number_cell(seeds, f"{seeds}/{total}")
            rank, grp = ranks.get((tier, name), (None, None))
            rank_all, _ = ranks.get((ALL_TIERS, name), (None, None))
            row.cells["rank"] = number_cell(rank, fmt(rank) if rank else "")
            row.cells["group"] = number_cell(grp, str(grp) if grp else "")
            row.cells["rank_all"] = number_cell(rank_all, fmt(rank_all) if rank_all else "")
            table.rows.append(row)
        table.rows.sort(key=lambda r: (r.kind != "ranked", _main_sort(r, main, spec)))
        table.rows.extend(_baseline_rows(results, preset, task, metrics, index))
        table.rows.extend(_published_rows(results, preset, task, metrics, published_matches))
        tables.append(table)
    return tables


def _main_sort(row: Row, main: str | None, spec: TaskSpec | None) -> tuple:
    cell = row.cells.get(f"m:{main}") if main else None
    value = cell.sort if cell is not None and isinstance(cell.sort, int | float) else None
    if value is None:
        return (1, 0.0, row.label)
    sign = -1.0 if spec is not None and spec.direction == "higher" else 1.0
    return (0, sign * float(value), row.label)


def _tokenizer_row(results, preset, task, name, tier, kind, metrics, main) -> Row:
    bitrate = bitrate_of(results, preset, name)
    cells = {
        "tokenizer": tokenizer_cell(results, preset, name),
        "tier": text_cell(tier),
        "bitrate": number_cell(
            None if bitrate is None else bitrate / 1000,
            "" if bitrate is None else fmt(bitrate / 1000),
        ),
    }
    return Row(kind, cells, tier=tier, label=name)


def _baseline_rows(results, preset, task, metrics, index) -> list[Row]:
    """Trivial baselines and ground truth (see :mod:`~benchmark.leaderboard.baselines`)."""
    rows = []
    for baseline in baseline_rows(results.baselines, preset, task):
        sub = "baseline (never ranked)" if baseline.of is None else (
            f"baseline of {baseline.of} (never ranked)")  # fmt: skip
        cells = {
            "tokenizer": text_cell(baseline.label, sub=sub),
            "tier": text_cell("baseline"),
        }
        for metric, row in baseline.metrics.items():
            if metric not in metrics:
                continue
            info = {
                "cell": f"baseline {baseline.label} / {task} / {metric}",
                "judge": row["judge"] or None,
                "value": row["value"],
                "n": None if pd.isna(row["n"]) else int(row["n"]),
                "records": [row["rid"]],
                "status": row["metric_status"],
                "reason": row["reason"],
            }
            prov = index.add(info)
            if row["metric_status"] != "ok" or row["value"] is None or pd.isna(row["value"]):
                status = str(row["metric_status"])
                text = STATUS_TEXT.get(status, status)
                css = "failed" if status == "failed" else "unavailable"
                cells[f"m:{metric}"] = Cell(text, None, prov, row["reason"], css, status)
                continue
            cells[f"m:{metric}"] = number_cell(float(row["value"]), prov=prov)
            if row["ci_low"] is not None and not pd.isna(row["ci_low"]):
                low, high = float(row["ci_low"]), float(row["ci_high"])
                cells[f"ci:{metric}"] = Cell(
                    f"[{fmt(low)}, {fmt(high)}]", low, prov, raw=f"{low};{high}"
                )
            if info["n"] is not None:
                cells[f"n:{metric}"] = number_cell(info["n"], str(info["n"]))
        rows.append(Row("baseline", cells, tier="baseline", label=baseline.label))
    return rows


def _published_rows(results, preset, task, metrics, matches) -> list[Row]:
    if not matches or results.published.empty:
        return []
    rows = []
    for source, by_preset in matches.items():
        match = (by_preset.get(preset) or {}).get(task)
        if not match:
            continue
        frame = results.published[
            (results.published["source"] == source) & (results.published["task"] == match["task"])
        ]
        for (tier, name), group in frame.groupby(["tier", "tokenizer"], sort=False):
            cells = {
                "tokenizer": text_cell(f"{name}", sub=f"published: {source}"),
                "tier": text_cell(tier),
            }
            for local, published in match["metrics"].items():
                if local not in metrics:
                    continue
                hit = group[group["metric"] == published]
                if len(hit) and not pd.isna(hit.iloc[0]["value"]):
                    cells[f"m:{local}"] = number_cell(float(hit.iloc[0]["value"]))
                elif len(hit):
                    note = hit.iloc[0]["note"] or "no value published"
                    cells[f"m:{local}"] = Cell("n/a", None, None, note, "unavailable")
            rows.append(Row("published", cells, tier=str(tier), label=f"{name} ({tier})"))
    return rows


def rank_tables(results: Results, rankings: list[RankTable]) -> list[Table]:
    """One table per (preset, tier): per-task rank (group), mean ranks, coverage."""
    tables = []
    for ranking in rankings:
        columns = tokenizer_columns()
        for task in ranking.tasks:
            columns.append(
                Column(
                    f"t:{task.task}",
                    f"{task.task} rank",
                    "lower",
                    f"rank on {task.metric} ({task.family}); (group)",
                    True,
                )
            )
        for key, label in (
            ("discriminative", "discriminative"),
            ("generative", "generative"),
            ("overall", "overall"),
        ):
            columns.append(Column(f"mean:{key}", f"{label} mean rank", "lower", "", True))
        columns.append(Column("coverage", "coverage", "higher", "tasks ranked / tasks", True))
        tier_label = "all tiers" if ranking.tier == ALL_TIERS else f"{ranking.tier} bitrate"
        table = section_table(
            "rankings",
            "rank",
            (ranking.preset, ranking.tier),
            f"Ranking, {tier_label} ({ranking.preset})",
            columns,
            csv_prefix="ranking",
            preset=ranking.preset,
            tier=ranking.tier,
            caption="mean of per-task ranks; a failed cell ranks last, unavailable and "
            "missing cells are not ranked (see the rules)",
        )
        tiers = tokenizer_tiers(results)
        for mean in ranking.means:
            name = mean.tokenizer
            bitrate = bitrate_of(results, ranking.preset, name)
            tier = tiers.get((ranking.preset, name), "unknown")
            cells = {
                "tokenizer": tokenizer_cell(results, ranking.preset, name),
                "tier": text_cell(tier),
                "bitrate": number_cell(None if bitrate is None else bitrate / 1000),
            }
            for task in ranking.tasks:
                rank, grp = task.ranks.get(name), task.groups.get(name)
                status = task.cells[name].status
                text = f"{fmt(rank)} ({grp})" if rank is not None else STATUS_TEXT.get(status, "")
                css = "" if rank is not None else status
                cells[f"t:{task.task}"] = Cell(text, rank, None, status, css, rank)
            for key in ("discriminative", "generative", "overall"):
                value = getattr(mean, key)
                cells[f"mean:{key}"] = number_cell(value)
            cells["coverage"] = number_cell(mean.coverage, f"{mean.ranked}/{mean.total}")
            table.rows.append(Row("ranked", cells, tier=tier, label=name))
        tables.append(table)
    return tables

"""Tables beside the rankings: profiles, token statistics, studies, published numbers and
the metric definitions. Pure, like :mod:`~benchmark.leaderboard.tables`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmark.leaderboard.definitions import define
from benchmark.leaderboard.load import Results
from benchmark.leaderboard.table_model import (
    Cell,
    Column,
    ProvenanceIndex,
    Row,
    Table,
    fmt,
    number_cell,
    text_cell,
)
from benchmark.leaderboard.tables import slug, tokenizer_cell
from benchmark.profiles import PROFILE_METRICS
from benchmark.token_stats import STATS_METRICS


def _record_cells(
    results: Results, rid: str, metrics: list[str], index: ProvenanceIndex, spread: bool = False
) -> dict[str, Cell]:
    """Metric cells of one record (with the run spread of profile timings)."""
    _, record = results.records[rid]
    cells = {}
    extras_spread = record.extras.get("spread", {}) if spread else {}
    for name in metrics:
        metric = record.metrics.get(name)
        if metric is None:
            cells[name] = Cell("\u2014", None, None, "not measured", "missing")
            continue
        info = {
            "cell": f"{record.tokenizer} / {record.task} / {name}",
            "metric": name,
            "judge": metric.judge,
            "value": metric.value,
            "n": metric.n,
            "ci": metric.ci,
            "status": metric.status,
            "reason": metric.reason,
            "records": [rid],
        }
        runs = extras_spread.get(name)
        if runs:
            info["spread"] = runs
        prov = index.add(info)
        if metric.status != "ok" or metric.value is None:
            cells[name] = Cell("n/a", None, prov, metric.reason, "unavailable", metric.status)
            continue
        text = fmt(metric.value)
        if runs and "min" in runs:
            text += f" [{fmt(runs['min'])}\u2013{fmt(runs['max'])}]"
        elif metric.ci:
            text += f" [{fmt(metric.ci.get('low'))}, {fmt(metric.ci.get('high'))}]"
        cells[name] = number_cell(metric.value, text, prov)
    return cells


def _kind_rids(results: Results, kind: str) -> list[str]:
    return [rid for rid, (_, record) in results.records.items() if record.kind == kind]


def profile_tables(results: Results, index: ProvenanceIndex) -> list[Table]:
    """Per (preset, device): encode/decode time, RTF, memory peaks, parameters, bitrate."""
    groups: dict[tuple[str, str], list[str]] = {}
    for rid in _kind_rids(results, "profile"):
        _, record = results.records[rid]
        device = (record.config or {}).get("device") or "unknown device"
        groups.setdefault((record.preset, device), []).append(rid)
    tables = []
    for (preset, device), rids in sorted(groups.items()):
        columns = [Column("tokenizer", "tokenizer"), Column("machine", "device")]
        for name, (text, unit) in PROFILE_METRICS.items():
            columns.append(Column(name, f"{name} ({unit})", "lower", text, True))
        table = Table(
            slug("profile", preset, device),
            f"Encode / decode profile ({preset}, {device})",
            columns,
            section="profiles",
            preset=preset,
            csv_name=f"profile-{slug(preset, device)}.csv",
            caption="median of timed runs after warm-up [min\u2013max]; memory: the call's own "
            "peak (CUDA allocator on GPU, RSS increase on CPU)",
        )
        for rid in rids:
            _, record = results.records[rid]
            identity = record.extras.get("device") or {}
            machine = identity.get("gpu") or identity.get("cpu_model") or device
            threads = identity.get("torch_threads")
            cells = {
                "tokenizer": tokenizer_cell(results, preset, record.tokenizer),
                "machine": text_cell(
                    machine, sub=f"{threads} threads" if threads else "", title=str(identity)
                ),
            }
            cells.update(_record_cells(results, rid, list(PROFILE_METRICS), index, spread=True))
            table.rows.append(Row("ranked", cells, label=record.tokenizer))
        tables.append(table)
    return tables


def token_stats_tables(results: Results, index: ProvenanceIndex) -> list[Table]:
    """Per preset: codebook usage, entropy and token stability of each tokenizer."""
    by_preset: dict[str, list[str]] = {}
    for rid in _kind_rids(results, "token-stats"):
        by_preset.setdefault(results.records[rid][1].preset, []).append(rid)
    tables = []
    for preset, rids in sorted(by_preset.items()):
        columns = [Column("tokenizer", "tokenizer"), Column("codebooks", "K", numeric=True)]
        columns += [Column(n, n, "higher", text, True) for n, text in STATS_METRICS.items()]
        columns.append(Column("per_codebook", "per codebook: usage % / entropy bits"))
        table = Table(
            slug("stats", preset),
            f"Token statistics ({preset})",
            columns,
            section="token-stats",
            preset=preset,
            csv_name=f"token-stats-{slug(preset)}.csv",
            caption="usage and entropy from the cached test tokens; stability from re-encoding "
            "a few test utterances delayed by one sample, or with noise at 30 dB SNR",
        )
        for rid in rids:
            _, record = results.records[rid]
            rows = record.extras.get("per_codebook") or []
            detail = "; ".join(
                f"{r.get('usage', 0):.0f}% / {r.get('entropy_bits', 0):.2f}" for r in rows[:16]
            )
            if len(rows) > 16:
                detail += f"; \u2026 ({len(rows)} codebooks)"
            cells = {
                "tokenizer": tokenizer_cell(results, preset, record.tokenizer),
                "codebooks": number_cell(len(rows), str(len(rows))),
                "per_codebook": text_cell(detail),
            }
            cells.update(_record_cells(results, rid, list(STATS_METRICS), index))
            table.rows.append(Row("ranked", cells, label=record.tokenizer))
        tables.append(table)
    return tables


def study_tables(results: Results, index: ProvenanceIndex) -> list[Table]:
    """One table per study record: its ``extras.table`` rows when given, else its metrics."""
    tables = []
    for rid in _kind_rids(results, "study"):
        _, record = results.records[rid]
        rows = record.extras.get("table")
        title = f"Study: {record.task} ({record.tokenizer}, {record.preset})"
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            keys = list(dict.fromkeys(k for r in rows for k in r))
            table = Table(
                slug("study", rid),
                title,
                [Column(k, str(k)) for k in keys],
                section="studies",
                preset=record.preset,
                csv_name=f"study-{slug(record.preset, record.tokenizer, record.task)}.csv",
            )
            for item in rows:
                cells = {
                    k: number_cell(v) if isinstance(v, int | float) else text_cell(v)
                    for k, v in item.items()
                }
                table.rows.append(Row("ranked", cells))
        else:
            names = sorted(record.metrics)
            columns = [Column("metric", "metric"), Column("value", "value", numeric=True)]
            table = Table(
                slug("study", rid),
                title,
                columns,
                section="studies",
                preset=record.preset,
                csv_name=f"study-{slug(rid)}.csv",
            )
            cells = _record_cells(results, rid, names, index)
            for name in names:
                table.rows.append(Row("ranked", {"metric": text_cell(name), "value": cells[name]}))
        tables.append(table)
    return tables


def published_table(results: Results) -> Table | None:
    """The published reference numbers, one row per (source, tier, tokenizer)."""
    frame = results.published
    if frame.empty:
        return None
    frame = frame.assign(column=frame["task"] + " / " + frame["metric"])
    columns_seen = list(dict.fromkeys(frame["column"]))
    directions = dict(zip(frame["column"], frame["direction"], strict=True))
    columns = [Column("source", "source"), Column("tier", "tier"), Column("tokenizer", "tokenizer")]
    columns += [Column(f"p:{c}", c, directions[c], "", True) for c in columns_seen]
    table = Table(
        "published",
        "Published reference numbers (never ranked with local runs)",
        columns,
        section="published",
        csv_name="published.csv",
        caption="as published by their authors; an empty cell is a run they did not report",
    )
    for (source, tier, name), group in frame.groupby(["source", "tier", "tokenizer"], sort=False):
        cells = {"source": text_cell(source), "tier": text_cell(tier), "tokenizer": text_cell(name)}
        for item in group.itertuples(index=False):
            if pd.isna(item.value):
                cells[f"p:{item.column}"] = Cell(
                    "n/a", None, None, item.note or None, "unavailable"
                )
            else:
                cells[f"p:{item.column}"] = number_cell(float(item.value))
        table.rows.append(Row("published", cells, tier=str(tier), label=str(name)))
    return table


def definitions_table(results: Results) -> Table:
    """Every metric on the page: what it measures, its judge(s), its direction."""
    columns = [
        Column("metric", "metric"),
        Column("kind", "record kind"),
        Column("measures", "what it measures"),
        Column("judge", "judge"),
        Column("direction", "better"),
    ]
    table = Table(
        "definitions",
        "Metric definitions",
        columns,
        section="definitions",
        csv_name="metric-definitions.csv",
    )
    frame = results.metrics[results.metrics["metric"].notna()]
    if frame.empty:
        return table
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in frame.itertuples(index=False):
        key = (row.metric, row.kind)
        entry = seen.setdefault(key, {"judges": set(), "direction": None})
        if row.judge:
            entry["judges"].add(row.judge)
        if isinstance(row.direction, str):
            entry["direction"] = row.direction
    for (metric, kind), entry in sorted(seen.items()):
        arrow = {"higher": "higher \u2191", "lower": "lower \u2193"}.get(entry["direction"], "")
        table.rows.append(
            Row(
                "ranked",
                {
                    "metric": text_cell(metric),
                    "kind": text_cell(kind),
                    "measures": text_cell(define(metric)),
                    "judge": text_cell("; ".join(sorted(entry["judges"])) or "not recorded"),
                    "direction": text_cell(arrow),
                },
            )
        )
    return table

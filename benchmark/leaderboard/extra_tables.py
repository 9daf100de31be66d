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
    section_table,
    text_cell,
)
from benchmark.leaderboard.tables import tokenizer_cell
from benchmark.pipeline.records import ResultRecord
from benchmark.profiles import PROFILE_METRICS
from benchmark.token_stats import STATS_METRICS


def _record_cells(
    results: Results, rid: str, metrics: list[str], index: ProvenanceIndex, spread: bool = False
) -> dict[str, Cell]:
    """Metric cells of one record (with the run spread of profile timings)."""
    _, record = results.records[rid]
    if record.status != "ok":  # a failed or unavailable step: its reason in every cell
        reason = (record.error or {}).get("message") or f"record status {record.status}"
        prov = index.add({"cell": f"{record.tokenizer} / {record.task}", "status": record.status,
                          "reason": reason, "records": [rid]})  # fmt: skip
        text = "failed" if record.status == "failed" else "n/a"
        return {name: Cell(text, None, prov, reason, record.status) for name in metrics}
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
            failed = metric.status == "failed"
            cells[name] = Cell("failed" if failed else "n/a", None, prov, metric.reason,
                               "failed" if failed else "unavailable", metric.status)  # fmt: skip
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
        table = section_table(
            "profiles",
            "profile",
            (preset, device),
            f"Encode / decode profile ({preset}, {device})",
            columns,
            preset=preset,
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


#: Per-codebook columns of the token statistics: key in ``extras.per_codebook``, label,
#: numeric, direction, definition.
CODEBOOK_COLUMNS: tuple[tuple[str, str, str | None, str], ...] = (
    ("size", "C (ids)", None, "codebook size"),
    ("used", "ids used", "higher", "ids that occur at least once in the test tokens"),
    ("usage", "usage %", "higher", "ids used / C"),
    ("entropy_bits", "entropy (bits)", "higher", "entropy of the ids' empirical distribution"),
    ("normalized_entropy", "entropy / log2 C %", "higher", "100 % when every id is as frequent"),
    ("stability_shift", "stable, 1-sample shift %", "higher", "ids unchanged, input delayed"),
    ("stability_noise", "stable, noise %", "higher", "ids unchanged, white noise added"),
)


STABILITY_UNSTATED = ("stability: ids unchanged under a one-sample delay or added noise",)


def _stability_definition(record: ResultRecord) -> str | None:
    """How the record measured stability, from its own settings (None when it does not say)."""
    settings = record.extras.get("settings") or {}
    measured = record.metrics.get("stability_shift") or record.metrics.get("stability_noise")
    if not settings or measured is None:
        return None
    count = measured.n if measured.n else "?"
    return (
        f"stability: share of token ids (every frame and codebook) unchanged when {count} test "
        f"utterances are re-encoded delayed by {settings.get('shift_samples', '?')} sample(s), "
        f"or with white noise at {settings.get('snr_db', '?')} dB SNR, against their encoding "
        "as they are"
    )


def token_stats_tables(results: Results, index: ProvenanceIndex) -> list[Table]:
    """Per preset: codebook usage, entropy and token stability of each tokenizer, then the
    same per codebook (one row per tokenizer and codebook)."""
    by_preset: dict[str, list[str]] = {}
    for rid in _kind_rids(results, "token-stats"):
        by_preset.setdefault(results.records[rid][1].preset, []).append(rid)
    tables = []
    for preset, rids in sorted(by_preset.items()):
        records = [results.records[rid][1] for rid in rids]
        definitions = sorted(
            {d for r in records if r.status == "ok" and (d := _stability_definition(r))}
        )
        columns = [Column("tokenizer", "tokenizer"), Column("codebooks", "K", numeric=True)]
        columns += [Column(n, n, "higher", text, True) for n, text in STATS_METRICS.items()]
        columns.append(Column("splits", "test splits"))
        summary = section_table(
            "token-stats",
            "stats",
            (preset,),
            f"Token statistics ({preset})",
            columns,
            csv_prefix="token-stats",
            preset=preset,
            caption="means over codebooks [95 % CI of stability]; usage and entropy count the "
            "cached test tokens (no encoding); " + "; ".join(definitions or STABILITY_UNSTATED),
        )
        per_codebook = section_table(
            "token-stats",
            "stats-codebooks",
            (preset,),
            f"Token statistics per codebook ({preset})",
            [
                Column("tokenizer", "tokenizer"),
                Column("codebook", "codebook", numeric=True),
                *(Column(k, label, d, text, True) for k, label, d, text in CODEBOOK_COLUMNS),
            ],
            csv_prefix="token-stats-codebooks",
            preset=preset,
            caption="each codebook (or quantised layer) of each tokenizer on its own",
        )
        for rid, record in zip(rids, records, strict=True):
            rows = record.extras.get("per_codebook") or []
            splits = (record.config or {}).get("splits") or []
            cells = {
                "tokenizer": tokenizer_cell(results, preset, record.tokenizer),
                "codebooks": number_cell(len(rows), str(len(rows))) if rows else Cell(""),
                "splits": text_cell(", ".join(map(str, splits))),
            }
            cells.update(_record_cells(results, rid, list(STATS_METRICS), index))
            summary.rows.append(Row("ranked", cells, label=record.tokenizer))
            for position, row in enumerate(rows):
                codebook = row.get("codebook", position)
                cells = {
                    "tokenizer": text_cell(record.tokenizer),
                    "codebook": number_cell(codebook, str(codebook)),
                }
                for key, *_ in CODEBOOK_COLUMNS:
                    value = row.get(key)
                    cells[key] = (
                        number_cell(float(value), str(value) if isinstance(value, int) else None)
                        if isinstance(value, int | float)
                        else Cell("\u2014", None, None, "not measured", "missing")
                    )
                per_codebook.rows.append(Row("ranked", cells, label=record.tokenizer))
        tables.append(summary)
        if per_codebook.rows:
            tables.append(per_codebook)
    return tables


def _study_about(record: ResultRecord) -> tuple[str, str]:
    """A study record's name and description (``extras.study``: a dict or a string)."""
    about = record.extras.get("study")
    if isinstance(about, dict):
        return str(about.get("name") or record.task), str(about.get("description") or "")
    if isinstance(about, str) and about:
        return about, ""
    return record.task, ""


def study_tables(results: Results, index: ProvenanceIndex) -> list[Table]:
    """One table per study record: its ``extras.table`` rows (a list of row dicts; a column
    of numbers sorts as numbers; ``extras.columns`` their order) when given, else its
    metrics; ``extras.study`` names and describes it."""
    tables = []
    for rid in _kind_rids(results, "study"):
        _, record = results.records[rid]
        name, description = _study_about(record)
        rows = record.extras.get("table")
        title = f"Study: {name} ({record.tokenizer}, {record.preset})"
        prov = index.add({"cell": title, "records": [rid]})
        parts = (record.preset, record.tokenizer, record.task)
        if record.status != "ok":
            reason = (record.error or {}).get("message") or f"record status {record.status}"
            table = section_table("studies", "study", parts, title, [Column("status", "status")],
                                  preset=record.preset, caption=description)  # fmt: skip
            table.rows.append(Row("ranked", {"status": Cell(record.status, None, prov,
                                                            reason, record.status)}))  # fmt: skip
        elif isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            # records are stored with sorted keys: ``extras.columns`` keeps the study's order
            order = record.extras.get("columns")
            seen = dict.fromkeys(k for r in rows for k in r)
            keys = [k for k in order if k in seen] if isinstance(order, list) else []
            keys += [k for k in seen if k not in keys]
            numeric = {
                k: all(isinstance(r.get(k), int | float) for r in rows if r.get(k) is not None)
                for k in keys
            }
            columns = [Column(str(k), str(k), numeric=numeric[k]) for k in keys]
            table = section_table("studies", "study", parts, title, columns,
                                  preset=record.preset, caption=description)  # fmt: skip
            for item in rows:
                cells = {
                    str(k): number_cell(float(v))
                    if numeric[k] and isinstance(v, int | float)
                    else text_cell(v)
                    for k, v in item.items()
                }
                first = str(keys[0])
                if first in cells:
                    cells[first].prov = prov
                table.rows.append(Row("ranked", cells))
        else:
            names = sorted(record.metrics)
            columns = [Column("metric", "metric"), Column("value", "value", numeric=True)]
            table = section_table("studies", "study", parts, title, columns,
                                  preset=record.preset, caption=description)  # fmt: skip
            cells = _record_cells(results, rid, names, index)
            for metric in names:
                table.rows.append(
                    Row("ranked", {"metric": text_cell(metric), "value": cells[metric]})
                )
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
    table = section_table(
        "published",
        "published",
        (),
        "Published reference numbers (never ranked with local runs)",
        columns,
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
    table = section_table(
        "definitions",
        "definitions",
        (),
        "Metric definitions",
        columns,
        csv_prefix="metric-definitions",
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

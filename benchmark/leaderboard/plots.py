"""The page's figures, drawn with matplotlib and saved as SVG.

- layer-attention weights per task as a heatmap, one per (preset, tokenizer) (Figure 3 of
  Mousavi et al. 2024);
- each task's main metric against bitrate, with the Pareto front of the ranked tokenizers
  and the reference rows as lines;
- encode/decode time and memory bars per tokenizer (DASB's Figure 2);
- the rank heatmap of each rank table.

Figures are made with matplotlib's object API (``matplotlib.figure.Figure``, rendered by the
Agg/SVG canvases without pyplot), so no global backend or figure state is touched. Labels
come from records, so math text is off (a ``$`` in a name is a character) and SVG text is
written as escaped XML text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from benchmark.leaderboard.baselines import baseline_rows
from benchmark.leaderboard.load import Results
from benchmark.leaderboard.ranks import RankTable
from benchmark.leaderboard.standings import REFERENCE_TIER, TaskSpec, tokenizer_tiers
from benchmark.leaderboard.table_model import slug

log = logging.getLogger(__name__)

STYLE = {
    "text.parse_math": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "leaderboard",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


#: Layer heatmaps with more columns (e.g. one per mel band) get no per-cell numbers.
MAX_ANNOTATED_LAYERS = 16


@dataclass(frozen=True)
class PlotFile:
    """A saved figure: ``path`` relative to the site root, what it shows, where it goes."""

    path: str
    caption: str
    section: str
    preset: str = ""
    task: str = ""
    tier: str = ""


def _figure(width: float, height: float, columns: int = 1):
    """A figure (no pyplot) and its axes."""
    fig = MplFigure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, columns)


def _save(fig: MplFigure, out_dir: Path, name: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.svg"
    fig.savefig(path, format="svg", metadata={"Date": None})
    return f"assets/plots/{path.name}"


def layer_weight_heatmaps(results: Results, out_dir: Path) -> list[PlotFile]:
    """Mean layer weight (over seeds) per task and layer, one heatmap per tokenizer."""
    frame = results.layer_weights
    figures = []
    if frame.empty:
        return figures
    with matplotlib.rc_context(STYLE):
        for (preset, name), group in frame.groupby(["preset", "tokenizer"], sort=True):
            table = group.groupby(["task", "layer"])["weight"].mean().unstack("layer")
            table = table.reindex(sorted(table.columns), axis=1)
            columns = table.shape[1]
            fig, ax = _figure(min(10.0, max(3.2, 1.6 + 0.55 * columns)), 1.0 + 0.4 * len(table))
            image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", aspect="auto")
            step = max(1, columns // MAX_ANNOTATED_LAYERS)
            ticks = list(range(0, columns, step))
            ax.set_xticks(ticks, [str(table.columns[t]) for t in ticks])
            ax.set_yticks(range(len(table)), [str(t) for t in table.index])
            ax.set_xlabel("layer")
            ax.set_title(f"layer weights: {name} ({preset})")
            for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
                if np.isfinite(value) and columns <= MAX_ANNOTATED_LAYERS:
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w", fontsize=7)
            fig.colorbar(image, ax=ax, fraction=0.05)
            path = _save(fig, out_dir, slug("layers", preset, name))
            caption = f"Layer-attention weights of {name} per task ({preset}), mean over seeds"
            figures.append(PlotFile(path, caption, "layers", preset))
    return figures


def pareto_front(points: list[tuple[float, float]], direction: str) -> list[tuple[float, float]]:
    """Points no other point beats on both bitrate (lower) and metric (its direction),
    sorted by bitrate."""
    sign = 1.0 if direction == "higher" else -1.0
    front = []
    best = -np.inf
    for x, y in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if sign * y > best:
            front.append((x, y))
            best = sign * y
    return front


def _task_points(results: Results, cells: pd.DataFrame, preset: str, spec: TaskSpec):
    """``(points [(kbit/s, value, name)], references [(name, value)], baselines [...]``."""
    tiers = tokenizer_tiers(results)
    rows = cells[
        (cells["preset"] == preset)
        & (cells["task"] == spec.task)
        & (cells["metric"] == spec.metric)
        & (cells["status"] == "ok")
    ]
    info = results.tokenizers[results.tokenizers["preset"] == preset].set_index("tokenizer")
    points, references = [], []
    for row in rows.itertuples():
        if tiers.get((preset, row.tokenizer)) == REFERENCE_TIER:
            references.append((row.tokenizer, float(row.value)))
            continue
        bitrate = info["bitrate"].get(row.tokenizer) if row.tokenizer in info.index else None
        if bitrate is not None and pd.notna(bitrate):
            points.append((float(bitrate) / 1000, float(row.value), row.tokenizer))
    baselines = []
    for baseline in baseline_rows(results.baselines, preset, spec.task):
        row = baseline.metrics.get(spec.metric)
        if row is not None and row["metric_status"] == "ok" and pd.notna(row["value"]):
            baselines.append((baseline.label, float(row["value"])))
    return points, references, baselines


def bitrate_plots(
    results: Results, cells: pd.DataFrame, specs: dict[str, list[TaskSpec]], out_dir: Path
) -> list[PlotFile]:
    """Each task's main metric against bitrate, with its Pareto front and reference lines."""
    figures = []
    with matplotlib.rc_context(STYLE):
        for preset, tasks in sorted(specs.items()):
            for spec in tasks:
                points, references, baselines = _task_points(results, cells, preset, spec)
                if not points:
                    continue
                fig, ax = _figure(5.2, 3.4)
                ax.scatter([p[0] for p in points], [p[1] for p in points], color="C0", zorder=3)
                for x, y, name in points:
                    ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
                front = pareto_front([(x, y) for x, y, _ in points], spec.direction)
                # the front's last point holds to the highest bitrate shown
                front.append((max(p[0] for p in points), front[-1][1]))
                ax.step(
                    [p[0] for p in front],
                    [p[1] for p in front],
                    where="post",
                    color="C3",
                    label="Pareto front",
                    zorder=2,
                )
                for k, (name, value) in enumerate(references):
                    ax.axhline(
                        value, color=f"C{k + 4}", linestyle="--", label=f"{name} (reference)"
                    )
                for name, value in baselines:
                    ax.axhline(value, color="grey", linestyle=":", label=f"{name} (baseline)")
                xs = [p[0] for p in points]
                if max(xs) / max(min(xs), 1e-9) > 20:
                    ax.set_xscale("log")
                arrow = "\u2191" if spec.direction == "higher" else "\u2193"
                ax.set_xlabel("bitrate (kbit/s)")
                ax.set_ylabel(f"{spec.metric} {arrow}")
                ax.set_title(f"{spec.task} ({preset}): {spec.metric} against bitrate")
                ax.legend(fontsize=7, loc="best")
                path = _save(fig, out_dir, slug("bitrate", preset, spec.task))
                caption = f"{spec.task}: {spec.metric} against bitrate, Pareto front in red"
                figures.append(PlotFile(path, caption, "tasks", preset, spec.task))
    return figures


def profile_bars(results: Results, out_dir: Path) -> list[PlotFile]:
    """Encode and decode time (one utterance) and memory peak per tokenizer, per device."""
    groups: dict[tuple[str, str], list] = {}
    for _, record in results.records.values():
        if record.kind == "profile" and record.status == "ok":
            device = (record.config or {}).get("device") or "unknown"
            groups.setdefault((record.preset, device), []).append(record)
    figures = []
    with matplotlib.rc_context(STYLE):
        for (preset, device), records in sorted(groups.items()):
            names = [r.tokenizer for r in records]
            fig, axes = _figure(max(6.0, 1.4 * len(names) + 3), 3.2, columns=2)
            for ax, (suffix, label) in zip(
                axes,
                (("seconds", "seconds (one utterance)"), ("peak_mib", "peak memory (MiB)")),
                strict=True,
            ):
                x = np.arange(len(names))
                for k, step in enumerate(("encode", "decode")):
                    values = [(r.metrics.get(f"{step}_{suffix}") or _none()).value for r in records]
                    heights = [v if v is not None else 0.0 for v in values]
                    bars = ax.bar(x + (k - 0.5) * 0.38, heights, 0.38, label=step, color=f"C{k}")
                    for bar, value in zip(bars, values, strict=True):
                        if value is None:
                            ax.annotate(
                                "n/a",
                                (bar.get_x() + bar.get_width() / 2, 0),
                                ha="center",
                                va="bottom",
                                fontsize=7,
                            )
                ax.set_xticks(x, names, rotation=30, ha="right")
                ax.set_ylabel(label)
                ax.legend(fontsize=7)
            fig.suptitle(f"encode / decode profile ({preset}, {device})")
            path = _save(fig, out_dir, slug("profile", preset, device))
            figures.append(
                PlotFile(
                    path, f"Encode/decode time and memory ({preset}, {device})", "profiles", preset
                )
            )
    return figures


def _none():
    from benchmark.pipeline.records import MetricRecord

    return MetricRecord(None, "lower", status="unavailable")


def rank_heatmaps(rankings: list[RankTable], out_dir: Path) -> list[PlotFile]:
    """Ranks per task and the mean ranks, tokenizers as rows (lower is better)."""
    figures = []
    with matplotlib.rc_context(STYLE):
        for table in rankings:
            names = [m.tokenizer for m in table.means]
            columns = [t.task for t in table.tasks] + ["discr.", "gener.", "overall"]
            values = np.full((len(names), len(columns)), np.nan)
            for i, mean in enumerate(table.means):
                for j, task in enumerate(table.tasks):
                    rank = task.ranks.get(mean.tokenizer)
                    values[i, j] = np.nan if rank is None else rank
                for j, key in enumerate(("discriminative", "generative", "overall")):
                    value = getattr(mean, key)
                    values[i, len(table.tasks) + j] = np.nan if value is None else value
            fig, ax = _figure(1.6 + 0.75 * len(columns), 0.9 + 0.38 * len(names))
            cmap = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad="#dddddd")
            image = ax.imshow(
                np.ma.masked_invalid(values),
                cmap=cmap,
                aspect="auto",
                vmin=1,
                vmax=max(len(names), 2),
            )
            ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
            ax.set_yticks(range(len(names)), names)
            for (i, j), value in np.ndenumerate(values):
                text = "\u2014" if np.isnan(value) else f"{value:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
            ax.set_title(f"ranks ({table.preset}, {table.tier} tier)")
            fig.colorbar(image, ax=ax, fraction=0.05, label="rank (1 = best)")
            path = _save(fig, out_dir, slug("ranks", table.preset, table.tier))
            caption = f"Rank heatmap ({table.preset}, {table.tier} tier); grey: not ranked"
            figures.append(PlotFile(path, caption, "rankings", table.preset, tier=table.tier))
    return figures
